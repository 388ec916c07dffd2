"""The trained student as a Hub-layout folder: `model.safetensors` + timm `config.json` (sha256-pinned) + `README.md`.

A recipe named after a catalogue weight (`resnet50d_ssld.ssld_in1k`) gets the catalogue's config and card (via
`hub_layout.write_folder`), so `ssld_zoo.create(NAME, pretrained=FOLDER)` verifies and loads it; any other name gets
the same layout with the student's own timm config (`timm.create_model("local-dir:FOLDER", pretrained=True)`).
Both cards end with the training run: recipe, stages and measured metrics.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from ssld_zoo.errors import UnknownModelError
from ssld_zoo.files import save_safetensors, write_text_atomic
from ssld_zoo.weights.layout import place_weights, temporary_weights_path, write_folder
from ssld_zoo.weights.sources import CONFIG_FILE, PAPER_ID
from ssld_zoo.train.networks import ModelBuildError, Network, num_classes
from ssld_zoo.train.recipe import Recipe

_CFG_KEYS = ("mean", "std", "first_conv", "classifier", "fixed_input_size")


def catalogue_weight(name: str) -> Any:
    """The catalogue weight entry that `name` names, or None for a name of your own."""
    from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry
    try:
        return get_model_entry(name), get_weight_entry(name)
    except UnknownModelError:
        return None


def check_output_name(recipe: Recipe, student: Network) -> None:
    """A recipe named after a catalogue weight must train that weight's architecture and class count."""
    found = catalogue_weight(recipe.name)
    if found is None:
        return
    entry, _ = found
    classes = num_classes(student.module)
    if entry.architecture != student.architecture or entry.num_classes != classes:
        raise ModelBuildError(
            f"Recipe name '{recipe.name}' is a catalogue weight of architecture '{entry.architecture}' with "
            f"{entry.num_classes} classes, but the student is '{student.architecture}' with {classes}. Rename the "
            "recipe, or make the student match.")


def student_config(recipe: Recipe, student: Network, sha256: str, size: int) -> dict[str, Any]:
    """timm `config.json` for a student that is not a catalogue weight, with the recipe's eval preprocessing."""
    source = getattr(student.module, "pretrained_cfg", None) or {}
    cfg: dict[str, Any] = {k: source[k] for k in _CFG_KEYS if source.get(k) is not None}
    classes = num_classes(student.module)
    data = recipe.data
    cfg.update(architecture=student.architecture, num_classes=classes, input_size=[3, data.input_size, data.input_size],
               crop_pct=data.augment.eval_crop_pct, interpolation=data.augment.interpolation)
    if recipe.distills:
        cfg["paper_ids"] = PAPER_ID
    config: dict[str, Any] = {"architecture": student.architecture, "num_classes": classes, "pretrained_cfg": cfg}
    if student.model_args:
        config["model_args"] = student.model_args
    config["ssld_zoo"] = {"model": recipe.name, "sha256": sha256, "size": size, "recipe": recipe.name}
    return config


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def training_section(recipe: Recipe, metrics: list[dict[str, Any]], ema: bool) -> str:
    """Markdown: how this student was trained (stages, teacher, EMA) and what it measured, then the recipe."""
    how = (f"distilled from teacher `{recipe.teacher_names}` (BatchNorm in {recipe.teacher.bn} mode) with the "
           f"`{recipe.loss.type}` loss, which never sees labels" if recipe.teacher
           else "trained with labels (cross-entropy), as a supervised baseline")
    lines = ["## Training run (ssld_zoo)", "",
             f"Student `{recipe.student.model}` {how}, at {recipe.data.input_size} px, global batch "
             f"{recipe.batch_size}.",
             ""]
    if ema:
        lines += [f"The saved weights are the exponential moving average of the student (decay {recipe.runtime.ema}),"
                  " not its last step.", ""]
    lines += ["| stage | epochs | lr | warm-up | weight decay | data |", "|---|---|---|---|---|---|"]
    for stage in recipe.stages:
        data = ", ".join(f"`{s.source}`" + (f" ({s.subset})" if s.subset else "") + ("" if s.labels else " no labels")
                         for s in stage.train)
        lines.append(f"| {stage.name} | {stage.epochs} | {stage.lr:g} | {stage.warmup_epochs:g} | "
                     f"{stage.weight_decay:g} | {data} |")
    epochs = [m for m in metrics if m["type"] == "epoch"]
    teacher = next((m for m in metrics if m["type"] == "teacher_eval"), None)
    lines += ["", "### Measured" + (f" on `{recipe.data.eval.source}`" if recipe.data.eval else ""), "",
              "| after | train loss | top-1 | top-5 | agreement with teacher | skipped images |",
              "|---|---|---|---|---|---|"]
    for stage in recipe.stages:
        last = [m for m in epochs if m["stage"] == stage.name][-1:]
        for m in last:
            lines.append(f"| {stage.name} epoch {m['epoch']} | {m['train_loss']:.4f} | {_pct(m.get('eval_top1'))} | "
                         f"{_pct(m.get('eval_top5'))} | {_pct(m.get('agreement'))} | {m['skipped']} |")
    taken = next((m for m in metrics if m["type"] == "start_from"), None)
    if taken:
        lines += ["", f"Stage(s) {', '.join(taken['stages'])} were run once, by recipe `{taken['recipe']}`; this run "
                      f"started from its stage-end checkpoint (sha256 `{taken['sha256'][:16]}…`, global step "
                      f"{taken['global_step']})."]
    if teacher:
        lines += ["", f"Teacher on the same set: top-1 {_pct(teacher['top1'])}%, top-5 {_pct(teacher['top5'])}%."]
    lines += ["", "Every epoch is in `metrics.jsonl` of the run folder.", "", "### Recipe", "", "```yaml",
              yaml.safe_dump(recipe.raw, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def _own_card(recipe: Recipe, student: Network, folder: Path, section: str) -> str:
    front = ["---", "library_name: timm", "tags:", "- image-classification", "- timm", "- ssld_zoo"]
    if recipe.distills:
        front += ["- knowledge-distillation", "- arxiv:2103.05959"]
    return "\n".join([*front, "---", "", f"# {recipe.name}", "",
                      f"timm `{student.architecture}` trained by `ssld_zoo.train` from recipe `{recipe.name}`.", "",
                      "```python", "import ssld_zoo, timm  # ssld_zoo registers its own architectures with timm",
                      f"model = timm.create_model(\"local-dir:path/to/{folder.name}\", pretrained=True).eval()",
                      "```", "",
                      section])


def write_hub_folder(recipe: Recipe, student: Network, state: dict[str, torch.Tensor], run_dir: Path,
                     metrics: list[dict[str, Any]], *, ema: bool) -> Path:
    """Write `RUN_DIR/<recipe name>/` from the final student `state`; every file appears complete or not at all."""
    folder = run_dir / recipe.name
    tmp = temporary_weights_path(folder)
    try:
        save_safetensors({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, tmp, {"format": "pt"})
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    section = training_section(recipe, metrics, ema)
    found = catalogue_weight(recipe.name)
    if found is not None:
        from ssld_zoo.weights.cards import model_card
        write_folder(recipe.name, folder, tmp)
        write_text_atomic(folder / "README.md", model_card(*found) + "\n" + section)
        return folder
    sha256, size = place_weights(tmp, folder)
    config = student_config(recipe, student, sha256, size)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    write_text_atomic(folder / "README.md", _own_card(recipe, student, folder, section))
    return folder
