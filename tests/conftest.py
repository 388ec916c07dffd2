"""Shared fixtures: an isolated HF_HOME, a loopback Hub, and a small extra catalogue for end-to-end tests."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

# Property-based tests (Hypothesis): CI runs the "ci" profile, a fixed seed and a small example count so the suite
# stays short and repeatable; `HYPOTHESIS_PROFILE=long python -m pytest -q -k property` explores far more inputs.
settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.path.insert(0, os.path.dirname(__file__))
from fileserver import FileServer  # noqa: E402
from hubserver import FakeHub  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ("train_support",)  # its `tiny_data` fixture, for every test module

# One loopback Hub for the session: huggingface_hub reads HF_ENDPOINT when it is first imported (0.3x even copies
# the URL template into other modules), so the endpoint is set here, before any test imports the client.
HUB = FakeHub()
os.environ["HF_ENDPOINT"] = HUB.endpoint
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

# The README's test command gives the data folder relative to the checkout (`SSLD_ZOO_DATA=../shared/data`): made
# absolute here, so tests that change folder, and the processes they start elsewhere, find the same folder.
if os.environ.get("SSLD_ZOO_DATA"):
    os.environ["SSLD_ZOO_DATA"] = os.path.abspath(os.environ["SSLD_ZOO_DATA"])

# PaddleClas's download host, for weights converted on first use: a loopback server that has no files until a test
# adds them, so no test ever reaches the internet.
PADDLE_HOST = FileServer()


@pytest.fixture(autouse=True)
def isolated_paddle_origin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FileServer:
    """Every test gets an empty first-use cache (`SSLD_ZOO_CACHE`) and the loopback PaddleClas host."""
    PADDLE_HOST.reset()
    monkeypatch.setenv("SSLD_ZOO_CACHE", str(tmp_path_factory.mktemp("ssld_zoo_cache")))
    monkeypatch.setenv("SSLD_ZOO_PADDLE_ENDPOINT", PADDLE_HOST.url)
    return PADDLE_HOST


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (`$SSLD_ZOO_DATA`, which `.ci/run` sets); the one rule for tests that read real data:
    without it they fail, naming the variable, rather than skip."""
    from ssld_zoo.paths import find_data_file
    found = find_data_file("cifar10/cifar10_jpegbytes_test.npz")
    if not isinstance(found, Path):
        pytest.fail(f"This test reads the shared CIFAR-10 data: {found.reason}. Set SSLD_ZOO_DATA to the shared data "
                    "folder (`SSLD_ZOO_DATA=../shared/data python -m pytest`, as .ci/run does).", pytrace=False)
    return found.parents[1]


@pytest.fixture
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HOME in a temp folder, offline mode off; `huggingface_hub.constants` (read at import) follow."""
    from huggingface_hub import constants
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return home


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (the environment as a user sets it before starting Python)."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), str(REPO_ROOT),
                                                             os.environ.get("PYTHONPATH", "")]), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


@pytest.fixture
def fake_hub(hf_env: Path) -> Iterator[FakeHub]:
    """The loopback Hub, empty and running (`HF_ENDPOINT` points at it)."""
    from huggingface_hub import constants
    assert constants.ENDPOINT == HUB.endpoint, "huggingface_hub was imported before conftest set HF_ENDPOINT"
    HUB.reset()
    HUB.start()
    yield HUB
    HUB.start()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def extra_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a catalogue with one tiny model (`tiny_resnet_ssld`, timm `test_resnet`) and layer it on top."""
    from ssld_zoo.catalogue import registry
    builtin = json.loads(registry.BUILTIN_CATALOGUE.read_text())
    template = builtin["models"]["resnet50d_ssld"]

    def make(**hub: Any) -> Path:
        weight = json.loads(json.dumps(template["weights"]["ssld_in1k"]))
        weight["hub"].update(hub)
        weight["status"] = "published" if hub.get("revision") else "unpublished"
        weight["preprocessing"]["input_size"] = [3, 160, 160]
        weight["preprocessing"].pop("source")  # a team's own weight: no PaddleClas config to cite
        entry = dict(template, architecture="test_resnet", paddle_name=None, family="test", num_params=469688,
                     gmacs=None, default_weight="ssld_in1k", weights={"ssld_in1k": weight})
        path = tmp_path / "extra_catalogue.json"
        path.write_text(json.dumps({"schema_version": 1, "models": {"tiny_resnet_ssld": entry}}))
        monkeypatch.setenv("SSLD_ZOO_CATALOGUE", str(path))
        registry.refresh()
        return path

    yield make
    monkeypatch.delenv("SSLD_ZOO_CATALOGUE", raising=False)
    registry.refresh()
