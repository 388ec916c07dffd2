"""`ssld-zoo release` end to end: the loopback PaddleClas host serves paddle-generated files, PaddleClas's own model
proves each conversion, the loopback Hub receives the folders, and the catalogue update applies with one command.
Failures midway, a Ctrl-C, a resumed download and a converter bug are each followed by a rerun."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import ssld_zoo
from paddle_oracle import build_paddle_model, case_for
from ssld_zoo.catalogue import registry
from ssld_zoo.cli import main as cli
from ssld_zoo.weights.download import partial_path
from ssld_zoo.tools.release import Release, apply_update, tensor_differences

pytest.importorskip("paddle", reason="paddle is part of the paddle extra, installed by .ci/run")

LCNET, MOBILENET = "lcnet_025_ssld.ssld_in1k", "mobilenetv3_small_035_ssld.ssld_in1k"
PATHS = {LCNET: "dygraph/legendary_models/PPLCNet_x0_25_ssld_pretrained.pdparams",
         MOBILENET: "dygraph/legendary_models/MobileNetV3_small_x0_35_ssld_pretrained.pdparams"}


@pytest.fixture(scope="module")
def paddle_files(tmp_path_factory) -> dict[str, bytes]:
    """`paddle.save` files of the two PaddleClas models with random weights."""
    import paddle
    folder = tmp_path_factory.mktemp("paddle")
    files = {}
    for name in PATHS:
        path = folder / f"{name}.pdparams"
        paddle.save(build_paddle_model(case_for(name.split(".")[0])).state_dict(), str(path))
        files[name] = path.read_bytes()
    return files


@pytest.fixture
def host(isolated_paddle_origin, paddle_files, fake_hub):
    for name, path in PATHS.items():
        isolated_paddle_origin.files[path] = paddle_files[name]
    return isolated_paddle_origin


def release(state: Path, **options) -> tuple[Release, list[str]]:
    lines: list[str] = []
    return Release(state, options.pop("org", "zoo-test"), log=options.pop("log", lines.append), **options), lines


def weights(*names: str) -> list:
    return [registry.get_weight_entry(name) for name in names]


def test_release_end_to_end_with_a_failure_midway_and_a_resume(host, paddle_files, fake_hub, tmp_path, monkeypatch):
    state = tmp_path / "state"
    del host.files[PATHS[MOBILENET]]  # the second weight's file is missing at first
    run, lines = release(state)
    results = run.run(weights(LCNET, MOBILENET))
    assert results[LCNET].released and not results[MOBILENET].released
    assert results[MOBILENET].failure["step"] == "download" and "HTTP 404" in results[MOBILENET].failure["reason"]
    assert any("match PaddleClas" in line and LCNET in line for line in lines)
    assert list(json.loads((state / "catalogue-update.json").read_text())["weights"]) == [LCNET]

    host.files[PATHS[MOBILENET]] = paddle_files[MOBILENET]
    host.log.clear()
    run, lines = release(state)
    results = run.run(weights(LCNET, MOBILENET))
    assert all(r.released for r in results.values())
    assert host.log == [PATHS[MOBILENET]]  # the released weight was skipped: no second download of it
    assert any("already released" in line and LCNET in line for line in lines)

    update = json.loads((state / "catalogue-update.json").read_text())
    assert sorted(update["weights"]) == sorted(PATHS)
    for name, change in update["weights"].items():
        commit = fake_hub.repos[f"zoo-test/{name}"].commits[change["hub"]["revision"]]
        assert len(commit["model.safetensors"]) == change["hub"]["size"]
        assert 0 <= change["proof"]["worst_relative_error"] <= 1e-4
        assert change["origin"]["size"] == len(paddle_files[name])

    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(registry.BUILTIN_CATALOGUE.read_text())
    assert sorted(apply_update(state / "catalogue-update.json", catalogue)) == sorted(PATHS)
    applied = json.loads(catalogue.read_text())["models"]["lcnet_025_ssld"]["weights"]["ssld_in1k"]
    assert applied["status"] == "published" and applied["hub"]["repo_id"] == f"zoo-test/{LCNET}"
    monkeypatch.setenv("SSLD_ZOO_CATALOGUE", str(catalogue))
    registry.refresh()
    try:  # the applied catalogue loads the published weights from the Hub, verified
        assert registry.get_weight_entry(LCNET).on_hub
        model = ssld_zoo.create(LCNET, pretrained=True)
        published = load_file(state / LCNET / "hub" / "model.safetensors")
        assert all(torch.equal(model.state_dict()[k], v) for k, v in published.items())
    finally:
        monkeypatch.delenv("SSLD_ZOO_CATALOGUE")
        registry.refresh()


def test_ctrl_c_resumes_at_the_step_it_stopped_in_and_a_partial_download_resumes(host, paddle_files, tmp_path):
    state = tmp_path / "state"

    def interrupt_at_publish(line: str) -> None:
        if line.endswith(": publish"):
            raise KeyboardInterrupt

    run, _ = release(state, log=interrupt_at_publish)
    with pytest.raises(KeyboardInterrupt):
        run.run(weights(LCNET))
    done = json.loads((state / LCNET / "state.json").read_text())["done"]
    assert sorted(done) == ["convert", "download", "mirrors", "prove"]

    host.log.clear()
    run, lines = release(state)
    assert run.plan(weights(LCNET)) == [f"{LCNET} -> zoo-test/{LCNET}: to do: publish"]
    assert run.run(weights(LCNET))[LCNET].released and host.log == []  # nothing downloaded again
    assert [line.rsplit(": ", 1)[1] for line in lines if line.startswith(f"[release] {LCNET}: ")][0] == "publish"

    # a download cut short resumes from its bytes with a Range request
    other = tmp_path / "other"
    pdparams = other / MOBILENET / PATHS[MOBILENET].rsplit("/", 1)[1]
    pdparams.parent.mkdir(parents=True)
    partial_path(pdparams).write_bytes(paddle_files[MOBILENET][:1000])
    host.ranges.clear()
    run, _ = release(other)
    assert run.run(weights(MOBILENET))[MOBILENET].released
    assert host.ranges == [1000] and pdparams.read_bytes() == paddle_files[MOBILENET]


def test_a_converter_bug_stops_that_weight_with_a_report_and_publishes_nothing(host, fake_hub, tmp_path,
                                                                              monkeypatch):
    from ssld_zoo.convert import CONVERTERS, _load_families
    _load_families()
    real = CONVERTERS["lcnet_025_ssld"]

    def buggy(arrays, name):  # a converter that forgets to scale one layer
        converted = real(arrays, name)
        key = next(k for k, v in converted.items() if v.ndim == 4)
        converted[key] = converted[key] * 1.01
        return converted

    monkeypatch.setitem(CONVERTERS, "lcnet_025_ssld", buggy)
    run, _ = release(tmp_path / "state")
    result = run.run(weights(LCNET))[LCNET]
    assert not result.released and result.failure["step"] == "prove"
    assert "differs from PaddleClas" in result.failure["reason"] and "nothing was published" in result.failure["reason"]
    assert f"zoo-test/{LCNET}" not in fake_hub.repos
    assert json.loads((tmp_path / "state" / "catalogue-update.json").read_text())["weights"] == {}


def test_validation_flags_a_weight_far_from_paddles_top1(host, fake_hub, tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (260, 300, 3), dtype=np.uint8)).save(val / f"img{i}.jpg")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"img{i}.jpg {i}\n" for i in range(4)))
    run, _ = release(tmp_path / "state", val=val, labels=labels)
    result = run.run(weights(LCNET))[LCNET]
    assert result.failure["step"] == "evaluate" and "held back" in result.failure["reason"]
    assert f"zoo-test/{LCNET}" not in fake_hub.repos  # random weights are far from PaddleClas's 51.86%

    run, _ = release(tmp_path / "state", val=val, labels=labels, accept_flagged=True)
    result = run.run(weights(LCNET))[LCNET]
    assert result.released and result.done["evaluate"]["images"] == 4
    assert result.done["evaluate"]["preprocess"] == "paddle" and result.done["evaluate"]["input_size"] == 224


def test_mirrors_are_compared_tensor_by_tensor_and_only_an_equal_one_is_loaded(host, fake_hub, tmp_path,
                                                                               monkeypatch):
    ours_run, _ = release(tmp_path / "ours")
    ours_run.run(weights(LCNET))
    ours = load_file(tmp_path / "ours" / LCNET / "hub" / "model.safetensors")
    scaled = dict(ours, **{"classifier.weight": ours["classifier.weight"] * 0.8})
    mirrors = {}
    for repo, tensors in (("timm/lcnet_025.same", ours), ("timm/lcnet_025.scaled", scaled)):
        save_file(tensors, tmp_path / "m.safetensors")
        fake_hub.publish(repo, {"model.safetensors": (tmp_path / "m.safetensors").read_bytes()})
        mirrors[repo] = {"repo_id": repo, "filename": "model.safetensors", "revision": None, "sha256": None,
                         "size": None, "verdict": None, "detail": None, "checked": None}
    catalogue = tmp_path / "catalogue.json"
    doc = json.loads(registry.BUILTIN_CATALOGUE.read_text())
    doc["models"]["lcnet_025_ssld"]["weights"]["ssld_in1k"]["mirrors"] = list(mirrors.values())
    catalogue.write_text(json.dumps(doc))
    monkeypatch.setenv("SSLD_ZOO_CATALOGUE", str(catalogue))
    registry.refresh()
    try:
        assert registry.get_weight_entry(LCNET).verified_mirror is None  # never checked: never loaded
        run, lines = release(tmp_path / "state")
        result = run.run(weights(LCNET))[LCNET]
        verdicts = {v["repo_id"]: v for v in result.done["mirrors"]["verdicts"]}
        assert verdicts["timm/lcnet_025.same"]["verdict"] == "equal"
        assert verdicts["timm/lcnet_025.scaled"]["verdict"] == "differs"
        assert verdicts["timm/lcnet_025.scaled"]["detail"] == "classifier.weight = 1.25 x the mirror's"

        apply_update(tmp_path / "state" / "catalogue-update.json", catalogue)
        doc = json.loads(catalogue.read_text())
        weight = doc["models"]["lcnet_025_ssld"]["weights"]["ssld_in1k"]
        weight.update(status="unpublished", hub=dict(weight["hub"], revision=None, sha256=None, size=None))
        catalogue.write_text(json.dumps(doc))  # not on our Hub: only the verified mirror can serve it
        registry.refresh()
        mirror = registry.get_weight_entry(LCNET).verified_mirror
        assert mirror is not None and mirror.repo_id == "timm/lcnet_025.same" and len(mirror.revision) == 40
        host.files.clear()  # no PaddleClas file to fall back on
        model = ssld_zoo.create(LCNET, pretrained=True)
        assert torch.equal(model.state_dict()["classifier.weight"], ours["classifier.weight"])
    finally:
        monkeypatch.delenv("SSLD_ZOO_CATALOGUE")
        registry.refresh()


def test_tensor_differences_names_what_differs():
    a = {"x": torch.ones(3), "y": torch.zeros(2), "only_a": torch.ones(1)}
    b = {"x": torch.ones(3) * 2, "y": torch.zeros(3), "only_b": torch.ones(1)}
    assert tensor_differences(a, b) == ["only_a only in this conversion", "only_b only in the mirror",
                                        "x = 0.5 x the mirror's", "y shape (2,) vs (3,)"]
    assert tensor_differences(a, dict(a)) == []


def test_cli_dry_run_and_errors(host, tmp_path, capsys):
    assert cli(["release", "--dry-run", "--only", "lcnet_025*", "--org", "me", "--state", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == (f"{LCNET} -> me/{LCNET}: to do: download, convert, prove, mirrors, "
                                                "publish")
    assert cli(["release", "--only", "nope*", "--state", str(tmp_path)]) == 1
    assert "matches no weight with a PaddleClas origin" in capsys.readouterr().err
    assert cli(["release", "--only", "lcnet_025*", "--state", str(tmp_path)]) == 1
    assert "--org ORG" in capsys.readouterr().err
    bad = tmp_path / "update.json"
    bad.write_text("[]")
    assert cli(["release", "--apply", str(bad)]) == 1
    assert "is not a release update" in capsys.readouterr().err
