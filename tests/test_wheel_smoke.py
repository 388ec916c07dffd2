"""The built wheel, installed into a fresh venv outside the checkout, carries what the catalogue promises: every
shipped weight loads offline, the demo runs, and a shipped recipe trains by name.

The venv sees the running interpreter's packages (torch, timm, ...: a `.pth` file in the venv names the running
interpreter's package folders, whether it is a system interpreter or itself a venv's) but gets ssld_zoo only from the
wheel, installed with `--no-deps`; a `.pth` file's plain folder lines run none of the `.pth` files inside those folders,
so an editable install of the checkout stays out. Every command runs from an empty folder, so nothing comes from the
checkout.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.wheel

SHIPPED = ("resnet20_cifar.sup_cifar10", "resnet20_cifar.ssld_r56_cifar10", "resnet20_cifar.sup1k_cifar10",
           "resnet20_cifar.ssld1k_r56_cifar10")


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's python, its environment, an empty working folder) with only the wheel's ssld_zoo."""
    root = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(root / "dist"), str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    (wheel,) = (root / "dist").glob("ssld_zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"ssld_zoo/_shipped/weights/{w}/model.safetensors" for w in SHIPPED} <= names
    assert "ssld_zoo/_shipped/recipes/cifar10/b_ssld.yaml" in names
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SSLD_ZOO_DATA")}
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, env=env, check=True).stdout.strip()
    (Path(venv_site) / "outer_packages.pth").write_text("".join(f"{d}\n" for d in package_folders()))
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(root / "hf_home"), SSLD_ZOO_CACHE=str(root / "cache"))
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
                             capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stderr
    work = root / "work"
    work.mkdir()
    return python, env, work


def package_folders() -> list[str]:
    """The running interpreter's package folders (a venv's own, and the base's when that venv includes them), in the
    order its `sys.path` has them."""
    folders = {*site.getsitepackages(), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    if site.ENABLE_USER_SITE:
        folders.add(site.getusersitepackages())
    return [entry for entry in sys.path if entry in folders]


def run(wheel_env: tuple[Path, dict[str, str], Path], *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    python, env, work = wheel_env
    return subprocess.run([str(python), *args], capture_output=True, text=True, env={**env, **extra_env},
                          cwd=work, timeout=600)


def test_shipped_weights_load_offline_from_the_wheel(wheel_env):
    code = ("import json, sys, ssld_zoo, torch\n"
            f"for name in {list(SHIPPED)!r}:\n"
            "    model = ssld_zoo.create(name, pretrained=True).eval()\n"
            "    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)\n"
            "print(torch.__file__); print(ssld_zoo.__file__); print(sys.prefix)\n"
            "print(json.dumps({n: ssld_zoo.model_info(n.split('.')[0])['weights'][n.split('.')[1]]['available']"
            f" for n in {list(SHIPPED)!r}}}))\n")
    result = run(wheel_env, "-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    *_, torch_file, zoo_file, prefix, available = result.stdout.splitlines()
    import torch
    assert Path(torch_file) == Path(torch.__file__)  # the very torch this interpreter runs, from a venv or not
    assert Path(zoo_file).is_relative_to(prefix) and not Path(zoo_file).is_relative_to(REPO_ROOT)  # the wheel's
    assert json.loads(available) == {name: True for name in SHIPPED}


def test_shipped_recipes_train_by_name_from_the_wheel(wheel_env):
    listing = run(wheel_env, "-m", "ssld_zoo", "recipes")
    assert listing.returncode == 0, listing.stderr
    assert "cifar10/b_ssld" in listing.stdout and "imagenet/resnet50d_ssld.ssld_in1k" in listing.stdout
    data = str(Path(os.environ["SSLD_ZOO_DATA"]))
    result = run(wheel_env, "-m", "ssld_zoo", "train", "cifar10/b_ssld", "batch_size=16", "stages.0.epochs=1",
                 "stages.1.epochs=1", "stages.0.train.0.subset=per_class:4", "stages.0.train.1.subset=per_class:4:6",
                 "stages.1.train.0.subset=per_class:2", "stages.1.train.1.subset=per_class:2:3",
                 "data.eval.subset=per_class:2", "--out", "run", "--data", data)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (wheel_env[2] / "run" / "resnet20_cifar.ssld_r56_cifar10" / "model.safetensors").is_file()


def test_demo_runs_from_the_wheel(wheel_env):
    result = run(wheel_env, "-m", "ssld_zoo", "demo", "--labeled-per-class", "5", "--unlabeled-per-class", "5",
                 "--epochs", "1", "--batch-size", "25", "--eval-per-class", "5", "--curve-per-class", "2",
                 "--eval-every", "2", "--out", "demo", SSLD_ZOO_DATA=os.environ["SSLD_ZOO_DATA"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resnet20_cifar.demo_ssld50_unlabeled" in result.stdout and (wheel_env[2] / "demo" / "demo.png").is_file()
