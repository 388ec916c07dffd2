"""The training loop end to end on CPU: outputs, exact resume after SIGKILL, divergence, undecodable images, errors."""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file
from train_support import TinyData, base_recipe, python_env, run_module, write_images, write_recipe

import ssld_zoo
from ssld_zoo.train import TrainingDivergedError, plot_run, train
from ssld_zoo.train.command import main
from ssld_zoo.train.checkpoint import CheckpointError
from ssld_zoo.train.engine import RunSetupError, shared_stage_changes
from ssld_zoo.train.networks import ModelBuildError
from ssld_zoo.train.optim import learning_rate, make_optimizer
from ssld_zoo.train.recipe import DataSource, Stage, parse_recipe


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_two_stage_distillation_run_writes_every_output(tmp_path: Path, tiny_data: TinyData):
    raw = base_recipe(tiny_data, runtime={"workers": 0, "checkpoint_every": 3, "ema": 0.8, "amp": "bf16",
                                          "channels_last": True, "log_every": 2})
    raw["data"]["augment"] = {"random_resized_crop": {"scale": [0.5, 1.0]}, "hflip": True,
                              "auto_augment": "rand-m7-mstd0.5", "eval_crop_pct": 0.875}
    raw["data"]["input_size"] = 32  # torch 2.14's CPU bf16 conv backward can give NaN on 1x1 maps (16 px input)
    raw["stages"].append({"name": "stage2", "epochs": 1, "lr": 0.0005, "weight_decay": 1.0e-4, "train": [
        {"source": f"list:{tiny_data.list_file}", "labels": False}]})
    run_dir = tmp_path / "run"
    folder = train(parse_recipe(raw), run_dir, device="cpu")
    assert folder == run_dir / "tiny_student"
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text()) == raw
    for name in ("model.safetensors", "config.json", "README.md"):  # others may read a shared model folder
        assert (folder / name).stat().st_mode & 0o777 == 0o644, name
    records = metrics(run_dir)
    assert [r["type"] for r in records] == ["teacher_eval", "epoch", "epoch", "epoch"]
    assert [(r["stage"], r["epoch"]) for r in records[1:]] == [("stage1", 1), ("stage1", 2), ("stage2", 1)]
    for r in records[1:]:
        assert r["images"] == (32 if r["stage"] == "stage1" else 24) and r["skipped"] == 0
        assert r["train_loss"] > 0 and r["img_per_s"] > 0 and r["eval_images"] == 24
        assert 0 <= r["eval_top1"] <= r["eval_top5"] <= 100 and "agreement" in r  # learning: test_distillation_learns
    assert records[0]["images"] == 24 and 0 <= records[0]["top1"] <= 100
    assert records[3]["lr"] == pytest.approx(0.0005 * 0.25)  # stage 2: its own cosine, step 3 of 3: cos(2pi/3)
    # the final student is the EMA, loadable by plain timm from the folder, with the recipe's preprocessing
    model = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert model.pretrained_cfg["input_size"] == [3, 32, 32] and model.pretrained_cfg["crop_pct"] == 0.875
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["position"] == {"stage": 2, "epoch": 0, "step": 0, "global_step": 11}
    final = weights(folder)
    assert all(torch.equal(final[k], saved["student"][k]) for k in final)
    card = (folder / "README.md").read_text()
    assert "exponential moving average" in card and "auto_augment: rand-m7-mstd0.5" in card
    assert "| stage2 epoch 1 |" in card and "Teacher on the same set" in card
    assert plot_run(run_dir).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_supervised_baseline_uses_labels(tmp_path: Path, tiny_data: TinyData):
    raw = base_recipe(tiny_data, loss={"type": "ce"}, teacher=None, batch_size=6)
    raw["stages"] = [{"epochs": 4, "lr": 0.01, "train": [{"source": f"list:{tiny_data.list_file}"}]}]
    folder = train(parse_recipe(raw), tmp_path / "run", device="cpu")
    records = metrics(tmp_path / "run")
    assert [r["type"] for r in records] == ["epoch"] * 4 and "agreement" not in records[0]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["eval_top1"] == 100  # the labelled half of the list teaches the colour-coded classes
    assert "supervised baseline" in (folder / "README.md").read_text()


def test_resume_after_sigkill_is_bit_identical(tmp_path: Path, tiny_data: TinyData):
    """A run killed with SIGKILL right after its first mid-epoch checkpoint, then resumed, ends with exactly the
    weights (and losses) of an uninterrupted run. The killed run uses 2 data workers, the reference none."""
    raw = base_recipe(tiny_data, batch_size=4, runtime={"workers": 2, "checkpoint_every": 5, "ema": 0.8})
    raw["stages"].append({"name": "stage2", "epochs": 5, "lr": 0.01, "train": [
        {"source": f"imagefolder:{tiny_data.imagefolder}", "subset": "per_class:4"}]})
    raw["stages"][0]["epochs"] = 1
    recipe = write_recipe(tmp_path / "recipe.yaml", raw)
    run_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ssld_zoo.train", str(recipe), "--out", str(run_dir),
                                 "--device", "cpu"], env=python_env(), stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 200
        while not (run_dir / "checkpoint.pt").exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()  # it ended before its checkpoint
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: the trainer and its data workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=True)["position"]
    assert stopped["global_step"] >= 5 and stopped["stage"] < 2 and not (run_dir / "tiny_student").exists()
    # Resumed and reference runs are fresh interpreters too, like the killed one: a library imported earlier in this
    # test process (paddle, by the conversion tests) may change process-wide CPU floating-point settings.
    for args in (["--resume", "runtime.workers=0"], ["runtime.workers=0"]):  # a resume may change the worker count
        out = run_dir if "--resume" in args else tmp_path / "reference"
        done = run_module(["-m", "ssld_zoo.train", str(recipe), "--out", str(out), "--device", "cpu", *args])
        assert done.returncode == 0, done.stderr
    a, b = weights(run_dir / "tiny_student"), weights(tmp_path / "reference" / "tiny_student")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("img_per_s", "seconds")
    assert ([{k: v for k, v in r.items() if k not in drop} for r in metrics(run_dir)]
            == [{k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / "reference")])


def _two_stage(tiny_data: TinyData, name: str, stage2_epochs: int, stage1_labels: bool) -> dict[str, Any]:
    raw = base_recipe(tiny_data, name=name)
    raw["stages"][0]["train"][0]["labels"] = stage1_labels  # a label-free loss never reads them
    raw["stages"].append({"name": "stage2", "epochs": stage2_epochs, "lr": 0.005, "train": [
        {"source": f"imagefolder:{tiny_data.imagefolder}"}]})
    return raw


def test_start_from_another_runs_stage_end_equals_running_the_whole_recipe(tmp_path: Path, tiny_data: TinyData):
    """Recipe B shares recipe A's stage 1 (up to a labels flag the distillation loss ignores): B started from A's
    stage-end checkpoint ends with exactly the weights and records of B run from scratch."""
    a = parse_recipe(_two_stage(tiny_data, "a_student", 1, stage1_labels=False))
    b = parse_recipe(_two_stage(tiny_data, "b_student", 3, stage1_labels=True))
    train(a, tmp_path / "a", device="cpu")
    kept = tmp_path / "a" / "checkpoint.stage1.pt"
    assert torch.load(kept, weights_only=True)["position"] == {"stage": 1, "epoch": 0, "step": 0, "global_step": 8}
    assert not (tmp_path / "a" / "checkpoint.stage2.pt").exists()  # the last stage ends in the exported student
    branched = train(b, tmp_path / "b", start_from=kept, device="cpu")
    whole = train(b, tmp_path / "b_whole", device="cpu")
    x, y = weights(branched), weights(whole)
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    drop = ("img_per_s", "seconds")
    records = [{k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / "b")]
    taken = [r for r in records if r["type"] == "start_from"]
    assert taken == [{"type": "start_from", "checkpoint": str(kept), "sha256": ssld_zoo.files.file_sha256(kept),
                      "recipe": "a_student", "stages": ["stage1"], "global_step": 8}]
    assert [r for r in records if r["type"] != "start_from"] == [
        {k: v for k, v in r.items() if k not in drop} for r in metrics(tmp_path / "b_whole")]
    assert "were run once, by recipe `a_student`" in (branched / "README.md").read_text()


def test_start_from_refuses_what_it_cannot_continue(tmp_path: Path, tiny_data: TinyData):
    a = _two_stage(tiny_data, "a_student", 1, stage1_labels=False)
    train(parse_recipe(a), tmp_path / "a", device="cpu")
    kept = tmp_path / "a" / "checkpoint.stage1.pt"
    faster = copy.deepcopy(a)
    faster["stages"][0]["lr"] = 0.1
    with pytest.raises(CheckpointError, match=r"recipe 'a_student'.*stages\.0\.lr differ"):
        train(parse_recipe(faster), tmp_path / "x", start_from=kept, device="cpu")
    labelled = _two_stage(tiny_data, "a_student", 1, stage1_labels=True)
    assert shared_stage_changes(a, labelled, 1, label_free=True) == []
    assert shared_stage_changes(a, labelled, 1, label_free=False) == ["stages.0.train.0.labels"]  # `ce` reads them
    with pytest.raises(CheckpointError, match="stands at the end of its whole run"):
        train(parse_recipe(a), tmp_path / "z", start_from=tmp_path / "a" / "checkpoint.pt", device="cpu")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        train(parse_recipe(a), tmp_path / "z", start_from=tmp_path / "missing.pt", device="cpu")
    with pytest.raises(RunSetupError, match="pass only one"):
        train(parse_recipe(a), tmp_path / "a", start_from=kept, resume=True, device="cpu")
    assert not any((tmp_path / d).exists() for d in ("x", "z"))


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, tiny_data: TinyData):
    raw = base_recipe(tiny_data, runtime={"workers": 0, "checkpoint_every": 1})
    raw["stages"][0].update(lr=1.0e12, warmup_epochs=0)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as error:
        train(parse_recipe(raw), run_dir, device="cpu")
    message = str(error.value)
    assert "stage 'stage1' (1/1), epoch 1/2, step 2/4" in message
    assert f"last good checkpoint (global step 1) is kept at {run_dir / 'checkpoint.pt'}" in message
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["position"]["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in saved["student"].values() if v.is_floating_point())


def test_undecodable_images_are_skipped_and_reported(tmp_path: Path, tiny_data: TinyData):
    pool = tiny_data.root / "pool"
    write_images(pool, 13, size=(24, 24), seed=5)
    (pool / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (pool / "empty.png").write_bytes(b"")
    good = (pool / "000.png").read_bytes()
    (pool / "truncated.png").write_bytes(good[: len(good) // 3])
    raw = base_recipe(tiny_data)
    raw["stages"][0]["train"] = [{"source": f"folder:{pool}"}]  # 16 files, 3 unreadable
    raw["data"]["eval"] = {"source": f"list:{tiny_data.list_file}"}
    train(parse_recipe(raw), tmp_path / "run", device="cpu")
    epochs = [r for r in metrics(tmp_path / "run") if r["type"] == "epoch"]
    assert [(r["skipped"], r["images"]) for r in epochs] == [(3, 13), (3, 13)]
    assert all(r["eval_images"] == 12 for r in epochs)  # only the list's labelled half counts for top-1


def test_catalogue_named_recipe_is_verifiable_by_create(tmp_path: Path, tiny_data: TinyData, extra_catalogue):
    extra_catalogue()
    raw = base_recipe(tiny_data, name="tiny_resnet_ssld.ssld_in1k", student={"model": "tiny_resnet_ssld"},
                      teacher={"model": "test_resnet", "bn": "eval"})
    raw["stages"][0]["epochs"] = 1
    folder = train(parse_recipe(raw), tmp_path / "run", device="cpu")
    model = ssld_zoo.create("tiny_resnet_ssld", pretrained=folder)  # checks the sha256 in config.json
    final = weights(folder)
    assert all(torch.equal(v, final[k]) for k, v in model.state_dict().items())
    card = (folder / "README.md").read_text()
    assert card.startswith("---") and "## Training run (ssld_zoo)" in card
    wrong = base_recipe(tiny_data, name="tiny_resnet_ssld.ssld_in1k")
    with pytest.raises(ModelBuildError, match="catalogue weight of architecture 'test_resnet' with 1000 classes"):
        train(parse_recipe(wrong), tmp_path / "wrong", device="cpu")


def test_run_folder_rules(tmp_path: Path, tiny_data: TinyData):
    raw = base_recipe(tiny_data)
    raw["stages"][0]["epochs"] = 1
    run_dir = tmp_path / "run"
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        train(parse_recipe(raw), run_dir, resume=True, device="cpu")
    train(parse_recipe(raw), run_dir, device="cpu")
    with pytest.raises(RunSetupError, match="already holds a run"):
        train(parse_recipe(raw), run_dir, device="cpu")
    changed = dict(raw, batch_size=4)
    with pytest.raises(CheckpointError, match=r"different recipe \(batch_size differ"):
        train(parse_recipe(changed), run_dir, resume=True, device="cpu")
    big = dict(raw, batch_size=64)
    with pytest.raises(RunSetupError, match="32 images, fewer than batch_size 64"):
        train(parse_recipe(big), tmp_path / "big", device="cpu")
    labels = base_recipe(tiny_data, student={"model": "test_resnet", "model_args": {"num_classes": 2}},
                         teacher={"model": "test_resnet", "model_args": {"num_classes": 2}})
    with pytest.raises(RunSetupError, match="has label 2, but the student predicts 2 classes"):
        train(parse_recipe(labels), tmp_path / "labels", device="cpu")


def test_learning_rate_warms_up_linearly_then_follows_a_cosine():
    stage = Stage("s", epochs=4, lr=0.4, train=(DataSource("folder:/x"),), warmup_epochs=0.5)
    lrs = [learning_rate(stage, step, 10) for step in range(40)]
    assert lrs[:5] == pytest.approx([0.08, 0.16, 0.24, 0.32, 0.4])
    assert lrs[5] == pytest.approx(0.4) and lrs[-1] == pytest.approx(0.2 * (1 + math.cos(math.pi * 34 / 35)))
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))


def test_norm_and_bias_parameters_get_no_weight_decay(tiny_data: TinyData):
    recipe = parse_recipe(base_recipe(tiny_data))
    model = timm.create_model("test_resnet", num_classes=3)
    groups = make_optimizer(model, recipe.stages[0], recipe).param_groups
    assert [g["weight_decay"] for g in groups] == [1.0e-4, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    assert groups[0]["nesterov"] and groups[0]["momentum"] == 0.9
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    everything = parse_recipe(dict(base_recipe(tiny_data), optimizer={"momentum": 0.9}))
    assert len(make_optimizer(model, everything.stages[0], everything).param_groups) == 1


def test_command_line(tmp_path: Path, tiny_data: TinyData, capsys: pytest.CaptureFixture):
    recipe = write_recipe(tmp_path / "r.yaml", base_recipe(tiny_data))
    out = tmp_path / "run"
    assert main([str(recipe), "--out", str(out), "--device", "cpu", "stages.0.epochs=1", "runtime.log_every=1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "tiny_student")
    assert "stage1 epoch 1/1 step 1/4: loss" in captured.err and "stage1 epoch 1/1: loss" in captured.err
    assert "run 1/4 steps, ETA" in captured.err  # the whole run's ETA
    assert main([str(recipe), "--out", str(out), "stages.0.epochs=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ssld-zoo: error: ") and "already holds a run" in err and err.count("\n") == 1
    assert main([str(tmp_path / "missing.yaml")]) == 1
    assert "Cannot read recipe" in capsys.readouterr().err
    with pytest.raises(ssld_zoo.SsldZooError, match="Cannot read .*metrics.jsonl"):
        plot_run(tmp_path)
