"""torchrun with 2 CPU processes (gloo) against one process with the same global batch.

What is asserted, and why: the student and teacher have no BatchNorm (test_vit, test_convnext: LayerNorm only), so
every sample's loss is independent of the others in its batch. Each rank then averages the loss over its half of the
global batch and DDP averages the gradients, which is the single-process gradient up to float summation order. So the
final weights must agree to 1e-5 while training has moved them far more than that, and the per-epoch losses and eval
numbers must agree too. (With BatchNorm the ranks would normalise with half-batch statistics and the runs would
legitimately differ.)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file
from train_support import TinyData, base_recipe, run_module, write_recipe

from ssld_zoo.train import train
from ssld_zoo.train.networks import build_network
from ssld_zoo.train.recipe import parse_recipe


def _no_batchnorm_recipe(tiny_data: TinyData) -> dict:
    raw = base_recipe(tiny_data, student={"model": "test_vit", "model_args": {
        "num_classes": 3, "img_size": 32, "patch_size": 8}},
        teacher={"model": "test_convnext", "model_args": {"num_classes": 3}, "bn": "eval"}, loss={"type": "soft_ce"})
    raw["data"]["input_size"] = 32
    raw["stages"][0].update(lr=0.1, epochs=2)
    return raw


def _final_weights(tmp_path: Path, raw: dict) -> tuple[dict, dict]:
    """The student after torchrun with 2 processes and after one process, from the same recipe."""
    recipe = write_recipe(tmp_path / "recipe.yaml", raw)
    result = run_module(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                         "ssld_zoo.train", str(recipe), "--out", str(tmp_path / "ddp"), "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    single = train(parse_recipe(raw), tmp_path / "single", device="cpu")
    return (load_file(tmp_path / "ddp" / "tiny_student" / "model.safetensors"),
            load_file(single / "model.safetensors"))


def test_ranks_that_drop_different_numbers_of_images_still_take_the_global_mean(tmp_path: Path,
                                                                                tiny_data: TinyData):
    """Undecodable images are dropped by the rank that reads them, so ranks count different numbers of samples in
    some steps; the loss is the mean over the global batch's samples (sums and counts all-reduced), so the two
    processes still train exactly as one. A mean of each rank's own mean would differ here."""
    unlabeled = sorted(tiny_data.unlabeled.rglob("*.jpg"))
    for path in unlabeled[:3]:
        path.write_bytes(b"not a jpeg")
    raw = _no_batchnorm_recipe(tiny_data)
    ddp, one = _final_weights(tmp_path, raw)
    records = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("skipped", 0) for r in records if r["type"] == "epoch") == 6  # 3 images, 2 epochs
    differ = max((one[k] - ddp[k]).abs().max().item() for k in one)
    assert differ < 1e-5, differ


def test_torchrun_two_processes_match_one_process(tmp_path: Path, tiny_data: TinyData):
    raw = _no_batchnorm_recipe(tiny_data)
    recipe = write_recipe(tmp_path / "recipe.yaml", raw)
    result = run_module(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                         "ssld_zoo.train", str(recipe), "--out", str(tmp_path / "ddp"), "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "ddp" / "tiny_student")  # printed once, by rank 0
    single = train(parse_recipe(raw), tmp_path / "single", device="cpu")

    ddp = load_file(tmp_path / "ddp" / "tiny_student" / "model.safetensors")
    one = load_file(single / "model.safetensors")
    torch.manual_seed(0)  # the run's seed, set right before it builds the student
    init = build_network(parse_recipe(raw).student, "student").module.state_dict()
    moved = max((one[k] - init[k]).abs().max().item() for k in one)
    differ = max((one[k] - ddp[k]).abs().max().item() for k in one)
    assert moved > 1e-2 and differ < 1e-5, (moved, differ)

    def records(run: Path) -> list[dict]:
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    ddp_records, single_records = records(tmp_path / "ddp"), records(tmp_path / "single")
    assert [r["type"] for r in ddp_records] == [r["type"] for r in single_records] == ["teacher_eval", "epoch", "epoch"]
    for a, b in zip(ddp_records, single_records, strict=True):
        if a["type"] == "epoch":  # the teacher_eval record has no training loss
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert (a.get("images"), a.get("eval_top1"), a.get("agreement"), a.get("top1")) == (
            b.get("images"), b.get("eval_top1"), b.get("agreement"), b.get("top1"))
    model = timm.create_model(f"local-dir:{tmp_path / 'ddp' / 'tiny_student'}", pretrained=True)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)
