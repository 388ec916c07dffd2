"""`ssld-zoo eval` / `ssld_zoo.tools.evaluate.evaluate`: real shipped CIFAR-10 students on the real test images, the
same images as PNG files in every supported folder layout, and one clear error for each kind of bad input.

The reference predictions come from `ssld_zoo.train.demo.predict` (uint8 pixels normalised by hand, no timm
transform): an independent path to the same numbers.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import sha256
from safetensors.torch import load_file, save_file
from timm.data import ImageNetInfo

import ssld_zoo
from ssld_zoo.cli import main
from ssld_zoo.errors import DataError
from ssld_zoo.data.cifar import CLASSES, load_cifar10
from ssld_zoo.errors import InvalidWeightsError, UnknownModelError
from ssld_zoo.tools.evaluate import EvaluationError, evaluate
from ssld_zoo.weights.layout import download_folder
from ssld_zoo.catalogue.registry import get_weight_entry
from ssld_zoo.train.demo import predict

STUDENT = "resnet20_cifar.sup_cifar10"
PER_CLASS = 20  # 200 test images as PNG files
SYNSETS = ImageNetInfo().label_names()
PngFiles = tuple[Path, list[str], np.ndarray]  # folder, file names, labels
IN1K_CLASS = [100 * c + 7 for c in range(len(CLASSES))]  # where the 1000-class head puts CIFAR class c
IN1K_SYNSET = [SYNSETS[i] for i in IN1K_CLASS]


@pytest.fixture(scope="module")
def pack():
    return load_cifar10("test")


@pytest.fixture(scope="module")
def picked(pack):
    """The first PER_CLASS test images of every class: indices, uint8 pixels, labels."""
    index = pack.per_class(PER_CLASS)
    return index, pack.decode_all(index), pack.labels[index]


def correct(name: str, images: np.ndarray, labels: np.ndarray) -> int:
    """Top-1 hits of a catalogue weight, computed without the evaluation code."""
    return int((predict(ssld_zoo.create(name, pretrained=True), images) == labels).sum())


@pytest.fixture(scope="module")
def png_files(picked, tmp_path_factory) -> PngFiles:
    """The picked images as PNG files (lossless: the pixels the pack decodes to), flat, named img_<pack index>."""
    index, images, labels = picked
    folder = tmp_path_factory.mktemp("flat")
    names = []
    for i, image in zip(index.tolist(), images):
        names.append(f"img_{i:05d}.png")
        Image.fromarray(image).save(folder / names[-1])
    return folder, names, labels


def class_tree(png_files: PngFiles, root: Path, folder_names: Sequence[str]) -> Path:
    """Copy the PNG files into one sub-folder per class, named `folder_names[label]`."""
    flat, names, labels = png_files
    for name, label in zip(names, labels.tolist()):
        (root / folder_names[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(flat / name, root / folder_names[label] / name)
    return root


@pytest.fixture(scope="module")
def cifar_tree(png_files, tmp_path_factory) -> Path:
    return class_tree(png_files, tmp_path_factory.mktemp("tree"), CLASSES)


def write_labels(png_files: PngFiles, path: Path, label_text: Callable[[int], str], header: str | None = None,
                 sep: str = " ", suffix: bool = True) -> Path:
    """A labels file for the flat PNG folder: `header`, then `NAME<sep>LABEL` lines (names without `.png` when not
    `suffix`, as Kaggle's ImageId)."""
    _, names, labels = png_files
    names = names if suffix else [Path(n).stem for n in names]
    lines = ([header] if header else []) + [f"{n}{sep}{label_text(int(y))}" for n, y in zip(names, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def student_hits(picked) -> int:
    _, images, labels = picked
    return correct(STUDENT, images, labels)


# -- the catalogue's number, reproduced ----------------------------------------------------------------------------
def test_full_cifar10_test_reproduces_the_catalogue_metrics_exactly():
    result = evaluate(STUDENT, "cifar10:test", batch_size=500, workers=2, progress=False)
    measured = get_weight_entry(STUDENT).data["metrics"]["measured"]
    assert (result["images"], result["skipped"]) == (10_000, 0)
    assert (result["top1"], result["top5"]) == (measured["top1"], measured["top5"])
    assert result["correct_top1"] == round(measured["top1"] * 100)
    assert result["preprocessing"]["input_size"] == [3, measured["input_size"], measured["input_size"]]
    assert result["preprocessing"]["crop_pct"] == measured["crop_pct"]
    assert result["model"] == STUDENT and result["weights_sha256"] == get_weight_entry(STUDENT).hub.sha256


# -- folder layouts ------------------------------------------------------------------------------------------------
def test_class_folders_and_flat_folder_give_the_packs_top1(cifar_tree, png_files, tmp_path, student_hits):
    n = 10 * PER_CLASS
    tree = evaluate(STUDENT, cifar_tree, workers=0)
    assert (tree["images"], tree["correct_top1"]) == (n, student_hits)
    assert "10 class folders" in tree["labels"]
    flat, *_ = png_files
    by_index = evaluate(STUDENT, flat, labels_file=write_labels(png_files, tmp_path / "val.txt", str), workers=0)
    assert (by_index["images"], by_index["correct_top1"]) == (n, student_hits)
    assert by_index["correct_top5"] == tree["correct_top5"]
    assert by_index["top1"] == pytest.approx(100 * student_hits / n)


def test_undecodable_images_are_counted_as_skipped(png_files, tmp_path, student_hits):
    tree = class_tree(png_files, tmp_path / "tree", CLASSES)
    (tree / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = evaluate(STUDENT, tree, workers=0)
    assert (result["images"], result["skipped"], result["correct_top1"]) == (10 * PER_CLASS, 1, student_hits)


@pytest.fixture(scope="module")
def in1k_head_folder(tmp_path_factory) -> Path:
    """The student with a 1000-class head in a Hub-layout folder under a name of its own: CIFAR class c is ImageNet
    class IN1K_CLASS[c] (the other 990 never win), so synset labels can be checked against real predictions."""
    folder = tmp_path_factory.mktemp("in1k_head")
    state = load_file(get_weight_entry(STUDENT).file)
    weight, bias = state["linear.weight"], state["linear.bias"]
    state["linear.weight"] = torch.zeros(1000, weight.shape[1]).index_copy(0, torch.tensor(IN1K_CLASS), weight)
    state["linear.bias"] = torch.full((1000,), -1e4).index_copy(0, torch.tensor(IN1K_CLASS), bias)
    save_file(state, str(folder / "model.safetensors"))
    data = (folder / "model.safetensors").read_bytes()
    pre = {k: v for k, v in get_weight_entry(STUDENT).preprocessing.items() if k != "source"}  # timm's keys only
    config = {"architecture": "resnet20_cifar", "num_classes": 1000, "pretrained_cfg": dict(pre, num_classes=1000),
              "ssld_zoo": {"model": "resnet20_in1k_head", "sha256": sha256(data), "size": len(data)}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_synset_labels_map_through_imagenet_order(in1k_head_folder, png_files, tmp_path, student_hits):
    flat, *_ = png_files
    synset = IN1K_SYNSET.__getitem__
    results = [
        evaluate(in1k_head_folder, flat, labels_file=write_labels(png_files, tmp_path / "synsets.txt", synset)),
        evaluate(in1k_head_folder, flat, labels_file=write_labels(
            png_files, tmp_path / "LOC_val_solution.csv", lambda y: f"{synset(y)} 12 34 56 78 {synset(y)} 1 2 3 4",
            header="ImageId,PredictionString", sep=",", suffix=False)),
        evaluate(in1k_head_folder, class_tree(png_files, tmp_path / "synset_tree", IN1K_SYNSET)),
    ]
    for result in results:
        assert result["model"] == "resnet20_in1k_head" and result["classes"] == 1000
        assert (result["images"], result["correct_top1"]) == (10 * PER_CLASS, student_hits)
    assert "ImageNet-1k synsets" in results[0]["labels"] and "synsets" in results[2]["labels"]


# -- weight sources ------------------------------------------------------------------------------------------------
def test_hub_layout_folder_and_weights_override(cifar_tree, picked, tmp_path, student_hits):
    folder = download_folder(STUDENT, tmp_path)
    result = evaluate(folder, cifar_tree, workers=0)
    assert (result["model"], result["weights"]) == (STUDENT, str(folder))
    assert result["weights_sha256"] == json.loads((folder / "config.json").read_text())["ssld_zoo"]["sha256"]
    assert result["correct_top1"] == student_hits
    other = "resnet20_cifar.ssld_r56_cifar10"
    override = evaluate(STUDENT, cifar_tree, weights=get_weight_entry(other).file, workers=0)
    assert override["weights"] == str(get_weight_entry(other).file) and override["weights_sha256"] is None
    assert override["correct_top1"] == correct(other, *picked[1:])


def test_hf_hub_model(fake_hub, cifar_tree, tmp_path, student_hits):
    folder = download_folder(STUDENT, tmp_path)
    fake_hub.publish("org/r20", {name: (folder / name).read_bytes() for name in ("model.safetensors", "config.json")})
    result = evaluate("hf-hub:org/r20", cifar_tree, workers=0)
    assert (result["model"], result["correct_top1"]) == ("hf-hub:org/r20", student_hits)


# -- preprocessing -------------------------------------------------------------------------------------------------
def test_preprocessing_overrides_are_used_and_reported(cifar_tree, picked):
    result = evaluate(STUDENT, cifar_tree, input_size=40, crop_pct=0.8, interpolation="bicubic", workers=0)
    pre = result["preprocessing"]
    assert (pre["input_size"], pre["crop_pct"], pre["interpolation"]) == ([3, 40, 40], 0.8, "bicubic")
    _, images, labels = picked  # by hand: bicubic resize to floor(40 / 0.8) = 50, center crop 40
    resized = np.stack([np.asarray(Image.fromarray(im).resize((50, 50), Image.Resampling.BICUBIC).crop((5, 5, 45, 45)))
                        for im in images])
    hits = int((predict(ssld_zoo.create(STUDENT, pretrained=True), resized) == labels).sum())
    assert result["correct_top1"] == hits


# -- command line --------------------------------------------------------------------------------------------------
def test_cli_json_out_file_and_summary_line(capsys, tmp_path, pack):
    out = tmp_path / "result.json"
    code = main(["eval", STUDENT, "cifar10:test", "--limit", "300", "--workers", "2", "--batch-size", "64",
                 "--json", "--out", str(out), "--no-progress"])
    stdout, err = capsys.readouterr()
    assert code == 0 and err == ""
    printed = json.loads(stdout)
    assert printed == json.loads(out.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
    index = np.arange(300)
    assert printed["correct_top1"] == correct(STUDENT, pack.decode_all(index), pack.labels[index])
    assert (printed["images"], printed["limit"], printed["workers"], printed["batch_size"]) == (300, 300, 2, 64)
    assert main(["eval", STUDENT, "cifar10:test", "--limit", "50", "--workers", "0"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{STUDENT} on cifar10:test: top-1 ") and "(50 images, 0 skipped; 32 px" in line


def test_cli_error_is_one_line(capsys, tmp_path):
    code = main(["eval", STUDENT, str(tmp_path / "nowhere")])
    _, err = capsys.readouterr()
    assert code == 1 and err == f"ssld-zoo: error: DATA folder '{tmp_path / 'nowhere'}' does not exist.\n"


# -- errors --------------------------------------------------------------------------------------------------------
def test_model_and_labels_with_different_classes(png_files, cifar_tree, tmp_path):
    flat, *_ = png_files
    with pytest.raises(EvaluationError, match=r"predicts 10 classes, but the labels of .*synsets.* have 1000"):
        evaluate(STUDENT, flat, labels_file=write_labels(png_files, tmp_path / "s.txt", SYNSETS.__getitem__))
    few = tmp_path / "few"
    for name in CLASSES[:3]:
        shutil.copytree(cifar_tree / name, few / name)
    with pytest.raises(EvaluationError, match=r"predicts 10 classes, but the labels of .*\(3 class folders"):
        evaluate(STUDENT, few)
    with pytest.raises(EvaluationError, match=r"go up to class 12, but model .* predicts 10 classes"):
        evaluate(STUDENT, flat, labels_file=write_labels(png_files, tmp_path / "i.txt", lambda y: str(y + 3)))


def test_folder_errors_name_the_problem(png_files, tmp_path):
    flat, names, _ = png_files
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no class sub-folders and no images"):
        evaluate(STUDENT, tmp_path / "empty")
    with pytest.raises(DataError, match="images but no class sub-folders; a flat folder needs --labels FILE"):
        evaluate(STUDENT, flat)
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(DataError, match="The 1 class folders of .* hold no images"):
        evaluate(STUDENT, tmp_path / "empty")
    labels = write_labels(png_files, tmp_path / "val.txt", str)
    with pytest.raises(DataError, match="holds no images"):
        evaluate(STUDENT, tmp_path / "empty", labels_file=labels)
    with pytest.raises(DataError, match="is not a folder"):
        evaluate(STUDENT, labels)


def test_labels_file_errors_name_file_and_line(png_files, tmp_path):
    flat, names, _ = png_files
    cases = {
        "missing": ("\n".join(f"{n} 0" for n in names[1:]), rf"{re.escape(str(flat / names[0]))} has no label in "),
        "extra": ("\n".join(f"{n} 0" for n in names) + "\n\nghost.png 3", r"extra:202: 'ghost' is not in .*\(1 "),
        "synset": ("\n".join(f"{n} n01440764" for n in names[:-1]) + f"\n{names[-1]} n99999999",
                   r"synset:200: unknown synset 'n99999999'"),
        "bad": (f"{names[0]} cat", r"bad:1: label 'cat' is neither a class index"),
        "mixed": (f"{names[0]} 1\n{names[1]} n01440764", r"mixed:2: mixes class indices and synsets"),
        "twice": (f"{names[0]} 1\n./{names[0]} 2", rf"twice:2: './{names[0]}' is labelled twice \(first on line 1\)"),
        "short": ("justaname", r"short:1: expected 'FILENAME LABEL'"),
        "empty": ("\n\n", r"empty is empty"),
        "kaggle": ("ImageId,PredictionString\nimg_1,", r"kaggle:2: expected 'ImageId,PredictionString'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=message):
            evaluate(STUDENT, flat, labels_file=tmp_path / name)
    with pytest.raises(DataError, match="Cannot read the labels file .*absent.txt: No such file"):
        evaluate(STUDENT, flat, labels_file=tmp_path / "absent.txt")


def test_bad_model_and_options(cifar_tree, tmp_path):
    with pytest.raises(UnknownModelError, match="Did you mean: resnet20_cifar"):
        evaluate("resnet20_cifa", cifar_tree)
    with pytest.raises(InvalidWeightsError, match="no_such_model. does not exist: give a catalogue name"):
        evaluate(str(tmp_path / "no_such_model"), cifar_tree)
    (tmp_path / "not_hub").mkdir()
    with pytest.raises(InvalidWeightsError, match="is not in Hub layout"):
        evaluate(tmp_path / "not_hub", cifar_tree)
    with pytest.raises(EvaluationError, match="--limit must be at least 1, not 0"):
        evaluate(STUDENT, cifar_tree, limit=0)
    with pytest.raises(EvaluationError, match="--crop-pct must be from 0.25 to 1"):
        evaluate(STUDENT, cifar_tree, crop_pct=1.5)
    with pytest.raises(DataError, match="carries its own labels"):
        evaluate(STUDENT, "cifar10:test", labels_file=tmp_path / "x.txt")
    with pytest.raises(DataError, match="split 'val' does not exist"):
        evaluate(STUDENT, "cifar10:val")
