"""The verified download path against a real loopback Hub, through the real huggingface_hub client (no torch)."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import pytest
from conftest import run_python, sha256

from ssld_zoo.weights import hub as zoo_hub
from ssld_zoo.errors import IntegrityError, WeightsUnavailableError
from ssld_zoo.catalogue.registry import HubFile

REPO = "ssld-zoo/tiny.ssld_in1k"
V1, V2 = b"weights v1 " * 1000, b"weights v2 " * 1500


def pinned(commit: str, data: bytes = V1, filename: str = "model.safetensors") -> HubFile:
    return HubFile(REPO, filename, commit, sha256(data), len(data))


def read(hub_file: HubFile) -> bytes:
    """The bytes of the verified local file `fetch_verified` returns (it is checked before the path is returned)."""
    found = zoo_hub.fetch_verified(hub_file)
    assert found.sha256 == (hub_file.sha256 or zoo_hub.lfs_sha256(found.path))
    return found.path.read_bytes()


def test_first_download_follows_lfs_redirect_and_verifies(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1, "config.json": b"{}"})
    assert read(pinned(commit)) == V1
    assert f"/{REPO}/resolve/{commit}/model.safetensors" in fake_hub.requests("HEAD")
    assert any(p.startswith("cdn:/blobs/") for p in fake_hub.requests("GET"))
    cached = zoo_hub.hub_download(pinned(commit))
    assert zoo_hub.lfs_sha256(cached) == sha256(V1)  # the blob is named by the sha256 the Hub published


def test_small_non_lfs_file_is_served_directly(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1, "config.json": b'{"a": 1}'})
    path = zoo_hub.hub_download(HubFile(REPO, "config.json", commit, None, None))
    assert path.read_bytes() == b'{"a": 1}'
    assert zoo_hub.lfs_sha256(path) is None  # a git-sha1 etag is not a sha256


def fetch_in_subprocess(hub_file: HubFile, offline: bool) -> str:
    """`fetch_verified` in a fresh interpreter (HF_HUB_OFFLINE is read when huggingface_hub is imported)."""
    code = f"""
from ssld_zoo.weights import hub
from ssld_zoo.catalogue.registry import HubFile
from ssld_zoo.errors import SsldZooError
try:
    print("OK", len(hub.fetch_verified(HubFile(*{dataclasses.astuple(hub_file)!r}), model="tiny_ssld")
                    .path.read_bytes()))
except SsldZooError as e:
    print(type(e).__name__, e)
"""
    result = run_python(code, HF_HUB_OFFLINE="1" if offline else "0")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("offline", [False, True])
def test_cache_hit_needs_no_server(fake_hub, offline):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    read(pinned(commit))
    fake_hub.stop()
    assert fetch_in_subprocess(pinned(commit), offline) == f"OK {len(V1)}"


def test_corrupted_cached_blob_is_detected_and_repaired(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    path = zoo_hub.hub_download(pinned(commit))
    Path(os.path.realpath(path)).write_bytes(b"X" * len(V1))  # same size, wrong content
    gets = len(fake_hub.requests("GET"))
    assert read(pinned(commit)) == V1
    assert len(fake_hub.requests("GET")) > gets
    assert zoo_hub.file_sha256(path) == sha256(V1)


def test_truncated_cached_blob_is_repaired(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    path = zoo_hub.hub_download(pinned(commit))
    Path(os.path.realpath(path)).write_bytes(V1[:100])
    assert read(pinned(commit)) == V1


def test_a_corrupt_file_is_repaired_before_its_path_is_returned(fake_hub):
    """The hash comes first: a damaged cached blob is never handed to a reader, and an intact one is returned as is
    (a reader's own failure on it is the reader's, never taken for damage)."""
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    path = zoo_hub.hub_download(pinned(commit))
    Path(os.path.realpath(path)).write_bytes(b"Y" * len(V1))
    gets = len(fake_hub.requests("GET"))
    found = zoo_hub.fetch_verified(pinned(commit))
    assert found.path.read_bytes() == V1 and len(fake_hub.requests("GET")) == gets + 1
    assert zoo_hub.fetch_verified(pinned(commit)).path.read_bytes() == V1
    assert len(fake_hub.requests("GET")) == gets + 1  # intact now: not downloaded again


def test_corrupt_cache_while_offline_is_a_clear_error(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    path = zoo_hub.hub_download(pinned(commit))
    Path(os.path.realpath(path)).write_bytes(b"Z" * len(V1))
    out = fetch_in_subprocess(pinned(commit), offline=True)
    assert out.startswith("IntegrityError") and "HF_HUB_OFFLINE" in out and "corrupt" in out


def test_wrong_pinned_sha256_names_everything(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    wrong = HubFile(REPO, "model.safetensors", commit, "0" * 64, len(V1))
    with pytest.raises(IntegrityError) as err:
        zoo_hub.fetch_verified(wrong)
    message = str(err.value)
    for part in (REPO, "model.safetensors", commit, "0" * 64, sha256(V1)):
        assert part in message
    assert len(fake_hub.requests("GET")) == 2  # downloaded once, then once more, then gave up


def test_missing_file_repo_and_revision_are_clear_errors(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    with pytest.raises(WeightsUnavailableError, match="has no file 'other.safetensors'"):
        zoo_hub.fetch_verified(HubFile(REPO, "other.safetensors", commit, None, None))
    with pytest.raises(WeightsUnavailableError, match="Repo 'ssld-zoo/nope' was not found"):
        zoo_hub.fetch_verified(HubFile("ssld-zoo/nope", "model.safetensors", commit, None, None))
    with pytest.raises(WeightsUnavailableError, match=f"Revision '{'a' * 40}' does not exist in repo '{REPO}'"):
        zoo_hub.fetch_verified(pinned("a" * 40))


def test_offline_with_empty_cache_says_how_to_predownload(fake_hub):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    message = fetch_in_subprocess(pinned(commit), offline=True)
    assert message.startswith("OfflineError")
    assert "HF_HUB_OFFLINE is set" in message
    assert "ssld-zoo download tiny_ssld --to DIR" in message
    assert "pretrained='DIR/tiny_ssld'" in message


def test_pinned_revision_survives_new_uploads(fake_hub, hf_env):
    first = fake_hub.publish(REPO, {"model.safetensors": V1})
    second = fake_hub.publish(REPO, {"model.safetensors": V2})
    assert first != second
    assert read(pinned(first, V1)) == V1
    assert read(pinned(second, V2)) == V2
    assert read(HubFile(REPO, "model.safetensors", None, None, None)) == V2  # main moved


def test_pinned_revision_removed_upstream_is_a_clear_error(fake_hub, tmp_path):
    first = fake_hub.publish(REPO, {"model.safetensors": V1})
    fake_hub.publish(REPO, {"model.safetensors": V2})
    fake_hub.forget(REPO, first)
    with pytest.raises(WeightsUnavailableError, match=f"Revision '{first}' does not exist"):
        zoo_hub.fetch_verified(pinned(first, V1), cache_dir=tmp_path / "fresh_cache")


def test_cache_dir_argument_is_honoured(fake_hub, tmp_path, hf_env):
    commit = fake_hub.publish(REPO, {"model.safetensors": V1})
    path = zoo_hub.hub_download(pinned(commit), cache_dir=tmp_path / "elsewhere")
    assert str(path).startswith(str(tmp_path / "elsewhere"))
    assert not (hf_env / "hub").exists()


def test_hub_errors_carry_repo_filename_and_revision(fake_hub):
    """The download runs in a child process; its Hub error comes back as the same one line, caused by huggingface_hub's
    own exception with the Hub's request id and message."""
    from hubserver import REQUEST_ID

    from ssld_zoo.errors import HubClientFailure
    missing = HubFile("nobody/nothing", "model.safetensors", "0" * 40, None, None)
    with pytest.raises(WeightsUnavailableError, match="Repo 'nobody/nothing' was not found") as caught:
        zoo_hub.hub_download(missing)
    assert (caught.value.repo_id, caught.value.filename, caught.value.revision) == (
        "nobody/nothing", "model.safetensors", "0" * 40)
    cause = caught.value.__cause__
    assert isinstance(cause, HubClientFailure) and cause.kind.endswith("RepositoryNotFoundError"), cause
    assert cause.request_id == REQUEST_ID and cause.server_message and "Repository not found" in cause.server_message
    assert REQUEST_ID in str(cause)


def test_a_hub_that_never_answers_is_given_up_after_the_deadline(fake_hub, monkeypatch, tmp_path):
    """A Hub that accepts connections and never answers: huggingface_hub alone retries for minutes per file."""
    import time

    from ssld_zoo.errors import OfflineError
    monkeypatch.setenv("SSLD_ZOO_HUB_DEADLINE_S", "2")
    fake_hub.silent.set()
    start = time.monotonic()
    try:
        with pytest.raises(OfflineError, match=f"The Hub at {fake_hub.endpoint} did not deliver .* within 2 s"):
            zoo_hub.hub_download(HubFile("silent/hub", "model.safetensors", "1" * 40, None, None),
                                 cache_dir=tmp_path / "cache")
    finally:
        fake_hub.reset()
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "1e400", "-0", "0", "9" * 400])
def test_a_bad_deadline_is_one_clear_error(monkeypatch, value):
    from ssld_zoo.errors import SettingError
    monkeypatch.setenv("SSLD_ZOO_HUB_DEADLINE_S", value)
    with pytest.raises(SettingError, match="SSLD_ZOO_HUB_DEADLINE_S=.* is not a number from 0.001 to 604,800 seconds"):
        zoo_hub.hub_download(HubFile("org/name", "model.safetensors", "0" * 40, None, None))


@pytest.mark.parametrize("fault, expected", [
    ("cdn_status", r"answered HTTP 500 for file 'model.safetensors' of repo 'me/cdn'"),
    ("cdn_cut", r"The connection to the Hub at .* broke while downloading file 'model.safetensors' of repo 'me/cdn'"),
])
def test_a_failing_or_cut_cdn_is_one_clear_error(fake_hub, fault, expected, tmp_path, capfd):
    """The LFS redirect leads to a CDN that answers 500, or that sends half the file and hangs up. huggingface_hub's
    retries (1.x logs each attempt; 0.x does not) stay in the download process: none reaches the user's terminal."""
    from ssld_zoo.errors import SsldZooError
    commit = fake_hub.publish("me/cdn", {"model.safetensors": b"\x01" * 4096})
    setattr(fake_hub, fault, 500 if fault == "cdn_status" else True)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SsldZooError, match=expected):
        warnings.simplefilter("always")
        zoo_hub.hub_download(HubFile("me/cdn", "model.safetensors", commit, None, None), cache_dir=tmp_path)
    err = capfd.readouterr().err
    assert "Retry" not in err and "thrown while requesting" not in err and "Trying to resume" not in err, err
    assert not [str(w.message) for w in caught if "retr" in str(w.message)]
