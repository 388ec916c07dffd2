"""Deadlines that stop: after a Hub download is given up, nothing of it runs on, in one long-lived process (as a
server that calls `create()` again would be)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import sha256
from safetensors.torch import save_file

import ssld_zoo
from ssld_zoo.errors import OfflineError

TINY = "tiny_resnet_ssld"
REPO = f"ssld-zoo/{TINY}.ssld_in1k"


def child_processes() -> list[int]:
    """The pids of this process's children (Linux's /proc)."""
    return [int(pid) for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()]


def download_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if any(word in t.name.lower() for word in ("ssld", "hub", "hf"))]


def test_a_silent_hub_hits_the_deadline_then_create_works_in_the_same_process(fake_hub, extra_catalogue, tmp_path,
                                                                                monkeypatch):
    import timm
    torch.manual_seed(0)
    state = timm.create_model("test_resnet").state_dict()
    save_file(state, str(tmp_path / "model.safetensors"))
    data = (tmp_path / "model.safetensors").read_bytes()
    files = {"model.safetensors": data, "config.json": b"{}"}
    commit = fake_hub.publish(REPO, files)
    extra_catalogue(repo_id=REPO, revision=commit, sha256=sha256(data), size=len(data))
    monkeypatch.setenv("SSLD_ZOO_HUB_DEADLINE_S", "1.5")
    fake_hub.silent.set()  # accepts connections, never answers
    start = time.monotonic()
    try:
        with pytest.raises(OfflineError, match=r"did not deliver file 'model.safetensors' .* within 1.5 s"):
            ssld_zoo.create(TINY, pretrained=True)
        assert time.monotonic() - start < 6
        assert child_processes() == [] and download_threads() == []  # nothing of it runs on
    finally:
        fake_hub.reset()  # lets go of the requests the silent Hub holds
    assert fake_hub.publish(REPO, files) == commit  # the same history again, now answering
    model = ssld_zoo.create(TINY, pretrained=True)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
    assert child_processes() == [] and download_threads() == []
