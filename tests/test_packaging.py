"""The wheel ships the catalogue, the console script and the shipped recipes and weights (under
`ssld_zoo/_shipped/`), and leaves tests and benchmarks out; `test_wheel_smoke.py` installs and uses it."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.wheel


def test_wheel_contents(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "-w", str(tmp_path), str(REPO_ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("ssld_zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ssld_zoo/catalogue/catalogue.json" in names and "ssld_zoo/models/mobilenetv3.py" in names
    assert not any(n.startswith(("tests/", "weights/", "recipes/", "benchmarks/")) for n in names)
    assert {"ssld_zoo/_shipped/recipes/cifar10/d_ssld_1k_unlabeled.yaml",
            "ssld_zoo/_shipped/weights/resnet20_cifar.sup_cifar10/model.safetensors"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ssld-zoo = ssld_zoo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
