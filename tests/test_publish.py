"""`ssld-zoo publish`: the real huggingface_hub client uploads a Hub-layout folder to the loopback Hub (no mocks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python, sha256
from huggingface_hub import hf_hub_download
from safetensors.numpy import save_file

from ssld_zoo.cli import main
from ssld_zoo.errors import IntegrityError, InvalidWeightsError, PublishError
from ssld_zoo.weights.publish import PUBLISHED_FILES, publish_folder
from ssld_zoo.weights.sources import CONFIG_FILE, WEIGHTS_FILE

REPO = "ssld-zoo/tiny.ssld_in1k"
CARD = "---\nlicense: apache-2.0\nlibrary_name: timm\n---\n# tiny\n"


def pin(folder: Path, config: dict) -> None:
    """Write `config.json` with an `ssld_zoo` block pinning the folder's model.safetensors."""
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "ssld_zoo": {"sha256": sha256(data), "size": len(data)}}))


def hub_folder(folder: Path, seed: int = 0) -> Path:
    """A small Hub-layout folder whose weights depend on `seed`."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"fc.weight": np.random.default_rng(seed).standard_normal((16, 16), dtype=np.float32)},
              str(folder / WEIGHTS_FILE))
    pin(folder, {"architecture": "test_resnet", "num_classes": 16})
    (folder / "README.md").write_text(CARD)
    return folder


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def downloaded(name: str, revision: str) -> bytes:
    return Path(hf_hub_download(REPO, name, revision=revision)).read_bytes()


def uploads(hub) -> list[str]:  # type: ignore[no-untyped-def]
    return hub.requests("POST") + hub.requests("PUT")


def test_cli_publish_prints_the_commit_and_the_files_download_back(capsys, tmp_path, fake_hub):
    folder = hub_folder(tmp_path / "tiny")
    code, out, err = cli(capsys, "publish", str(folder), "--repo", REPO, "--private", "--message", "first upload")
    assert code == 0, err
    revision = out.split("revision: ")[1].split()[0]
    repo = fake_hub.repos[REPO]
    assert revision == repo.branches["main"] and repo.messages[revision] == "first upload" and repo.private
    assert f"{fake_hub.endpoint}/{REPO}" in out and "hub.revision" in out
    assert all(name in out for name in PUBLISHED_FILES)
    assert any(path.startswith("cdn:/upload/") for path in fake_hub.requests("PUT"))  # the weights went through LFS
    for name in PUBLISHED_FILES:
        assert downloaded(name, revision) == (folder / name).read_bytes()


def test_publish_in_a_fresh_interpreter_imports_neither_torch_nor_timm(tmp_path, fake_hub):
    code = (f"import sys; from ssld_zoo.cli import main; main(['publish', {str(hub_folder(tmp_path / 'tiny'))!r}, "
            f"'--repo', {REPO!r}]); print([m for m in ('torch', 'timm') if m in sys.modules])")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert f"revision: {fake_hub.repos[REPO].branches['main']}" in result.stdout


def test_second_publish_is_a_new_commit_and_the_first_revision_keeps_its_bytes(tmp_path, fake_hub):
    folder = hub_folder(tmp_path / "tiny", seed=1)
    old = (folder / WEIGHTS_FILE).read_bytes()
    first = publish_folder(folder, REPO)
    hub_folder(folder, seed=2)
    second = publish_folder(folder, REPO)
    assert first != second and fake_hub.repos[REPO].branches["main"] == second
    assert downloaded(WEIGHTS_FILE, first) == old
    assert downloaded(WEIGHTS_FILE, second) == (folder / WEIGHTS_FILE).read_bytes() != old
    assert downloaded("README.md", second) == CARD.encode()


def test_unchanged_folder_makes_no_new_commit(tmp_path, fake_hub):
    folder = hub_folder(tmp_path / "tiny")
    first = publish_folder(folder, REPO)
    assert publish_folder(folder, REPO) == first
    assert len(fake_hub.repos[REPO].commits) == 2  # the repo's initial commit, then ours


def test_branch_is_created_and_main_is_left_alone(capsys, tmp_path, fake_hub):
    code, out, err = cli(capsys, "publish", str(hub_folder(tmp_path / "tiny")), "--repo", REPO, "--revision", "v2")
    assert code == 0, err
    repo = fake_hub.repos[REPO]
    assert f"revision: {repo.branches['v2']}" in out
    assert WEIGHTS_FILE not in repo.commits[repo.branches["main"]]


@pytest.mark.parametrize("damage", ["same size", "truncated"])
def test_weights_not_matching_config_are_refused_before_any_request(capsys, tmp_path, fake_hub, damage):
    folder = hub_folder(tmp_path / "tiny")
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[:-4] + b"XXXX" if damage == "same size" else data[:-4])
    code, out, err = cli(capsys, "publish", str(folder), "--repo", REPO)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"does not match {CONFIG_FILE}" in err and sha256(data) in err
    assert uploads(fake_hub) == []
    with pytest.raises(IntegrityError):
        publish_folder(folder, REPO)


@pytest.mark.parametrize("pickle", ["pytorch_model.bin", "ResNet50_vd_ssld.pdparams", "old/model.pth"])
def test_folder_with_a_pickle_is_refused(tmp_path, fake_hub, pickle):
    folder = hub_folder(tmp_path / "tiny")
    (folder / pickle).parent.mkdir(exist_ok=True)
    (folder / pickle).write_bytes(b"\x80\x04N.")
    with pytest.raises(InvalidWeightsError, match=f"pickle files \\({pickle}\\); only safetensors are published"):
        publish_folder(folder, REPO)
    assert uploads(fake_hub) == []


@pytest.mark.parametrize("problem, message", [("no card", "lacks README.md"),
                                              ("no pin", "has no `ssld_zoo` block"),
                                              ("bad json", "config.json is not valid JSON")])
def test_incomplete_folder_is_refused(tmp_path, fake_hub, problem, message):
    folder = hub_folder(tmp_path / "tiny")
    if problem == "no card":
        (folder / "README.md").unlink()
    else:
        (folder / CONFIG_FILE).write_text("{" if problem == "bad json" else '{"architecture": "test_resnet"}')
    with pytest.raises(InvalidWeightsError, match=message):
        publish_folder(folder, REPO)
    assert uploads(fake_hub) == []


@pytest.mark.parametrize("repo_id", ["tiny", "a/b/c", "org/bad--name", "org/-dash", "org/sp ace"])
def test_bad_repo_id_is_one_clear_line(capsys, tmp_path, fake_hub, repo_id):
    code, out, err = cli(capsys, "publish", str(hub_folder(tmp_path / "tiny")), "--repo", repo_id)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"'{repo_id}' is not a Hub repo id. Use ORG/NAME" in err
    assert uploads(fake_hub) == []


def test_missing_write_token_says_how_to_log_in(capsys, tmp_path, fake_hub, monkeypatch):
    fake_hub.token = "hf_write"
    folder = hub_folder(tmp_path / "tiny")
    with pytest.raises(PublishError) as err:
        publish_folder(folder, REPO, token="hf_wrong")
    for part in (REPO, "branch 'main'", fake_hub.endpoint, "HTTP 401", "hf auth login", "HF_TOKEN"):
        assert part in str(err.value)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    code, out, _ = cli(capsys, "publish", str(folder), "--repo", REPO)
    assert code == 0 and f"revision: {fake_hub.repos[REPO].branches['main']}" in out


def test_model_card_refused_by_the_hub_is_a_clear_error(tmp_path, fake_hub):
    folder = hub_folder(tmp_path / "tiny")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n# tiny\n")
    with pytest.raises(PublishError, match="Invalid metadata in README.md. - YAML front matter is not closed") as err:
        publish_folder(folder, REPO)
    assert "\n" not in str(err.value) and "/commit/" not in " ".join(fake_hub.requests("POST"))


def test_unreachable_hub_is_a_clear_error(tmp_path, fake_hub):
    fake_hub.stop()
    with pytest.raises(PublishError, match=f"on {fake_hub.endpoint}: the Hub could not be reached"):
        publish_folder(hub_folder(tmp_path / "tiny"), REPO)


def test_timm_loads_the_published_folder(tmp_path, fake_hub):
    import timm
    import torch
    from timm.models import save_for_hf
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    folder = tmp_path / "tiny"
    save_for_hf(model, str(folder), safe_serialization=True)
    pin(folder, json.loads((folder / CONFIG_FILE).read_text()))
    (folder / "README.md").write_text(CARD)
    revision = publish_folder(folder, REPO)
    loaded = timm.create_model(f"hf-hub:{REPO}@{revision}", pretrained=True)
    assert f"/{REPO}/resolve/{revision}/{WEIGHTS_FILE}" in fake_hub.requests("HEAD")
    assert loaded.num_classes == 10
    expected = model.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.state_dict().items())
