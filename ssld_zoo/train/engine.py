"""The training loop: stages of epochs of steps, one process or DistributedDataParallel under torchrun.

Each step: the student sees a batch, the frozen teacher sees the same batch under `no_grad`, the loss (labels only for
`ce`) is averaged over the global batch, SGD steps with the per-step learning rate, the EMA follows; no step waits
for the device (the loss is read and checked every `log_every` steps). After each epoch: evaluation (or every
`eval_every` steps), a line in `metrics.jsonl`, a checkpoint. A stage ends with the student taking its EMA weights
(when EMA is on), and the next stage starts from it with a fresh optimizer. The run ends with the student exported
to `RUN_DIR/<recipe name>/`.

A run may also start from another run's stage-end checkpoint (`start_from`) when its recipe agrees on everything that
shaped the stages before it: SSLD recipes (b) and (d) share a label-free stage 1, so (d) needs only its stage 2.

Resuming is exact: data order and augmentation depend only on (seed, stage, epoch, index), the torch RNG is reseeded
from (seed, rank, global step) before each step, and the checkpoint holds optimizer, EMA and running totals.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, cast

import numpy as np
import torch
import yaml
from torch import nn

from ssld_zoo.errors import TrainingDivergedError, RunSetupError
from ssld_zoo.files import file_sha256, run_lock, write_text_atomic
from ssld_zoo.reporting import progress_bars
from ssld_zoo.train import checkpoint, distributed
from ssld_zoo.train.checkpoint import CHECKPOINT_FILE, CheckpointError, Position, stage_end_file
from ssld_zoo.train.data import EvalBatches, ImageDataset, TrainBatches, Transform, loader, open_source
from ssld_zoo.train.soft_labels import CachedDataset
from ssld_zoo.train.hub_folder import check_output_name, write_hub_folder
from ssld_zoo.train.losses import IGNORE_LABEL, complete_topk, counted, get_loss, reduce
from ssld_zoo.train.networks import Normalized, build_pair, freeze_teacher, normalized, num_classes, unit_pixels
from ssld_zoo.train.optim import learning_rate, make_optimizer
from ssld_zoo.train.recipe import Recipe, load_recipe, saved_recipe
from ssld_zoo.train.resume import setting_changes
from ssld_zoo.train.scoring import Scores, score

if TYPE_CHECKING:
    from timm.utils import ModelEmaV3

METRICS_FILE = "metrics.jsonl"
RECIPE_FILE = "recipe.yaml"
RESUMABLE_CHANGES = ("runtime.workers", "runtime.log_every", "runtime.checkpoint_every")
_DESCRIPTIVE = ("name", "description", "reference")
_logger = logging.getLogger(__name__)


@dataclass
class Totals:
    """Running sums of the current epoch (global over all processes), as of the last `Pending.flush`."""

    loss_sum: float = 0.0
    counted: float = 0.0
    images: int = 0
    skipped: int = 0
    seconds: float = 0.0
    lr: float = 0.0


@dataclass
class StageResume:
    """What a checkpoint restores into the stage it was written in: optimizer and EMA state, the epoch's totals."""

    optimizer: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    totals: Totals | None = None


class Pending:
    """Step statistics not yet added to `Totals`: kept on the device, so a step never waits for it.

    `flush` sums them over all processes and checks the loss, once per `log_every` steps, before a checkpoint or
    an evaluation, and at the end of each epoch (the way nanoGPT reads its loss only at its log interval).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, samples that count
        self.images = self.skipped = 0
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # global step of a non-finite loss

    def add(self, per_sample: torch.Tensor, count: torch.Tensor, images: int, skipped: int, step: int) -> None:
        loss_sum = per_sample.detach().sum().double()
        self.loss += torch.stack([loss_sum, count.double()])
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss_sum), step, self.first_bad)
        self.images += images
        self.skipped += skipped

    def flush(self, ctx: distributed.Context, totals: Totals) -> int | None:
        """Add everything pending to `totals`; the global step where the loss stopped being finite, if it did."""
        stats = torch.cat([self.loss, torch.tensor([self.images, self.skipped], dtype=torch.float64,
                                                   device=self.device)])
        loss_sum, n, images, skipped = ctx.all_sum(stats).tolist()
        first_bad = int(self.first_bad)
        self.loss.zero_()
        self.images = self.skipped = 0
        totals.loss_sum += loss_sum
        totals.counted += n
        totals.images += int(images)
        totals.skipped += int(skipped)
        if math.isfinite(loss_sum):
            return None
        return first_bad if first_bad >= 0 else -1


def train(recipe: Recipe | str | os.PathLike, run_dir: str | os.PathLike, *, resume: bool = False,
          start_from: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
          device: str | None = None) -> Path:
    """Run a recipe (a `Recipe` or a YAML path) in `run_dir` and return the folder of the trained student.

    `resume=True` continues from `run_dir/checkpoint.pt`. `start_from` starts a new run from another run's stage-end
    checkpoint (`OTHER_RUN/checkpoint.<stage>.pt`) when both recipes agree on the stages up to there. `data_root` is
    the data folder for `cifar10:` sources (default `$SSLD_ZOO_DATA`); `device` is "cpu" or "cuda" (default: cuda when
    available). Under torchrun every process calls this; rank 0 writes the files.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    run_dir = Path(run_dir)
    if start_from is not None:
        if resume:
            raise RunSetupError("--start-from begins a new run and --resume continues one; pass only one of them.")
        if not Path(start_from).is_file():
            raise CheckpointError(f"--start-from {start_from}: there is no such checkpoint file. A run keeps one at "
                                  "the end of every stage but the last, as RUN_DIR/checkpoint.<stage name>.pt.")
    # one run at a time owns the folder; under torchrun, rank 0 holds it for all (torchrun ends the others if it fails)
    with run_lock(run_dir) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext():
        if (run_dir / CHECKPOINT_FILE).exists() != resume:
            if resume:
                raise CheckpointError(f"There is no checkpoint to resume at {run_dir / CHECKPOINT_FILE}; start the "
                                      "run without --resume.")
            raise RunSetupError(f"{run_dir} already holds a run ({CHECKPOINT_FILE}). Pass --resume to continue it, "
                                "or choose another --out.")
        context = distributed.setup(device)
        try:
            origin = None if start_from is None else Path(start_from)
            return Trainer(recipe, run_dir, context, data_root).run(resume, origin)
        finally:
            distributed.teardown(context)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    if isinstance(node, list):
        return {k: v for i, value in enumerate(node) for k, v in _flatten(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): node}


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two recipes, apart from the ones a resume may change."""
    return setting_changes(_flatten(old), _flatten(new), may_change=RESUMABLE_CHANGES)


def shared_stage_changes(old: dict[str, Any], new: dict[str, Any], stages: int, label_free: bool) -> list[str]:
    """Dotted keys that shaped the first `stages` stages and differ between two recipes.

    Names, descriptions and references shape nothing, and neither do later stages; with a `label_free` loss neither
    does whether a training source hands its labels on (the loss never reads them).
    """
    def shaping(raw: dict[str, Any]) -> dict[str, Any]:
        flat = _flatten({**raw, "stages": list(raw.get("stages") or [])[:stages]})
        return {k: v for k, v in flat.items() if k.split(".")[0] not in _DESCRIPTIVE
                and not (label_free and k.startswith("stages.") and k.endswith(".labels"))}
    return recipe_changes(shaping(old), shaping(new))


class Trainer:
    """One run of one recipe in one process (of one or many).

    One handle per network and role:
    - `student`: the bare student network (timm, no input normalisation): the one the optimizer trains, whose weights
      are checkpointed (as "student") and exported; `student_network` adds how to build it again (architecture, args).
    - `student_step`: what a training step calls on normalised images: `student` under DDP and `torch.compile` when
      they are on; `student_input` normalises for it.
    - `student_ema`: timm's `ModelEmaV3` of `student` in the current stage (None without `runtime.ema`); its `.module`
      is the averaged copy that evaluation scores and the next stage starts from.
    - `teacher`: the frozen teacher (or ensemble) behind its own normalisation: images in [0, 1] to logits. None for
      a supervised recipe and with `soft_labels: cache`. A step runs `teacher_network` (its network, compiled when
      `runtime.compile` is on) on the student's normalised batch when both normalise alike (`shared_input`).
    """

    def __init__(self, recipe: Recipe, run_dir: Path, context: distributed.Context,
                 data_root: str | os.PathLike | None) -> None:
        self.recipe, self.run_dir, self.ctx, self.data_root = recipe, run_dir, context, data_root
        self.checkpoint_path = run_dir / CHECKPOINT_FILE
        self.recipe_yaml = yaml.safe_dump(recipe.raw, sort_keys=False)
        self.position = Position()
        self.metrics: list[dict[str, Any]] = []
        self.teacher_pred: torch.Tensor | None = None
        self.saved_step: int | None = None
        self.resume = StageResume()
        self.progress: Callable[[str, int, int, Totals], None] = lambda label, step, steps, totals: None
        r, device = recipe, context.device
        if r.batch_size % context.world:
            raise RunSetupError(f"batch_size {r.batch_size} (global) does not split evenly over {context.world} "
                                "processes.")
        self.memory_format = torch.channels_last if r.runtime.channels_last else torch.contiguous_format
        self.autocast_dtype = torch.bfloat16 if r.runtime.amp == "bf16" else None
        self.loss_fn = get_loss(r.loss.type, r.loss.temperature)
        torch.manual_seed(r.runtime.seed)  # the student's initial weights
        self.student_network, teacher = build_pair(r.student, r.teachers, data_root)
        self.soft_labels = None
        if r.soft_labels == "cache":
            from ssld_zoo.train.soft_labels import open_cache
            assert teacher is not None
            self.soft_labels = open_cache(r, teacher.model, data_root)
            teacher = None  # the soft-label cache holds its predictions: training never runs it
        check_output_name(r, self.student_network)
        self.student = self.student_network.module.to(device).to(memory_format=self.memory_format)
        self.student_ema: ModelEmaV3 | None = None
        self.classes = num_classes(self.student)
        normalized_student = self._normalized(self.student)
        fill = tuple(self.soft_labels.manifest["fill"] if self.soft_labels is not None
                     else (round(255 * m) for m in normalized_student.mean.flatten().tolist()))
        self.train_transform = Transform(r.data.input_size, r.data.augment, train=True, fill=fill)
        self.eval_set = None
        if r.data.eval is not None:
            self.eval_set = ImageDataset([open_source(r.data.eval, data_root)],
                                         Transform(r.data.input_size, r.data.augment, train=False))
            self._check_labels(self.eval_set, r.data.eval.source)
        self.student_input = normalized_student
        student_step: nn.Module = self.student
        if context.world > 1:
            student_step = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[device] if device.type == "cuda" else None)
        self.student_step: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(student_step) if r.runtime.compile else student_step)
        self.teacher: Normalized | None = None
        if teacher is not None:
            self.teacher = teacher.to(device).to(memory_format=self.memory_format)
            self.teacher_network = cast(nn.Module, torch.compile(teacher.model)) if r.runtime.compile else teacher.model
            self.shared_input = teacher.same_normalization(normalized_student)

    # -- run ---------------------------------------------------------------------------------------------------
    def run(self, resume: bool, start_from: Path | None = None) -> Path:
        r = self.recipe
        total_steps = self._run_steps()  # opens every training source first: bad data fails before any work
        if resume:
            self._restore(checkpoint.load(self.checkpoint_path))
        else:
            if start_from is not None:
                self._take_over(checkpoint.load(start_from), start_from)
            self._start_run_dir()
        if self.eval_set is not None and self.teacher_pred is None:
            if self.teacher is not None:
                self._evaluate_teacher()
            elif self.soft_labels is not None:
                self._cached_teacher_eval()
        with self._progress(total_steps) as self.progress:
            for index in range(self.position.stage, len(r.stages)):
                self._run_stage(index)
        folder = self.run_dir / r.name
        if self.ctx.main:
            folder = write_hub_folder(r, self.student_network, self.student.state_dict(), self.run_dir, self.metrics,
                                      ema=r.runtime.ema is not None)
            self._log(f"student written to {folder}")
        self.ctx.barrier()
        return folder

    def _start_run_dir(self) -> None:
        self.ctx.barrier()  # every rank has checked the folder (in `train`) before rank 0 writes anything
        if self.ctx.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / RECIPE_FILE, self.recipe_yaml)
            self._write_metrics()

    def _take_over(self, saved: dict[str, Any], path: Path) -> None:
        """Start at the stage where another run's stage-end checkpoint stands, with its student, history and RNG."""
        stages, at, old = self.recipe.stages, Position(**saved["position"]), saved_recipe(saved["recipe"], str(path))
        if at.step or at.epoch or not 0 < at.stage < len(stages):
            where = ("the end of its whole run" if at.stage >= len(old["stages"])
                     else f"stage {at.stage + 1}, epoch {at.epoch + 1}, step {at.step}")
            raise CheckpointError(
                f"{path} stands at {where}; --start-from needs the end of a stage that this recipe's {len(stages)} "
                "stages continue (OTHER_RUN/checkpoint.<stage>.pt, kept at the end of every stage but the last).")
        changed = shared_stage_changes(old, self.recipe.raw, at.stage, label_free=self.recipe.loss.type != "ce")
        if changed:
            raise CheckpointError(f"{path} was written by recipe '{old.get('name')}', whose first {at.stage} stage(s) "
                                  f"were trained differently ({', '.join(changed[:3])} differ); start this recipe "
                                  "from scratch, or make those settings equal.")
        self.student.load_state_dict(saved["student"])
        self.position = at
        self.teacher_pred = saved["teacher_pred"]
        self.metrics = [*saved["metrics"], {
            "type": "start_from", "checkpoint": os.fspath(path), "sha256": file_sha256(path), "recipe": old.get("name"),
            "stages": [s.name for s in stages[:at.stage]], "global_step": at.global_step}]
        checkpoint.set_rng_state(saved["rng"])
        self._log(f"starting at stage {at.stage + 1} (global step {at.global_step}) from {path}, written by recipe "
                  f"'{old.get('name')}'")

    def _restore(self, saved: dict[str, Any]) -> None:
        changed = recipe_changes(saved_recipe(saved["recipe"], str(self.checkpoint_path)),
                                 yaml.safe_load(self.recipe_yaml))
        if changed:
            raise CheckpointError(f"{self.checkpoint_path} was written by a different recipe ({', '.join(changed[:3])} "
                                  "differ). Resume with the same recipe and overrides, or start a new run in another "
                                  "folder.")
        self.student.load_state_dict(saved["student"])
        self.position = Position(**saved["position"])
        self.saved_step = self.position.global_step
        self.metrics = saved["metrics"]
        self.teacher_pred = saved["teacher_pred"]
        self.resume = StageResume(saved["optimizer"], saved["ema"],
                                  Totals(**saved["totals"]) if saved["totals"] is not None else None)
        checkpoint.set_rng_state(saved["rng"])
        if self.ctx.main:
            self._write_metrics()
            self._log(f"resuming {self.checkpoint_path}: stage {self.position.stage + 1}, epoch "
                      f"{self.position.epoch + 1}, step {self.position.step} (global step {self.position.global_step})")

    def _check_labels(self, dataset: ImageDataset, where: str) -> None:
        if dataset.labels.max(initial=-1) >= self.classes:
            raise RunSetupError(f"Data source '{where}' has label {dataset.labels.max()}, but the student predicts "
                                f"{self.classes} classes (labels 0..{self.classes - 1}); set "
                                "student.model_args.num_classes.")

    # -- stages and epochs -------------------------------------------------------------------------------------
    def _run_stage(self, index: int) -> None:
        r, stage = self.recipe, self.recipe.stages[index]
        sources = [open_source(s, self.data_root) for s in stage.train]
        if self.soft_labels is None:
            dataset = ImageDataset(sources, self.train_transform)
        else:
            dataset = CachedDataset(sources, [self.soft_labels.part_of(s) for s in stage.train], self.train_transform,
                                    self.soft_labels, first_epoch=sum(s.epochs for s in r.stages[:index]))
        if r.loss.type == "ce":
            self._check_labels(dataset, stage.name)
        steps = TrainBatches.steps_per_epoch(len(dataset), r.batch_size)
        if steps == 0:
            raise RunSetupError(f"Stage '{stage.name}' has {len(dataset)} images, fewer than batch_size "
                                f"{r.batch_size}; lower batch_size or add images.")
        restore, self.resume = self.resume, StageResume()
        optimizer = make_optimizer(self.student, stage, r)
        if restore.optimizer is not None:
            optimizer.load_state_dict(restore.optimizer)
        self.student_ema = None
        if r.runtime.ema is not None:
            from timm.utils import ModelEmaV3
            self.student_ema = ModelEmaV3(self.student, decay=r.runtime.ema)
            if restore.ema is not None:
                self.student_ema.module.load_state_dict(restore.ema)
        self._log(f"stage '{stage.name}' ({index + 1}/{len(r.stages)}): {len(dataset)} images, {steps} steps of "
                  f"{r.batch_size} per epoch, {stage.epochs} epochs")
        totals = restore.totals
        while self.position.stage == index:
            self._run_epoch(index, dataset, steps, optimizer, totals or Totals())
            totals = None

    def _run_epoch(self, index: int, dataset: ImageDataset, steps: int, optimizer: torch.optim.Optimizer,
                   totals: Totals) -> None:
        """One epoch from the current position; `totals` holds what a resumed epoch had counted before."""
        r, ctx, pos, stage = self.recipe, self.ctx, self.position, self.recipe.stages[index]
        pending = Pending(ctx.device)
        batches = TrainBatches(len(dataset), r.batch_size, seed=r.runtime.seed, stage=index, epoch=pos.epoch,
                               rank=ctx.rank, world=ctx.world, start_step=pos.step)
        eval_every = r.runtime.eval_every
        self.student.train()
        started, before = time.perf_counter(), totals.seconds
        label = f"{stage.name} epoch {pos.epoch + 1}/{stage.epochs}"
        for batch in loader(dataset, batches, workers=r.runtime.workers, pin_memory=ctx.device.type == "cuda"):
            lr = learning_rate(stage, pos.epoch * steps + pos.step, steps)
            self._step(batch, optimizer, lr, pending)
            totals.lr = lr
            pos.step += 1
            pos.global_step += 1
            checkpoint_due = pos.global_step % r.runtime.checkpoint_every == 0 and pos.step < steps
            stage_ends = pos.step == steps and pos.epoch + 1 == stage.epochs  # its epoch record evaluates
            eval_due = (eval_every is not None and pos.global_step % eval_every == 0 and not stage_ends
                        and self.eval_set is not None)
            if pos.step % r.runtime.log_every == 0 or pos.step == steps or checkpoint_due or eval_due:
                self._check_finite(pending.flush(ctx, totals), index, steps)
            totals.seconds = before + time.perf_counter() - started
            self.progress(label, pos.step, steps, totals)
            if eval_due:
                self.metrics.append(self._eval_record(index))
                if ctx.main:
                    self._write_metrics()
            if checkpoint_due:
                self._save(optimizer, totals)
        last = pos.epoch + 1 == stage.epochs
        record = self._epoch_record(index, totals, evaluate=eval_every is None or last)
        if last and self.student_ema is not None:
            self.student.load_state_dict(self.student_ema.module.state_dict())  # the next stage starts from the EMA
            self.student_ema = None  # ... with an EMA of its own
        self.position = Position(index + 1, 0, 0, pos.global_step) if last else Position(
            index, pos.epoch + 1, 0, pos.global_step)
        self.metrics.append(record)
        self._save(None if last else optimizer, None)
        if ctx.main:
            self._write_metrics()
            self._log(_describe(record))

    def _step(self, batch: Any, optimizer: torch.optim.Optimizer, lr: float, pending: Pending) -> None:
        """One optimizer step. Nothing here waits for the device: statistics stay in `pending` until it is flushed."""
        r, ctx, pos = self.recipe, self.ctx, self.position
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(int(np.random.SeedSequence([r.runtime.seed, ctx.rank, pos.global_step]).generate_state(1)[0]))
        x = self._input(batch.images)
        z = self.student_input.normalize(x)
        labels = batch.labels.to(ctx.device, non_blocking=True)
        with self._autocast():
            logits = self.student_step(z)
            if self.teacher is not None:
                with torch.no_grad():
                    target = self.teacher_network(z if self.shared_input else self.teacher.normalize(x))
            else:
                target = labels
        if batch.log_probs is not None:
            logits, target = complete_topk(logits, batch.log_probs.to(ctx.device), batch.classes.to(ctx.device),
                                           r.cache.sparse)
        per_sample = self.loss_fn(logits, target)
        global_count = self._global_count(batch)
        optimizer.zero_grad(set_to_none=True)
        reduce(per_sample, global_count, ctx.world).backward()
        pending.add(per_sample, counted(r.loss.type, target), len(batch.labels), batch.skipped, pos.global_step + 1)
        if global_count > 0:
            optimizer.step()
            if self.student_ema is not None:
                self.student_ema.update(self.student)

    def _global_count(self, batch: Any) -> int:
        """The samples of the global batch that count towards the loss, read from the labels on the host:
        distillation counts every decoded image, `ce` only the labelled ones. Under DDP this takes one all-reduce
        of one integer (the processes may have dropped different numbers of undecodable images)."""
        local = int((batch.labels != IGNORE_LABEL).sum()) if self.recipe.loss.type == "ce" else len(batch.labels)
        if self.ctx.world == 1:
            return local
        return int(self.ctx.all_sum(torch.tensor([local], dtype=torch.int64, device=self.ctx.device)).item())

    def _check_finite(self, first_bad: int | None, index: int, steps: int) -> None:
        if first_bad is None:
            return
        r, pos = self.recipe, self.position
        stage = r.stages[index]
        bad = first_bad if first_bad > 0 else pos.global_step  # another process's first bad step is not known here
        raise TrainingDivergedError(
            f"The loss stopped being finite in stage '{stage.name}' ({index + 1}/{len(r.stages)}), epoch "
            f"{pos.epoch + 1}/{stage.epochs}, step {bad - (pos.global_step - pos.step)}/{steps} (global step {bad}); "
            f"training stopped. {self._kept()} Lower stages.{index}.lr (or check the data) and start a new run.")

    def _kept(self) -> str:
        if self.saved_step is None:
            every = self.recipe.runtime.checkpoint_every
            return f"No checkpoint was written yet (runtime.checkpoint_every is {every})."
        return f"The last good checkpoint (global step {self.saved_step}) is kept at {self.checkpoint_path}."

    # -- evaluation --------------------------------------------------------------------------------------------
    def _evaluate(self, model: nn.Module, keep_predictions: bool) -> Scores:
        """Top-1/top-5 (labelled images), agreement with the teacher's predictions, and (optionally) every image's
        top-1 prediction (-1 where skipped), over all processes."""
        assert self.eval_set is not None
        ctx = self.ctx
        batches = EvalBatches(len(self.eval_set), max(1, self.recipe.batch_size // ctx.world), rank=ctx.rank,
                              world=ctx.world)

        def logits_of(images: torch.Tensor) -> torch.Tensor:
            with self._autocast():
                return model(self._input(images))

        return score(logits_of, loader(self.eval_set, batches, workers=self.recipe.runtime.workers,
                                       pin_memory=ctx.device.type == "cuda"),
                     len(self.eval_set), ctx.device, reference=self.teacher_pred, keep_predictions=keep_predictions,
                     all_sum=ctx.all_sum)

    def _evaluate_teacher(self) -> None:
        assert self.teacher is not None and self.recipe.teacher is not None
        self.teacher.eval()
        scores = self._evaluate(self.teacher, keep_predictions=True)
        self.teacher_pred = scores.predictions
        freeze_teacher(self.teacher, self.recipe.teacher.bn)
        result = {"top1": scores.top1, "top5": scores.top5, "images": scores.labelled, "skipped": scores.skipped}
        self.metrics.append({"type": "teacher_eval", **result})
        if self.ctx.main:
            self._write_metrics()
            self._log(f"teacher on the eval set: top-1 {_percent(result['top1'])}, top-5 {_percent(result['top5'])} "
                      f"({result['images']} labelled images, {result['skipped']} skipped)")

    def _cached_teacher_eval(self) -> None:
        assert self.soft_labels is not None
        cached = self.soft_labels.eval_predictions(self.recipe.data.eval)
        if cached is None:
            self._log("the soft-label cache has no predictions for this eval set: no teacher agreement is reported")
            return
        self.teacher_pred, result = cached
        self.metrics.append({"type": "teacher_eval", **result, "from_cache": True})
        if self.ctx.main:
            self._write_metrics()
            self._log(f"teacher on the eval set (from the soft-label cache): top-1 {_percent(result['top1'])}, top-5 "
                      f"{_percent(result['top5'])}")

    def _epoch_record(self, index: int, totals: Totals, evaluate: bool) -> dict[str, Any]:
        stage, pos = self.recipe.stages[index], self.position
        record: dict[str, Any] = {
            "type": "epoch", "stage": stage.name, "stage_index": index, "epoch": pos.epoch + 1,
            "epochs": stage.epochs, "global_step": pos.global_step,
            "images_seen": pos.global_step * self.recipe.batch_size,
            "train_loss": totals.loss_sum / totals.counted if totals.counted else None, "lr": totals.lr,
            "img_per_s": totals.images / totals.seconds if totals.seconds else None, "images": totals.images,
            "skipped": totals.skipped, "seconds": round(totals.seconds, 3)}
        if evaluate and self.eval_set is not None:
            record.update(self._eval_fields())
        return record

    def _eval_record(self, index: int) -> dict[str, Any]:
        """A mid-epoch evaluation (`runtime.eval_every`)."""
        pos = self.position
        return {"type": "eval", "stage": self.recipe.stages[index].name, "stage_index": index, "epoch": pos.epoch + 1,
                "global_step": pos.global_step, "images_seen": pos.global_step * self.recipe.batch_size,
                **self._eval_fields()}

    def _eval_fields(self) -> dict[str, Any]:
        """Scores of the student, or of its EMA copy when EMA is on."""
        model = self.student if self.student_ema is None else self.student_ema.module
        model.eval()
        scores = self._evaluate(self._normalized(model), keep_predictions=False)
        self.student.train()
        fields = {"eval_top1": scores.top1, "eval_top5": scores.top5, "eval_images": scores.labelled,
                  "eval_skipped": scores.skipped}
        if self.teacher_pred is not None:
            fields["agreement"] = scores.agreement
        return fields

    # -- helpers -----------------------------------------------------------------------------------------------
    def _normalized(self, network: nn.Module) -> Normalized:
        """`network` (the student or its EMA copy) behind the student's input normalisation, on the device."""
        return normalized(network).to(self.ctx.device)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return unit_pixels(images, self.ctx.device, self.memory_format)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype)

    def _save(self, optimizer: torch.optim.Optimizer | None, totals: Totals | None) -> None:
        if not all(torch.isfinite(p).all() for p in self.student.parameters()):
            raise TrainingDivergedError(f"The student's weights stopped being finite by global step "
                                        f"{self.position.global_step}; training stopped. {self._kept()} Lower the "
                                        "learning rate (or check the data) and start a new run.")
        if self.ctx.main:
            payload = {
                "recipe": self.recipe_yaml, "position": asdict(self.position),
                "student": self.student.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "ema": self.student_ema.module.state_dict() if self.student_ema is not None else None,
                "totals": asdict(totals) if totals is not None else None, "metrics": self.metrics,
                "teacher_pred": self.teacher_pred, "rng": checkpoint.rng_state()}
            checkpoint.save(self.checkpoint_path, payload)
            pos, stages = self.position, self.recipe.stages
            if pos.epoch == pos.step == 0 and 0 < pos.stage < len(stages):
                checkpoint.save(self.run_dir / stage_end_file(stages[pos.stage - 1].name), payload)
        self.saved_step = self.position.global_step
        self.ctx.barrier()

    def _write_metrics(self) -> None:
        write_text_atomic(self.run_dir / METRICS_FILE, "".join(json.dumps(m) + "\n" for m in self.metrics))

    def _log(self, message: str) -> None:
        if self.ctx.main:
            _logger.info(message)

    def _run_steps(self) -> int:
        """Optimizer steps of the whole run, over every stage."""
        r = self.recipe
        return sum(TrainBatches.steps_per_epoch(sum(len(open_source(s, self.data_root)) for s in stage.train),
                                                r.batch_size) * stage.epochs for stage in r.stages)

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        """`update(label, step, steps, totals)` after each step: one tqdm bar for the whole run where bars are on
        (rank 0, `reporting.progress_bars`), else a log record every `log_every` steps; the ETA is the whole run's."""
        from tqdm import tqdm
        every = self.recipe.runtime.log_every
        bar = tqdm(total=total, initial=self.position.global_step, unit="step", dynamic_ncols=True,
                   disable=not (self.ctx.main and progress_bars(_logger)))
        started, first = time.perf_counter(), self.position.global_step

        def update(label: str, step: int, steps: int, totals: Totals) -> None:
            loss = totals.loss_sum / totals.counted if totals.counted else float("nan")
            if not bar.disable:
                bar.update(1)
                if step % every == 0 or step == steps:
                    bar.set_description(label, refresh=False)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{totals.lr:.3g}", refresh=False)
            elif step % every == 0:
                done = self.position.global_step - first
                per_step = (time.perf_counter() - started) / done if done else float("nan")
                rate = totals.images / totals.seconds if totals.seconds else 0.0
                eta = (total - self.position.global_step) * per_step
                self._log(f"{label} step {step}/{steps}: loss {loss:.4f}, lr {totals.lr:.4g}, {rate:.0f} img/s, "
                          f"run {self.position.global_step}/{total} steps, ETA {_duration(eta)}")

        try:
            yield update
        finally:
            bar.close()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _describe(record: dict[str, Any]) -> str:
    loss = "–" if record["train_loss"] is None else f"{record['train_loss']:.4f}"
    text = (f"{record['stage']} epoch {record['epoch']}/{record['epochs']}: loss {loss}, "
            f"lr {record['lr']:.4g}, {record['img_per_s'] or 0:.0f} img/s, {record['skipped']} images skipped")
    if "eval_top1" in record:
        text += f"; eval top-1 {_percent(record['eval_top1'])}, top-5 {_percent(record['eval_top5'])}"
    if "agreement" in record:
        text += f", agreement with teacher {_percent(record['agreement'])}"
    return text


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}%"
