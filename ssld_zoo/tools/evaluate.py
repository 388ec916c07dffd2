"""`ssld-zoo eval`: top-1 / top-5 of a model on labelled images, with the preprocessing of its weights.

    from ssld_zoo.tools.evaluate import evaluate
    evaluate("resnet20_cifar.sup_cifar10", "cifar10:test")                     # CIFAR-10 pack from $SSLD_ZOO_DATA
    evaluate("resnet50d_ssld", "imagenet/val")                                  # one sub-folder per class
    evaluate("resnet50d_ssld", "val_flat", labels_file="LOC_val_solution.csv")  # all images in one folder

MODEL is a zoo name or weight (`name`, `name.tag`), a Hub-layout folder (`model.safetensors` + `config.json`, as
`ssld-zoo download` / `convert` / training write it) or `hf-hub:org/name[@revision]`; `weights=` replaces the weight
source as in `create(name, pretrained=...)`. DATA is `cifar10:test` / `cifar10:train`, a folder with one sub-folder
per class (sorted names are class indices; folders named by ImageNet synsets map through ImageNet-1k's order), or a
flat folder with a labels file: `FILENAME INDEX` lines, `FILENAME SYNSET` lines, or Kaggle's `LOC_val_solution.csv`.

Images are decoded and preprocessed by the training pipeline's evaluation loader (`ssld_zoo.train.data`), so files
that cannot be decoded are counted as skipped rather than stopping the run. Imports neither torch nor timm until used.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ssld_zoo.errors import DataError, EvaluationError, InvalidWeightsError
from ssld_zoo.reporting import progress_bars
from ssld_zoo.reading import MAX_LIST_BYTES, read_text, shorten

from ssld_zoo.catalogue.registry import INTERPOLATIONS, get_weight_entry
from ssld_zoo.weights.resolve import Resolved, names_its_model, resolve
from ssld_zoo.weights.sources import CONFIG_FILE, pretrained_cfg_for
from ssld_zoo.weights.validation import MAX_INPUT_PX, MIN_CROP_PCT

if TYPE_CHECKING:
    import torch

    from ssld_zoo.train.data import Images, Transform
    from ssld_zoo.train.scoring import Scores

CIFAR_PREFIX = "cifar10:"
KAGGLE_HEADER = ("ImageId", "PredictionString")
PREPROCESSORS = ("timm", "paddle")
DEFAULT_BATCH_SIZE = 256
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
_SYNSET = re.compile(r"^n\d{8}$")
_logger = logging.getLogger(__name__)




@dataclass(frozen=True)
class LabelledImages:
    """The images to evaluate, where their labels come from, and how many classes those labels have."""

    images: "Images"
    num_classes: int | None  # None: a labels file of class indices (only its largest index is known)
    labels_from: str


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for evaluation and what identifies it."""

    module: "torch.nn.Module"
    name: str
    weights: str
    weights_sha256: str | None


# -- data -------------------------------------------------------------------------------------------------------------
def open_data(data: str | os.PathLike, labels_file: str | os.PathLike | None = None,
              data_root: str | os.PathLike | None = None) -> LabelledImages:
    """The labelled images of DATA: a CIFAR-10 pack (`cifar10:SPLIT`), a class-folder tree, or a flat folder with
    `labels_file`."""
    spec = os.fspath(data)
    if spec.startswith(CIFAR_PREFIX):
        if labels_file is not None:
            raise DataError(f"{spec} carries its own labels; --labels is for a flat folder of images.")
        from ssld_zoo.data.cifar import CLASSES
        from ssld_zoo.train.data import Cifar
        return LabelledImages(Cifar(spec[len(CIFAR_PREFIX):], data_root), len(CLASSES), f"CIFAR-10 {spec}")
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise DataError(f"DATA '{spec}' is not a folder (nor cifar10:test / cifar10:train)."
                        if root.exists() else f"DATA folder '{spec}' does not exist.")
    if labels_file is not None:
        return _flat_folder(root, Path(labels_file).expanduser())
    return _class_folders(root)


def _in1k_synsets() -> dict[str, int]:
    """ImageNet-1k synset -> class index, in timm's (the standard, sorted) order."""
    from timm.data import ImageNetInfo
    return {synset: index for index, synset in enumerate(ImageNetInfo().label_names())}


def _class_folders(root: Path) -> LabelledImages:
    from ssld_zoo.train.data import IMAGE_SUFFIXES, Files, class_images, image_files
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        found = "images but no class sub-folders; a flat folder needs --labels FILE" if image_files(root) else (
            "no class sub-folders and no images")
        raise DataError(f"DATA folder {root} holds {found}.")
    synsets = _in1k_synsets()
    by_synset = all(folder.name in synsets for folder in classes)
    paths, labels = [], []
    for position, (folder, files) in enumerate(zip(classes, class_images(root, classes))):
        paths += files
        labels += [synsets[folder.name] if by_synset else position] * len(files)
    if not paths:
        raise DataError(f"The {len(classes)} class folders of {root} hold no images (looked for "
                        f"{', '.join(IMAGE_SUFFIXES)}).")
    if by_synset:
        return LabelledImages(Files(paths, labels), len(synsets), f"{root} (folders named by ImageNet-1k synsets)")
    return LabelledImages(Files(paths, labels), len(classes), f"{root} ({len(classes)} class folders, sorted)")


def _image_key(name: str) -> str:
    """How a labels file and a folder name the same image: the relative path without its image suffix."""
    from ssld_zoo.train.data import IMAGE_SUFFIXES
    path = PurePosixPath(name.strip().replace("\\", "/"))
    return os.fspath(path.with_suffix("")) if path.suffix.lower() in IMAGE_SUFFIXES else os.fspath(path)


@dataclass(frozen=True)
class LabelsFile:
    """Image key -> (class index, line number), and the number of classes the labels come from."""

    labels: dict[str, tuple[int, int]]
    num_classes: int | None


def read_labels(path: Path) -> LabelsFile:
    """A labels file: `FILENAME INDEX` or `FILENAME SYNSET` lines (blank lines and `#` comments ignored), or Kaggle's
    `LOC_val_solution.csv` (`ImageId,PredictionString`, the first synset of each row is the label)."""
    lines = read_text(path, what="labels file", max_bytes=MAX_LIST_BYTES, error=DataError).splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first:
        raise DataError(f"Labels file {path} is empty.")
    rows = _kaggle_rows(path, lines) if tuple(first.split(",")) == KAGGLE_HEADER else _text_rows(path, lines)
    synsets: dict[str, int] | None = None
    labels: dict[str, tuple[int, int]] = {}
    kinds = set()
    for number, name, label in rows:
        kind = "synset" if _SYNSET.match(label) else "index" if label.isdigit() and len(label) <= 18 else None
        if kind is None:
            raise DataError(f"{path}:{number}: label {shorten(label)} is neither a class index (0, 1, ...) nor an "
                            "ImageNet synset (n01440764).")
        kinds.add(kind)
        if len(kinds) > 1:
            raise DataError(f"{path}:{number}: mixes class indices and synsets; use one kind of label per file.")
        if kind == "synset":
            synsets = synsets if synsets is not None else _in1k_synsets()
            if label not in synsets:
                raise DataError(f"{path}:{number}: unknown synset '{label}': not one of ImageNet-1k's "
                                f"{len(synsets)} classes.")
        key = _image_key(name)
        if key in labels:
            raise DataError(f"{path}:{number}: {shorten(name)} is labelled twice (first on line {labels[key][1]}).")
        labels[key] = (synsets[label] if synsets is not None else int(label), number)
    return LabelsFile(labels, len(synsets) if synsets is not None else None)


def _text_rows(path: Path, lines: list[str]) -> list[tuple[int, str, str]]:
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected 'FILENAME LABEL', found {shorten(line)}.")
        rows.append((number, parts[0], parts[1]))
    return rows


def _kaggle_rows(path: Path, lines: list[str]) -> list[tuple[int, str, str]]:
    rows = []
    reader = csv.reader(lines)
    try:
        for number, row in enumerate(reader, 1):
            if number == 1 or not row:
                continue
            if len(row) != 2 or not row[1].split():
                raise DataError(f"{path}:{number}: expected 'ImageId,PredictionString' (the synset first), found "
                                f"{shorten(','.join(row))}.")
            rows.append((number, row[0], row[1].split()[0]))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not a CSV row ({e}).", path=str(path)) from e
    return rows


def _flat_folder(root: Path, labels_path: Path) -> LabelledImages:
    from ssld_zoo.train.data import IMAGE_SUFFIXES, Files, image_files
    files = image_files(root)
    if not files:
        raise DataError(f"DATA folder {root} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    labels_file = read_labels(labels_path)
    labels = []
    for path in files:
        found = labels_file.labels.get(_image_key(path.relative_to(root).as_posix()))
        if found is None:
            raise DataError(f"{path} has no label in {labels_path}; label every image in {root}, or move it out.")
        labels.append(found[0])
    if len(files) < len(labels_file.labels):
        keys = {_image_key(p.relative_to(root).as_posix()) for p in files}
        missing = [(number, key) for key, (_, number) in labels_file.labels.items() if key not in keys]
        number, key = min(missing)
        raise DataError(f"{labels_path}:{number}: '{key}' is not in {root} ({len(missing)} labelled image(s) are "
                        "missing); copy the whole validation set, or use --limit N for a quick check.")
    kind = "ImageNet-1k synsets" if labels_file.num_classes else "class indices"
    return LabelledImages(Files(files, labels), labels_file.num_classes, f"{labels_path} ({kind})")


def check_classes(model_classes: int, model_name: str, data: LabelledImages) -> None:
    """Raise `EvaluationError` unless the model predicts the classes the labels come from."""
    if data.num_classes is not None and data.num_classes != model_classes:
        raise EvaluationError(f"Model '{model_name}' predicts {model_classes} classes, but the labels of "
                              f"{data.labels_from} have {data.num_classes}. Evaluate a model trained on these classes.")
    largest = int(data.images.labels.max())
    if largest >= model_classes:
        raise EvaluationError(f"The labels of {data.labels_from} go up to class {largest}, but model '{model_name}' "
                              f"predicts {model_classes} classes (0-{model_classes - 1}).")


# -- model ------------------------------------------------------------------------------------------------------------
def load_model(model: str | os.PathLike, weights: str | os.PathLike | None = None, *,
               data_root: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    """A zoo name or weight, a Hub-layout folder, or `hf-hub:org/name`, with its (or `weights`') verified weights,
    from `weights.resolve` through `models.load_model` as every command loads them."""
    from ssld_zoo.models import factory

    def chosen_weights() -> Resolved | None:
        return None if weights is None else resolve(weights, catalogue=False, data_root=data_root, cache_dir=cache_dir)

    spec = os.fspath(model)
    if not names_its_model(spec):  # a catalogue name (an unknown one fails with suggestions)
        entry = get_weight_entry(spec) if weights is not None else None
        override = chosen_weights()
        found = override or resolve(spec, data_root=data_root, cache_dir=cache_dir)
        entry = entry or found.weight
        if entry is None:
            raise InvalidWeightsError(f"MODEL '{spec}' is a weight file, which does not say its model; give the "
                                      "model's name and the file as --weights.", path=spec)
        module = factory.load_model(found, entry.full_name, cfg=pretrained_cfg_for(entry))
        return LoadedModel(module, entry.full_name, found.source if override else "catalogue", found.sha256)
    own = resolve(spec, catalogue=False, data_root=data_root, cache_dir=cache_dir)
    if own.model_name is None:
        raise InvalidWeightsError(f"MODEL {spec} is not in Hub layout: its {CONFIG_FILE} must name its timm "
                                  "'architecture' (as `ssld-zoo download` writes it).", path=spec)
    override = chosen_weights()
    if override is None:
        return LoadedModel(factory.load_model(own), own.name, spec, own.sha256)
    args = factory.model_args_of(own) if own.weight is None else {}
    cfg = {**(pretrained_cfg_for(own.weight) if own.weight else {}), **own.pretrained_cfg}
    module = factory.load_model(override, own.model_name, cfg=cfg, **args)
    return LoadedModel(module, own.name, override.source, override.sha256)


# -- preprocessing ----------------------------------------------------------------------------------------------------
def resolve_preprocessing(model: "torch.nn.Module", *, input_size: int | None = None, crop_pct: float | None = None,
                          interpolation: str | None = None) -> dict[str, Any]:
    """The model's data config (`data.transforms.preprocessing_config`, what `ssld_zoo.get_transform(model)` uses),
    with the given overrides."""
    from ssld_zoo.data.transforms import preprocessing_config
    config = preprocessing_config(model)
    if input_size is not None:
        if not 1 <= input_size <= MAX_INPUT_PX:
            raise EvaluationError(f"--input-size must be from 1 to {MAX_INPUT_PX} pixels, not {input_size}.")
        config["input_size"] = (config["input_size"][0], input_size, input_size)
    if crop_pct is not None:
        if not MIN_CROP_PCT <= crop_pct <= 1:
            raise EvaluationError(f"--crop-pct must be from {MIN_CROP_PCT} to 1, not {crop_pct}.")
        config["crop_pct"] = crop_pct
    if interpolation is not None:
        if interpolation not in INTERPOLATIONS:
            raise EvaluationError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, not '{interpolation}'.")
        config["interpolation"] = interpolation
    return config


def eval_transform(preprocessing: dict[str, Any]) -> "Transform":
    """The eval transform for a resolved data config: training's own (`train.data.Transform`, timm's resize/crop rule,
    pixel for pixel; uint8 out, the model wrapper normalises), so `ssld-zoo eval` and training-time evaluation see
    the same pixels."""
    from ssld_zoo.train.data import Transform
    from ssld_zoo.train.recipe import Augment
    if preprocessing["interpolation"] not in INTERPOLATIONS:
        raise EvaluationError(f"The model asks for {preprocessing['interpolation']} resizing; pass --interpolation "
                              f"with one of {', '.join(INTERPOLATIONS)}.")
    if preprocessing.get("crop_mode", "center") != "center":
        raise EvaluationError(f"The model asks for a '{preprocessing['crop_mode']}' eval crop; only the centre crop "
                              "is supported.")
    augment = Augment(interpolation=preprocessing["interpolation"], eval_crop_pct=preprocessing["crop_pct"])
    return Transform(int(preprocessing["input_size"][-1]), augment, train=False)


# -- evaluation -------------------------------------------------------------------------------------------------------
def _check_counts(batch_size: int, workers: int, limit: int | None) -> None:
    from ssld_zoo.train.recipe import MAX_WORKERS  # the bound a recipe's runtime.workers has
    for option, value, least in (("--batch-size", batch_size, 1), ("--workers", workers, 0), ("--limit", limit, 1)):
        if value is not None and value < least:
            raise EvaluationError(f"{option} must be at least {least}, not {value}.")
    if workers > MAX_WORKERS:
        raise EvaluationError(f"--workers must be at most {MAX_WORKERS:,}, not {workers:,}.")


def evaluate(model: str | os.PathLike, data: str | os.PathLike, *, weights: str | os.PathLike | None = None,
             labels_file: str | os.PathLike | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
             workers: int = DEFAULT_WORKERS, device: str | None = None, input_size: int | None = None,
             crop_pct: float | None = None, interpolation: str | None = None, limit: int | None = None,
             channels_last: bool = False, progress: bool | None = None, data_root: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None, preprocess: str = "timm") -> dict[str, Any]:
    """Top-1 / top-5 accuracy (%) of MODEL on DATA (see the module docstring), as a JSON-serialisable dict.

    Args:
        model: zoo name or weight, Hub-layout folder, or `hf-hub:org/name[@revision]`.
        data: `cifar10:test` / `cifar10:train`, a class-folder tree, or a flat folder (with `labels_file`).
        weights: another weight source for MODEL (a `.safetensors` file, Hub-layout folder or `hf-hub:` id).
        labels_file: labels of a flat folder (`FILENAME INDEX`, `FILENAME SYNSET` or Kaggle's LOC_val_solution.csv).
        batch_size, workers, device: inference batch, DataLoader worker processes, torch device (default: cuda if
            available, else cpu).
        input_size, crop_pct, interpolation: override the weights' own preprocessing.
        preprocess: "timm" (timm's transform, the default) or "paddle" (PaddleClas's own eval pipeline, pixel for
            pixel: `ssld_zoo.data.paddle_preprocess`), with the same sizes.
        limit: evaluate only the first `limit` images (in label order).
        channels_last: run the model in channels-last memory format (often faster; results may differ in the last
            bits of the logits).
        progress: show a progress bar (default: `reporting.progress_bars`, e.g. when stderr is a terminal).
        data_root: the data folder holding `cifar10/` (default: `$SSLD_ZOO_DATA`).
        cache_dir: Hub cache folder (default: `HF_HUB_CACHE`).
    """
    import torch
    _check_counts(batch_size, workers, limit)
    if preprocess not in PREPROCESSORS:
        raise EvaluationError(f"--preprocess must be one of {', '.join(PREPROCESSORS)}, not '{preprocess}'.")
    labelled = open_data(data, labels_file, data_root)  # data errors come before the (slower) model load
    from ssld_zoo.train.distributed import pick_device
    chosen = pick_device(device, error=EvaluationError)
    loaded = load_model(model, weights, data_root=data_root, cache_dir=cache_dir)
    from ssld_zoo.train.networks import num_classes
    check_classes(num_classes(loaded.module), loaded.name, labelled)
    preprocessing = resolve_preprocessing(loaded.module, input_size=input_size, crop_pct=crop_pct,
                                          interpolation=interpolation)
    count = len(labelled.images) if limit is None else min(limit, len(labelled.images))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    module = loaded.module.eval().to(chosen).to(memory_format=memory_format)
    transform: Any
    if preprocess == "paddle":  # normalised floats, PaddleClas's way
        transform = _paddle_transform(preprocessing)
        preprocessing = dict(preprocessing, resize_short=transform.resize_short, backend=transform.backend)
    else:  # uint8: the model wrapper normalises
        from ssld_zoo.train.networks import Normalized
        transform = eval_transform(preprocessing)
        module = Normalized(module, tuple(preprocessing["mean"]), tuple(preprocessing["std"])).to(chosen)
    scores = _run(module, labelled.images, transform, count,
                  batch_size=batch_size, workers=workers, device=chosen, memory_format=memory_format,
                  progress=progress_bars(_logger, progress))
    if scores.labelled == 0:
        raise DataError(f"None of the {count} images of {labelled.labels_from} could be decoded.")
    return _report(loaded, data, labelled, dict(preprocessing, preprocess=preprocess), scores,
                   batch_size=batch_size, workers=workers, device=chosen, limit=limit, channels_last=channels_last)


def _paddle_transform(preprocessing: dict[str, Any]) -> Any:
    """PaddleClas's exact eval transform for the resolved sizes (the weights' own, or the overrides)."""
    from ssld_zoo.data.paddle_preprocess import paddle_transform_for
    return paddle_transform_for(dict(preprocessing, input_size=list(preprocessing["input_size"])))


def _run(model: "torch.nn.Module", images: "Images", transform: Any, count: int, *, batch_size: int,
         workers: int, device: "torch.device", memory_format: "torch.memory_format", progress: bool) -> "Scores":
    """Top-1 / top-5 over the first `count` images of `images`."""
    import torch
    from tqdm import tqdm

    from ssld_zoo.train.data import EvalBatches, ImageDataset, loader
    from ssld_zoo.train.networks import unit_pixels
    from ssld_zoo.train.scoring import score
    batches = loader(ImageDataset([images], transform), EvalBatches(count, batch_size), workers=workers,
                     pin_memory=device.type == "cuda")

    def logits_of(x: "torch.Tensor") -> "torch.Tensor":
        if x.dtype == torch.uint8:  # PaddleClas's exact transform gives normalised floats already
            return model(unit_pixels(x, device, memory_format))
        return model(x.to(device, non_blocking=True).contiguous(memory_format=memory_format))

    with tqdm(total=count, unit="img", disable=not progress, file=sys.stderr) as bar:
        return score(logits_of, batches, count, device, on_batch=bar.update)


def _report(loaded: LoadedModel, data: str | os.PathLike, labelled: LabelledImages, preprocessing: dict[str, Any],
            scores: "Scores", *, batch_size: int, workers: int, device: "torch.device", limit: int | None,
            channels_last: bool) -> dict[str, Any]:
    import timm
    import torch
    from ssld_zoo.version import __version__
    return {
        "model": loaded.name, "weights": loaded.weights, "weights_sha256": loaded.weights_sha256,
        "data": os.fspath(data), "labels": labelled.labels_from, "classes": loaded.module.num_classes,
        "top1": scores.top1, "top5": scores.top5,
        "correct_top1": scores.correct1, "correct_top5": scores.correct5, "images": scores.labelled,
        "skipped": scores.skipped,
        "limit": limit,
        "preprocessing": {key: list(value) if isinstance(value, tuple) else value
                          for key, value in preprocessing.items()},
        "batch_size": batch_size, "workers": workers, "device": str(device), "channels_last": channels_last,
        "seconds": round(scores.seconds, 3),
        "images_per_s": round(scores.labelled / scores.seconds, 1) if scores.seconds else None,
        "versions": {"ssld_zoo": __version__, "torch": torch.__version__, "timm": timm.__version__},
    }


def summary_line(result: dict[str, Any]) -> str:
    """One human-readable line for an `evaluate()` result."""
    pre = result["preprocessing"]
    return (f"{result['model']} on {result['data']}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% "
            f"({result['images']} images, {result['skipped']} skipped; {pre['input_size'][-1]} px, crop_pct "
            f"{pre['crop_pct']}, {pre['interpolation']}, {pre.get('preprocess', 'timm')} preprocessing; "
            f"{result['images_per_s']} img/s on {result['device']})")


# -- command line -----------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `eval` command's arguments."""
    parser.add_argument("model", metavar="MODEL", help="zoo name or weight (resnet20_cifar.sup_cifar10), Hub-layout "
                                                       "folder, or hf-hub:org/name[@revision]")
    parser.add_argument("data", metavar="DATA", help="cifar10:test / cifar10:train, a folder with one sub-folder per "
                                                     "class, or a flat folder of images (with --labels)")
    parser.add_argument("--weights", metavar="W", help="another weight source for MODEL: .safetensors file, "
                                                       "Hub-layout folder or hf-hub:org/name")
    parser.add_argument("--labels", type=Path, metavar="FILE", help="labels of a flat folder: 'FILENAME INDEX' or "
                        "'FILENAME SYNSET' lines, or Kaggle's LOC_val_solution.csv")
    parser.add_argument("--data", dest="data_root", type=Path, metavar="DIR",
                        help="data folder holding cifar10/ (default: $SSLD_ZOO_DATA)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"images per forward pass (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                        help=f"data loading processes (default {DEFAULT_WORKERS}; 0 loads in this process)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--input-size", type=int, metavar="PX", help="square input size (default: the weights')")
    parser.add_argument("--crop-pct", type=float, metavar="F", help="center-crop fraction (default: the weights')")
    parser.add_argument("--interpolation", choices=INTERPOLATIONS, help="resize interpolation (default: the "
                                                                        "weights')")
    parser.add_argument("--preprocess", choices=PREPROCESSORS, default="timm",
                        help="timm: timm's transform (default); paddle: PaddleClas's own eval pipeline, pixel for "
                             "pixel (OpenCV decode and resize; needs opencv-python-headless)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format (often faster)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="only the first N images, in label order (a quick check)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result to FILE")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: only on a terminal)")
    parser.add_argument("--cache-dir", metavar="DIR", help="Hub cache folder (default: HF_HUB_CACHE)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as `args` say, print the result, write `--out`, and return it."""
    if args.out is not None:  # before the evaluation, which may take long
        if args.out.is_dir():
            raise EvaluationError(f"--out {args.out} is a folder; name the JSON file to write, e.g. "
                                  f"{args.out / 'eval.json'}.")
        if not args.out.parent.is_dir():
            raise EvaluationError(f"--out {args.out}: folder {args.out.parent} does not exist; create it or choose "
                                  "another path.")
    result = evaluate(args.model, args.data, weights=args.weights, labels_file=args.labels,
                      batch_size=args.batch_size, workers=args.workers, device=args.device,
                      input_size=args.input_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
                      limit=args.limit, channels_last=args.channels_last, progress=args.progress,
                      data_root=args.data_root, cache_dir=args.cache_dir, preprocess=args.preprocess)
    text = json.dumps(result, indent=2) + "\n"
    if args.out is not None:
        from ssld_zoo.files import write_text_atomic
        write_text_atomic(args.out, text)
    if args.json:
        print(text, end="")
    else:
        print(summary_line(result))
    return result
