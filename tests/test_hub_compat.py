"""The hub download and publish tests again under the huggingface_hub 0.3x line (transformers 4.x pins `<1.0`)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.network  # installs huggingface_hub 0.3x from PyPI once (cached in .ci-cache/)

TARGET = REPO_ROOT / ".ci-cache" / "hub0x"
SPEC = "huggingface-hub>=0.34,<1.0"
TESTS = ("tests/test_hub.py", "tests/test_publish.py")


def test_hub_layer_with_huggingface_hub_0x():
    if not (TARGET / "huggingface_hub").is_dir():
        install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                                  str(TARGET), SPEC], capture_output=True, text=True, timeout=600)
        assert install.returncode == 0, f"could not install {SPEC} into {TARGET} (needs PyPI): {install.stderr}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TARGET), os.environ.get("PYTHONPATH", "")])}
    version = subprocess.run([sys.executable, "-c", "import huggingface_hub; print(huggingface_hub.__version__)"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert version.stdout.startswith("0."), version.stdout + version.stderr
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
                            cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
