"""Print the versions pip resolved for the packages whose behaviour the test suite depends on."""
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("torch", "torchvision", "timm", "huggingface-hub", "safetensors", "numpy", "pillow", "pyyaml", "pytest",
            "pytest-timeout", "transformers", "onnx", "onnxruntime", "onnxscript", "matplotlib", "paddlepaddle",
            "paddleclas")


def installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


print("resolved: " + ", ".join(f"{name} {installed(name)}" for name in PACKAGES), flush=True)
