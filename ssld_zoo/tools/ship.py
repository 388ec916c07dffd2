"""`ssld-zoo ship RUN_DIR [--as NAME.TAG] [--publish ORG]`: turn a finished training run into a catalogue weight.

In the checkout (default: the one this package runs from) it
1. measures the run's student in fp32 on the recipe's eval set, with training's own eval pixels (`data.pixels`),
   the student normalised as in training;
2. copies `RUN_DIR/<recipe name>/model.safetensors` to `weights/NAME.TAG/model.safetensors` (sha256 and size);
3. writes the catalogue entry `NAME.TAG` (a new tag of catalogue model NAME, or the tag it replaces, whose
   descriptions are kept): file, sha256, size, preprocessing, measured top-1/top-5, teacher, recipe;
4. regenerates the model cards and the README's model table (`weights.cards`).

`--publish ORG` also uploads the Hub-layout folder to `ORG/NAME.TAG` through the path `ssld-zoo release` uses
(`weights.publish.publish_folder`) and records the repo and its commit in the entry.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ssld_zoo.errors import ShipError, SsldZooError

CIFAR_DATASETS = {"cifar10:test": "cifar10-jpeg-q75-test", "cifar10:train": "cifar10-jpeg-q75-train"}


def _checkout() -> Path:
    from ssld_zoo.catalogue.registry import BUILTIN_CATALOGUE
    return BUILTIN_CATALOGUE.parents[2]


def _catalogue_file(checkout: Path) -> Path:
    return checkout / "ssld_zoo" / "catalogue" / "catalogue.json"


def measure(recipe: Any, weights: Path, *, data_root: str | os.PathLike | None = None, device: str = "cpu",
            batch_size: int = 256, workers: int = 0) -> dict[str, Any]:
    """fp32 top-1/top-5 of the student in `weights` (the recipe's student architecture) on the recipe's eval set, with
    training's eval pixels; plus the preprocessing it used (input size, crop, interpolation, mean, std)."""
    import torch

    from ssld_zoo.train.data import EvalBatches, ImageDataset, Transform, loader, open_source
    from ssld_zoo.train.scoring import score
    from ssld_zoo.train.networks import build_network, normalized, unit_pixels
    from ssld_zoo.train.recipe import ModelSpec
    if recipe.data.eval is None:
        raise ShipError(f"Recipe '{recipe.name}' has no data.eval set to measure the student on; add one.")
    spec = ModelSpec(model=recipe.student.model, pretrained=os.fspath(weights), model_args=recipe.student.model_args)
    net = normalized(build_network(spec, "student", data_root).module).eval().to(device)
    images = open_source(recipe.data.eval, data_root)
    transform = Transform(recipe.data.input_size, recipe.data.augment, train=False)
    batches = loader(ImageDataset([images], transform), EvalBatches(len(images), batch_size), workers=workers,
                     pin_memory=False)
    dev = torch.device(device)

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(unit_pixels(x, dev))

    scores = score(logits_of, batches, len(images), dev)
    if scores.top1 is None or scores.top5 is None:
        raise ShipError(f"No labelled image of {recipe.data.eval.source} could be scored.")
    augment = recipe.data.augment
    return {"top1": round(scores.top1, 2), "top5": round(scores.top5, 2), "images": scores.labelled,
            "skipped": scores.skipped, "input_size": recipe.data.input_size, "crop_pct": augment.eval_crop_pct,
            "interpolation": augment.interpolation, "mean": [round(v, 6) for v in net.mean.flatten().tolist()],
            "std": [round(v, 6) for v in net.std.flatten().tolist()]}


def dataset_name(source: Any) -> str:
    """The catalogue's name for an eval source."""
    name = CIFAR_DATASETS.get(source.source, source.source)
    return name + (f" ({source.subset})" if source.subset else "")


def weight_entry(old: dict[str, Any] | None, full_name: str, recipe: Any, recipe_path: str, measured: dict[str, Any],
                 sha256: str, size: int) -> dict[str, Any]:
    """The catalogue entry of the shipped weight: `old`'s descriptions kept, its file, hashes and numbers new."""
    size_px = measured["input_size"]
    entry: dict[str, Any] = copy.deepcopy(old) if old else {
        "status": "unpublished", "hub": {"repo_id": f"ssld-zoo/{full_name}", "revision": None},
        "data_file": None, "origin": None, "preprocessing": {},
        "metrics": {"paddle_reported": None}, "paddle_reported_params_m": None, "paddle_reported_gmacs": None,
        "summary": recipe.raw.get("description") or f"Trained by the ssld_zoo recipe {recipe.name}.",
        "teacher": recipe.teacher_names if recipe.teachers else None,
        "training_data": ", ".join(s.source for stage in recipe.stages for s in stage.train),
        "license": "apache-2.0", "notes": f"Shipped from a run of {recipe_path} with `ssld-zoo ship`."}
    entry["hub"].update(filename="model.safetensors", sha256=sha256, size=size)
    entry["file"] = f"../../weights/{full_name}/model.safetensors"
    entry["preprocessing"].update(input_size=[3, size_px, size_px], crop_pct=measured["crop_pct"],
                                  interpolation=measured["interpolation"], mean=measured["mean"], std=measured["std"])
    entry["metrics"]["measured"] = {"dataset": dataset_name(recipe.data.eval), "top1": measured["top1"],
                                    "top5": measured["top5"], "input_size": size_px,
                                    "crop_pct": measured["crop_pct"], "interpolation": measured["interpolation"]}
    entry["recipe"] = recipe_path
    return entry


def ship(run_dir: str | os.PathLike, full_name: str | None = None, *, checkout: str | os.PathLike | None = None,
         publish_org: str | None = None, data_root: str | os.PathLike | None = None, device: str = "cpu",
         batch_size: int = 256, workers: int = 0) -> dict[str, Any]:
    """Ship the student of finished run `run_dir` as catalogue weight `full_name` (default: the recipe's name) into
    `checkout`; returns the new catalogue entry."""
    from ssld_zoo.catalogue.registry import refresh, validate_model
    from ssld_zoo.files import atomic_path, file_sha256, write_text_atomic
    from ssld_zoo.train.recipe import load_recipe
    run = Path(run_dir)
    recipe = load_recipe(run / "recipe.yaml")
    full_name = full_name or recipe.name
    model, _, tag = full_name.partition(".")
    student = run / recipe.name / "model.safetensors"
    if not student.is_file():
        raise ShipError(f"{run} holds no finished student ({student} is missing): ship a run that completed.",
                        path=str(student))
    root = Path(checkout) if checkout is not None else _checkout()
    catalogue = _catalogue_file(root)
    doc = json.loads(catalogue.read_text(encoding="utf-8"))
    if not tag or model not in doc["models"]:
        raise ShipError(f"'{full_name}' is not NAME.TAG with NAME a catalogue model; add the model to the catalogue "
                        "first, or ship under one of its names.", weight=full_name)
    measured = measure(recipe, student, data_root=data_root, device=device, batch_size=batch_size, workers=workers)
    target = root / "weights" / full_name / "model.safetensors"
    with atomic_path(target) as tmp:
        shutil.copyfile(student, tmp)
    sha256, size = file_sha256(target), target.stat().st_size
    recipe_path = _recipe_path(run, root)
    weights = doc["models"][model]["weights"]
    weights[tag] = weight_entry(weights.get(tag), full_name, recipe, recipe_path, measured, sha256, size)
    validate_model(model, doc["models"][model])
    write_text_atomic(catalogue, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    refresh()
    if publish_org is not None:
        weights[tag].update(_publish(full_name, target, publish_org))
        write_text_atomic(catalogue, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        refresh()
    from ssld_zoo.weights.cards import main as regenerate_cards
    regenerate_cards(root)
    return weights[tag]


def _recipe_path(run: Path, checkout: Path) -> str:
    """The recipe as the catalogue names it: the shipped recipe file with the same name, else the run's copy."""
    from ssld_zoo.train.recipe import load_recipe
    name = load_recipe(run / "recipe.yaml").name
    for path in sorted((checkout / "recipes").rglob("*.yaml")):
        try:
            if load_recipe(path).name == name:
                return path.relative_to(checkout).as_posix()
        except SsldZooError:
            continue
    return os.fspath(run / "recipe.yaml")


def _publish(full_name: str, weights: Path, org: str) -> dict[str, Any]:
    """Upload the Hub-layout folder of the shipped weight to `org/full_name`; the entry's new status and hub."""
    from ssld_zoo.files import staging_folder
    from ssld_zoo.weights.layout import temporary_weights_path, write_folder
    from ssld_zoo.weights.publish import publish_folder
    repo_id = f"{org}/{full_name}"
    with staging_folder(weights.parent / "hub") as folder:
        tmp = temporary_weights_path(folder)
        shutil.copyfile(weights, tmp)
        sha256, size = write_folder(full_name, folder, tmp)
        revision = publish_folder(folder, repo_id, commit_message=f"ssld_zoo: ship {full_name} (sha256 {sha256[:12]})")
    return {"status": "published", "hub": {"repo_id": repo_id, "revision": revision, "filename": "model.safetensors",
                                           "sha256": sha256, "size": size}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ship` command's arguments."""
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished `ssld-zoo train` run folder")
    parser.add_argument("--as", dest="full_name", metavar="NAME.TAG",
                        help="the catalogue weight to ship it as (default: the recipe's name)")
    parser.add_argument("--publish", metavar="ORG", help="also upload it to the Hub as ORG/NAME.TAG (as `release`)")
    parser.add_argument("--checkout", type=Path, metavar="DIR", help="the checkout whose catalogue, weights/ and "
                                                                     "README to update (default: this package's)")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder for cifar10: sources "
                                                                 "(default: $SSLD_ZOO_DATA)")
    parser.add_argument("--device", default="cpu", help="torch device for the measurement (default: cpu)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the measurement")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Ship as `args` say and print what was written."""
    entry = ship(args.run_dir, args.full_name, checkout=args.checkout, publish_org=args.publish, data_root=args.data,
                 device=args.device, workers=args.workers)
    measured = entry["metrics"]["measured"]
    print(f"{entry['file'].removeprefix('../../')}: sha256 {entry['hub']['sha256'][:12]}…, {entry['hub']['size']:,} "
          f"bytes; top-1 {measured['top1']:.2f}%, top-5 {measured['top5']:.2f}% on {measured['dataset']} (fp32); "
          f"catalogue, card and README table updated" + (f"; published to {entry['hub']['repo_id']}"
                                                         if args.publish else ""))
    return entry
