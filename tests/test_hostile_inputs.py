"""Bad and hostile inputs, one row each: the command as a user types it, and the one line it must answer with.

Every row asserts that no traceback is shown, the exit status is non-zero, the message names what was wrong, and
nothing is left half-written (no temporary file in the folders the command was given). The cases come from a probe
of about 340 CLI invocations (issue 14); faults of the Hub, PaddleClas's host and the first-use cache are in
`test_hub.py` and `test_first_use.py`, with the real clients against loopback servers.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

import pytest
import yaml

from ssld_zoo.cli import main

Setup = Callable[[Path], list[str]]


def _recipe(tmp: Path, **changes: object) -> str:
    """A shipped CIFAR recipe with `changes` (dotted keys), written to tmp/recipe.yaml."""
    from ssld_zoo.catalogue.shipped import recipes_dir
    from ssld_zoo.train.recipe import apply_overrides
    raw = yaml.safe_load((recipes_dir() / "cifar10" / "b_ssld.yaml").read_text())
    raw = apply_overrides(raw, [f"{k}={v}" for k, v in changes.items()])
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(raw))
    return str(tmp / "recipe.yaml")


def _pdparams(tmp: Path, data: bytes) -> str:
    (tmp / "bad.pdparams").write_bytes(data)
    return str(tmp / "bad.pdparams")


def _png(tmp: Path) -> str:
    from PIL import Image
    Image.new("RGB", (32, 32), (10, 200, 30)).save(tmp / "ok.png")
    return str(tmp / "ok.png")


def _bomb(tmp: Path) -> str:
    """A PNG whose header declares 40000 x 40000 pixels: PIL refuses it as a decompression bomb."""
    import zlib
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    (tmp / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                                   + chunk(b"IEND", b""))
    return str(tmp / "bomb.png")


def _nan_weights(tmp: Path) -> str:
    """resnet20_cifar's shipped weights with one NaN: a file that passes every format check."""
    from safetensors.torch import load_file, save_file

    from ssld_zoo.catalogue.registry import get_weight_entry
    state = load_file(get_weight_entry("resnet20_cifar.sup_cifar10").file)
    state["linear.weight"][0, 0] = float("nan")
    save_file(state, tmp / "nan.safetensors")
    return str(tmp / "nan.safetensors")


def _folder_with_cfg(tmp: Path, **pretrained_cfg: object) -> str:
    """A Hub-layout folder of a shipped student whose config.json's pretrained_cfg has `pretrained_cfg` changes."""
    import json
    main(["download", "resnet20_cifar.sup_cifar10", "--to", str(tmp / "dl")])
    config_path = tmp / "dl" / "resnet20_cifar.sup_cifar10" / "config.json"
    config = json.loads(config_path.read_text())
    config["pretrained_cfg"].update(pretrained_cfg)
    config_path.write_text(json.dumps(config))
    return str(config_path.parent)


def _metrics(tmp: Path, text: str) -> str:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text(text)
    return str(tmp / "run")


CASES: dict[str, tuple[Setup, str]] = {
    # -- places that cannot be written ----------------------------------------------------------------------------
    "download --to a file": (lambda t: ((t / "f").write_text("x"), ["download", "resnet20_cifar.sup_cifar10",
                                                                     "--to", str(t / "f")])[1],
                             "Not a directory (a file stands where a folder is needed"),
    "eval --out a folder": (lambda t: ["eval", "resnet20_cifar.sup_cifar10", "cifar10:test", "--out", str(t)],
                            "a folder stands where a file is needed"),
    "convert --out an existing file": (
        lambda t: ((t / "out").write_text("x"), ["convert", "--paddle", _pdparams(t, b"\x80\x02}q\x00."),
                                                 "--model", "lcnet_025_ssld", "--out", str(t / "out")])[1],
        "is a file; conversion writes a folder"),
    # -- damaged or foreign weight files -------------------------------------------------------------------------
    "predict --weights garbage.safetensors": (
        lambda t: ((t / "g.safetensors").write_bytes(b"\x05" * 600),
                   ["predict", "resnet20_cifar", _png(t), "--weights", str(t / "g.safetensors")])[1],
        "is not a readable safetensors file"),
    "predict --weights truncated.safetensors": (
        lambda t: ((t / "t.safetensors").write_bytes(struct.pack("<Q", 40) + b'{"w":{"dtype":"F32","shape":[9'),
                   ["predict", "resnet20_cifar", _png(t), "--weights", str(t / "t.safetensors")])[1],
        "is not a readable safetensors file"),
    "convert a .pdparams without the classifier": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02}q\x00."), "--model", "lcnet_025_ssld", "--out",
                   str(t / "o")],
        "do not fit lcnet_025_ssld: 146 missing"),
    "convert a deeply nested .pdparams": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02})" + b"\x85" * 200_000 + b"K\x01s."),
                   "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "containers nested more than 16 deep"),
    "convert a 62-byte .pdparams claiming 8 GB": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02}X\x01\x00\x00\x00wcnumpy\nndarray\nJ\x00\x00\x01"
                                                        b"\x00J\x00\x80\x00\x00\x86X\x02\x00\x00\x00f4\x86Rs."),
                   "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "refused to unpickle the call ndarray"),
    "convert a zip file": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"PK\x03\x04" + b"\x00" * 40), "--model", "lcnet_025_ssld",
                   "--out", str(t / "o")],
        "it is a zip archive"),
    "predict --weights with NaN values": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _nan_weights(t)],
        "hold NaN or infinite values in 1 tensor(s), e.g. linear.weight"),
    "eval a folder whose config.json asks for 45000 px": (
        lambda t: ["eval", _folder_with_cfg(t, input_size=[3, 45000, 45000]), "cifar10:test", "--limit", "2"],
        "input_size (3, 45000, 45000) is not [channels, height, width]"),
    "eval a folder whose config.json has a string crop_pct": (
        lambda t: ["eval", _folder_with_cfg(t, crop_pct="0.9"), "cifar10:test", "--limit", "2"],
        "crop_pct '0.9' is not a number in (0, 1]"),
    "eval a malformed hf-hub id": (lambda t: ["eval", "hf-hub:a/b/c", "cifar10:test"],
                                   "must look like 'hf-hub:org/name'"),
    # -- hostile arguments -----------------------------------------------------------------------------------
    "predict a decompression bomb": (lambda t: ["predict", "resnet20_cifar.sup_cifar10", _bomb(t)],
                                     "cannot read image"),
    "predict an image that is not there": (lambda t: ["predict", "resnet20_cifar.sup_cifar10", str(t / "no.png")],
                                           "does not exist"),
    # -- recipes ----------------------------------------------------------------------------------------------
    "train num_classes=-3": (lambda t: ["train", _recipe(t), "student.model_args.num_classes=-3"],
                             "`student.model_args.num_classes` must be a whole number from 1 to 100,000, not -3"),
    "train num_classes=10**9": (lambda t: ["train", _recipe(t), "student.model_args.num_classes=1000000000"],
                                "must be a whole number from 1 to 100,000"),
    "train a temperature the loss ignores": (lambda t: ["train", _recipe(t), "loss.temperature=4"],
                                             "loss 'symmetric_kl' has no temperature"),
    "train kl at T=1e-30": (lambda t: ["train", _recipe(t), "loss.type=kl", "loss.temperature=1e-30"],
                            "`loss.temperature` must be between 0.1 and 100.0"),
    "train a binary list file": (
        lambda t: ((t / "list.txt").write_bytes(b"\xff\xfe\x00\x81 binary"),
                   ["train", _recipe(t, **{"stages.0.train.1.source": f"list:{t / 'list.txt'}",
                                           "stages.0.train.1.subset": "null"}), "--out", str(t / "run")])[1],
        "is not a UTF-8 text file"),
    "train an unknown shipped recipe": (lambda t: ["train", "cifar10/no_such_recipe"], "`ssld-zoo recipes` lists"),
    # -- damaged state files ---------------------------------------------------------------------------------
    "plot a metrics line that is a list": (lambda t: ["plot", _metrics(t, "[1, 2]\n")],
                                           "metrics.jsonl:1 is not a metrics record"),
    "plot an epoch record without fields": (lambda t: ["plot", _metrics(t, '{"type": "epoch", "stage": "s"}\n')],
                                            "the epoch record lacks epoch, train_loss, lr"),
    "plot a line that is not JSON": (lambda t: ["plot", _metrics(t, "{oops\n")], "metrics.jsonl:1 is not JSON"),
}


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    setup, expected = CASES[case]
    argv = setup(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0, (case, out, err)
    assert "Traceback" not in err and err.count("\n") == 1, (case, err)
    assert err.startswith("ssld-zoo: error: ") and expected in err, (case, err)
    assert not _leftovers(tmp_path), case


def test_argument_errors_name_the_argument(capsys: pytest.CaptureFixture, tmp_path: Path):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "resnet20_cifar.sup_cifar10", _png(tmp_path), "--top", "-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].endswith("argument --top: must be at least 1, not -1")
