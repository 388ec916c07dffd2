"""The hostile-input corpus: every bad input the project knows of, one row each — the command as a user types it
(through the real `ssld-zoo` CLI, `ssld_zoo.cli.main`) and the one line it must answer with.

Every row asserts that no traceback is shown, the exit status is non-zero, the one line on stderr starts with
`ssld-zoo: error: ` and names what was wrong, and nothing is left half-written (no temporary file in the folders the
command was given). The cases come from a probe of about 340 CLI invocations (issue 14), in families:

- places that cannot be written: unwritable HF cache, `--cache-dir`, first-use cache and output paths (made
  unwritable with `chattr +i` as root, whom permissions do not stop; chmod otherwise), a file where a folder is
  needed and the reverse;
- damaged or foreign weight files given explicitly, config.json values of the wrong type, malformed Hub ids;
- damaged state files: the first-use record, a soft-label cache's manifest and shards, a mining state, a checkpoint,
  metrics.jsonl;
- network faults, against the loopback Hub (`hubserver.FakeHub`) and PaddleClas host (`fileserver.FileServer`): a CDN
  answering 500, a connection cut mid-file, a Hub that never answers (bounded by SSLD_ZOO_HUB_DEADLINE_S /
  SSLD_ZOO_DOWNLOAD_DEADLINE_S), wrong bytes, missing repos and revisions;
- hostile arguments and environment: decompression bombs, binary list files, huge class counts, unknown names;
- recipes that cannot be used.

`CASES` rows need only a temporary folder; `WORLD_CASES` rows get a `Scene` (the loopback servers, `unwritable`,
environment variables); `FIRST_USE_RECORDS` damage the first-use record; `ARGUMENT_CASES` are refused by argparse
(usage, then one `error:` line, exit status 2). Every subcommand has rows. huggingface_hub's own retry warnings
("Retrying in 1s") stay in the Hub download's child process and never reach the terminal. The non-CLI tests of the
same faults stay beside the code they test (`test_hub.py`, `test_first_use.py`, `test_soft_label_cache.py`,
`test_mine.py`, `test_pdparams.py`, ...).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from fileserver import FileServer
from hubserver import FakeHub

from ssld_zoo.cli import main

Setup = Callable[[Path], list[str]]
R20 = "resnet20_cifar.sup_cifar10"  # the shipped weight: loads offline
LCNET = "lcnet_025_ssld.ssld_in1k"  # a first-use weight (converted from PaddleClas on first use)
LCNET_URL_PATH = "dygraph/legendary_models/PPLCNet_x0_25_ssld_pretrained.pdparams"  # on the PaddleClas host


def _recipe(tmp: Path, **changes: object) -> str:
    """A shipped CIFAR recipe with `changes` (dotted keys), written to tmp/recipe.yaml."""
    from ssld_zoo.catalogue.shipped import recipes_dir
    from ssld_zoo.train.recipe import apply_overrides
    raw = yaml.safe_load((recipes_dir() / "cifar10" / "b_ssld.yaml").read_text())
    raw = apply_overrides(raw, [f"{k}={v}" for k, v in changes.items()])
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(raw))
    return str(tmp / "recipe.yaml")


def _tiny_recipe(tmp: Path, name: str = "recipe.yaml", **top: Any) -> str:
    """A recipe that trains (or caches) in a second: ResNet-20 from the shipped ResNet-20 on 10 CIFAR-10 images;
    `top` replaces top-level keys."""
    raw: dict[str, Any] = {
        "name": "tiny_student", "student": {"model": "resnet20_cifar"},
        "teacher": {"model": R20, "pretrained": True, "bn": "train"}, "loss": {"type": "symmetric_kl"},
        "data": {"input_size": 32, "augment": {"pad_crop": 4, "hflip": True}}, "batch_size": 5,
        "stages": [{"name": "s", "epochs": 1, "lr": 0.01,
                    "train": [{"source": "cifar10:test", "subset": "per_class:1", "labels": False}]}],
        "runtime": {"workers": 0, "seed": 0, "checkpoint_every": 1000}, "cache": {"views": 1, "topk": 3}, **top}
    (tmp / name).write_text(yaml.safe_dump(raw))
    return str(tmp / name)


def _pdparams(tmp: Path, data: bytes) -> str:
    (tmp / "bad.pdparams").write_bytes(data)
    return str(tmp / "bad.pdparams")


def _aliased_slices() -> bytes:
    """A small array pickled once and named by 40 split slices (each a memo reference)."""
    import pickle

    import numpy as np
    array = np.ones(4096, np.float32)
    saved: dict[str, Any] = {f"w@@.{i}": array for i in range(40)}
    saved["UnpackBigParamInfor@@"] = {"w": {"OriginShape": [40 * 4096], "slices": list(saved)}}
    return pickle.dumps(saved, protocol=2)


def _lcnet_025_pdparams(tmp: Path, damage: Callable[[dict[str, Any]], None]) -> str:
    """A complete PaddleClas PPLCNet_x0_25 state dict (the inverse of `convert/lcnet.py`'s key map, built from the
    zoo model's shapes: no Paddle needed), after `damage(arrays)`."""
    import pickle

    import numpy as np

    from ssld_zoo.convert._base import target_shapes
    groups, stages = (1, 2, 2, 6, 2), (1, 2, 2, 2, 4, 2)
    parts = {"conv_dw": "dw_conv.conv", "bn1": "dw_conv.bn", "conv_pw": "pw_conv.conv", "bn2": "pw_conv.bn",
             "se.conv_reduce": "se.conv1", "se.conv_expand": "se.conv2"}
    leaves = {"running_mean": "_mean", "running_var": "_variance"}
    arrays: dict[str, Any] = {}
    for key, shape in target_shapes("lcnet_025_ssld").items():
        head, _, leaf = key.rpartition(".")
        leaf = leaves.get(leaf, leaf)
        if key.endswith("num_batches_tracked") or key == "conv_head.bias":
            continue
        if head.startswith("blocks."):
            _, stage, index, part = head.split(".", 3)
            flat = sum(stages[:int(stage)]) + int(index)
            group = next(g for g in range(5) if flat < sum(groups[:g + 1]))
            name = f"blocks{group + 2}.{flat - sum(groups[:group])}.{parts[part]}.{leaf}"
        else:
            name = {"conv_stem": "conv1.conv", "bn1": "conv1.bn", "conv_head": "last_conv", "classifier": "fc"}[head]
            name += f".{leaf}"
        arrays[name] = np.full(shape[::-1] if name == "fc.weight" else shape, 0.5, np.float32)
    damage(arrays)
    return _pdparams(tmp, pickle.dumps(arrays, protocol=4))


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


def _r20_state() -> dict[str, Any]:
    from safetensors.torch import load_file

    from ssld_zoo.catalogue.registry import get_weight_entry
    return load_file(get_weight_entry(R20).file)


def _weights(tmp: Path, name: str, change: Callable[[dict[str, Any]], None]) -> str:
    """resnet20_cifar's shipped weights with `change` applied, saved as tmp/name."""
    from safetensors.torch import save_file
    state = _r20_state()
    change(state)
    save_file(state, tmp / name)
    return str(tmp / name)


def _nan_weights(tmp: Path) -> str:
    """resnet20_cifar's shipped weights with one NaN: a file that passes every format check."""
    return _weights(tmp, "nan.safetensors", lambda s: s["linear.weight"].__setitem__((0, 0), float("nan")))


def _file(tmp: Path, name: str, data: bytes | str) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


GARBAGE_SAFETENSORS = b"\x05" * 600
TRUNCATED_SAFETENSORS = struct.pack("<Q", 40) + b'{"w":{"dtype":"F32","shape":[9'


def _folder(tmp: Path) -> Path:
    """A Hub-layout folder of the shipped student, as `ssld-zoo download` writes it."""
    main(["download", R20, "--to", str(tmp / "dl")])
    return tmp / "dl" / R20


def _folder_with_cfg(tmp: Path, **pretrained_cfg: object) -> str:
    """A Hub-layout folder of a shipped student whose config.json's pretrained_cfg has `pretrained_cfg` changes."""
    config_path = _folder(tmp) / "config.json"
    config = json.loads(config_path.read_text())
    config["pretrained_cfg"].update(pretrained_cfg)
    config_path.write_text(json.dumps(config))
    return str(config_path.parent)


def _folder_with_config(tmp: Path, text: str) -> str:
    folder = _folder(tmp)
    (folder / "config.json").write_text(text)
    return str(folder)


def _folder_with_top(tmp: Path, **top: object) -> str:
    """A Hub-layout folder of the shipped student whose config.json has the top-level keys `top` added."""
    config_path = _folder(tmp) / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **top}))
    return str(config_path.parent)


def _safetensors(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    """A safetensors file of `header` (a dict, or its exact JSON bytes) and `data`."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


SHARED_OFFSETS_SAFETENSORS = (struct.pack("<Q", 107) + b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                              b'"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' + b"\0" * 16)


def _folder_with_other_weights(tmp: Path) -> str:
    """A Hub-layout folder whose model.safetensors was replaced after config.json pinned it."""
    folder = _folder(tmp)
    shutil.copyfile(_nan_weights(tmp), folder / "model.safetensors")
    return str(folder)


def _metrics(tmp: Path, text: str) -> str:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text(text)
    return str(tmp / "run")


def _list(tmp: Path, name: str, entries: range) -> str:
    return _file(tmp, name, "".join(f"cifar10:test/{i}\n" for i in entries))


def _mine(tmp: Path, *extra: str, pool: str | None = None, out: str | None = None) -> list[str]:
    """`mine` with ResNet-20 on a pool of 6 CIFAR-10 test images (or `pool`), excluding 2 others."""
    return ["mine", "--teacher", R20, "--pool", pool or _list(tmp, "pool.txt", range(6)), "--exclude",
            _list(tmp, "exclude.txt", range(10, 12)), "--per-class", "1", "--workers", "0", "--batch-size", "4",
            "--out", out or str(tmp / "mined.txt"), *extra]


def _mining_state(tmp: Path, data: bytes) -> list[str]:
    """`mine --resume` of a run whose state file holds `data`."""
    argv = _mine(tmp, "--resume")
    (tmp / "mined.state.npz").write_bytes(data)
    return argv


def _run_with_checkpoint(tmp: Path, data: bytes) -> list[str]:
    """`train --resume` of a run folder whose checkpoint.pt holds `data`."""
    recipe = _tiny_recipe(tmp)
    _file(tmp, "run/checkpoint.pt", data)
    return ["train", recipe, "--out", str(tmp / "run"), "--resume", "--device", "cpu"]


def _run_with_checkpoint_payload(tmp: Path, payload: dict[str, Any]) -> list[str]:
    """`train --resume` of a run folder whose checkpoint.pt is a readable checkpoint holding `payload`."""
    import torch

    from ssld_zoo.train.checkpoint import FORMAT
    argv = _run_with_checkpoint(tmp, b"")
    torch.save({"format": FORMAT, **payload}, tmp / "run" / "checkpoint.pt")
    return argv


def _fifo(tmp: Path, name: str) -> str:
    """A named pipe at tmp/name: a reader that opens it blocking waits forever for a writer."""
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(tmp / name)
    return str(tmp / name)


def _demo(out: Path) -> list[str]:
    """`demo` at the smallest sizes (10 labeled, 10 unlabeled images, one step)."""
    return ["demo", "--out", str(out), "--labeled-per-class", "1", "--unlabeled-per-class", "1", "--epochs", "1",
            "--batch-size", "10", "--eval-per-class", "1", "--curve-per-class", "1", "--eval-every", "1"]


def _bench(*extra: str) -> list[str]:
    return ["bench", "resnet20_cifar", "--dtype", "fp32", "--channels-last", "off", "--device", "cpu",
            "--input-size", "32", "--warmup", "0", "--rounds", "1", "--iters", "1", "--batch-size", "1", "--no-timm",
            *extra]


CASES: dict[str, tuple[Setup, str]] = {
    # -- places that cannot be written ----------------------------------------------------------------------------
    "download --to a file": (lambda t: ["download", R20, "--to", _file(t, "f", "x")],
                             "Not a directory (a file stands where a folder is needed"),
    "eval --out a folder": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--out", str(t)],
                            "--out $TMP is a folder; name the JSON file to write"),
    "eval --out in a missing folder": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--out",
                                                  str(t / "no" / "r.json")], "folder $TMP/no does not exist"),
    "convert --out an existing file": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02}q\x00."), "--model", "lcnet_025_ssld", "--out",
                   _file(t, "out", "x")],
        "is a file; conversion writes a folder"),
    "export --onnx a folder": (lambda t: ["export", R20, "--onnx", str(t)], "is a folder; give the path of the .onnx"),
    "export --onnx under a file": (lambda t: ["export", R20, "--onnx", _file(t, "f", "x") + "/m.onnx"],
                                   "Cannot use $TMP/f: Not a directory (a file stands where a folder is needed"),
    "backbone --out under a file": (
        lambda t: ["backbone", "resnet50d_ssld", "--for", "presnet", "--out", _file(t, "f", "x") + "/out"],
        "Cannot use $TMP/f/out: Not a directory (a file stands where a folder is needed"),
    "backbone --for an unknown layout": (
        lambda t: ["backbone", "resnet50d_ssld", "--for", "rtdetr", "--out", str(t / "out")],
        "Unknown backbone layout 'rtdetr'. Use one of: presnet"),
    "backbone a family that does not fit": (
        lambda t: ["backbone", "lcnet_025_ssld", "--for", "presnet", "--out", str(t / "out")],
        "'lcnet_025_ssld.ssld_in1k' does not fit the presnet layout … fit are: resnet34d_ssld, resnet50d_ssld"),
    "backbone a size RT-DETRv2 does not have": (
        lambda t: ["backbone", "hgnetv2_b0_ssld", "--for", "hgnetv2-rtdetrv2", "--out", str(t / "out")],
        "fit are: hgnetv2_b4_ssld, hgnetv2_b5_ssld, hgnetv2_b6_ssld"),
    "bench --json under a file": (lambda t: _bench("--json", _file(t, "f", "x") + "/b.json"),
                                  "Cannot use $TMP/f: Not a directory (a file stands where a folder is needed"),
    # -- places that must not be replaced: only a regular file is (ssld_zoo.files; test_files.py's property test) --
    "download --to a path holding a NUL character": (
        lambda t: ["download", R20, "--to", str(t / "a\0b")],
        f"Cannot write '$TMP/a\\x00b/{R20}/model.safetensors': the name holds a NUL character"),
    "export --onnx a FIFO": (lambda t: (os.mkfifo(t / "p.onnx"), ["export", R20, "--onnx", str(t / "p.onnx")])[1],
                             "Cannot write $TMP/p.onnx: it is a FIFO (named pipe), not a regular file, and is left"),
    "download into a folder whose model.safetensors links to a device": (
        lambda t: ((t / R20).mkdir(), (t / R20 / "model.safetensors").symlink_to(os.devnull),
                   ["download", R20, "--to", str(t)])[2],
        f"Cannot write $TMP/{R20}/model.safetensors: it is a symbolic link to /dev/null, a character device"),
    "download --to a folder holding other weights": (
        lambda t: (_file(t, f"{R20}/model.safetensors", b"other weights"), ["download", R20, "--to", str(t)])[1],
        f"$TMP/{R20}/model.safetensors holds other weights (sha256 … pass --force to replace them"),
    # -- damaged or foreign weight files -------------------------------------------------------------------------
    "predict --weights garbage.safetensors": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _file(t, "g.safetensors", GARBAGE_SAFETENSORS)],
        "is not a readable safetensors file"),
    "predict --weights truncated.safetensors": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights",
                   _file(t, "t.safetensors", TRUNCATED_SAFETENSORS)],
        "is not a readable safetensors file"),
    "eval --weights truncated.safetensors": (
        lambda t: ["eval", "resnet20_cifar", "cifar10:test", "--limit", "2", "--weights",
                   _file(t, "t.safetensors", TRUNCATED_SAFETENSORS)],
        "t.safetensors' is not a readable safetensors file"),
    "predict --weights a safetensors whose tensors share their bytes": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights",
                   _file(t, "s.safetensors", SHARED_OFFSETS_SAFETENSORS)],
        "s.safetensors' is not a readable safetensors file (tensor 'b' starts at byte 0 of the data, where the "
        "tensors before it end at 8: they overlap)"),
    "predict --weights a safetensors whose shape overflows as the loader multiplies it out": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _file(t, "o.safetensors", _safetensors(
            {"a": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40, 0], "data_offsets": [0, 0]}}))],
        "o.safetensors' is not a readable safetensors file (tensor 'a' has the shape [1099511627776, "
        "1099511627776, 0], whose element count overflows 64 bits"),
    "predict --weights a safetensors whose header escapes half a UTF-16 pair": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _file(t, "u.safetensors", _safetensors(
            b'{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))],
        "u.safetensors' is not a readable safetensors file (its header is refused: a \\u escape in it is half of a "
        "UTF-16 pair"),
    "export --weights garbage.safetensors": (
        lambda t: ["export", "resnet20_cifar", "--onnx", str(t / "m.onnx"), "--weights",
                   _file(t, "g.safetensors", GARBAGE_SAFETENSORS)],
        "g.safetensors' is not a readable safetensors file"),
    "mine --teacher-weights truncated.safetensors": (
        lambda t: _mine(t, "--teacher-weights", _file(t, "t.safetensors", TRUNCATED_SAFETENSORS)),
        "t.safetensors' is not a readable safetensors file"),
    "predict --weights a pickle": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _file(t, "model.pt", b"\x80\x02}q\x00.")],
        "model.pt' is not a .safetensors file"),
    "predict --weights of another model": (
        lambda t: ["predict", "resnet32_cifar", _png(t), "--weights",
                   _weights(t, "r20.safetensors", lambda s: None)],
        "do not fit model 'resnet32_cifar': 60 missing key(s) (layer1.3.conv1.weight, "),
    "predict --weights with a tensor of the wrong shape": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights",
                   _weights(t, "w.safetensors", lambda s: s.__setitem__("linear.weight", s["linear.weight"][:5]))],
        "linear.weight is [5, 64] in the file, [10, 64] in the model"),
    "predict --weights with unexpected keys": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights",
                   _weights(t, "w.safetensors", lambda s: s.__setitem__("extra.weight", s["linear.bias"].clone()))],
        "do not fit model 'resnet20_cifar': 1 unexpected key(s) (extra.weight)"),
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
    "convert a .pdparams that runs code": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueK\x01s."),
                   "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "os.system"),
    "convert a .pdparams that is not there": (
        lambda t: ["convert", "--paddle", str(t / "no.pdparams"), "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "no such .pdparams file"),
    "convert a 20-byte .pdparams whose BYTEARRAY8 declares 2e9 bytes": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x05}\x8c\x01w\x96" + struct.pack("<Q", 2 * 10 ** 9)
                                                       + b"s."), "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "the pickle asks for 2,000,000,000 bytes, but only 2 remain"),
    "convert a .pdparams whose split slices all name one array": (
        lambda t: ["convert", "--paddle", _pdparams(t, _aliased_slices()), "--model", "lcnet_025_ssld", "--out",
                   str(t / "o")],
        "keys or split slices name the same array again"),
    "convert a .pdparams with a key that is not a string": (
        lambda t: ["convert", "--paddle", _pdparams(t, b"\x80\x02}\x8b" + struct.pack("<i", 2100) + b"\x7f" * 2100
                                                       + b"K\x02s."), "--model", "lcnet_025_ssld", "--out",
                   str(t / "o")],
        "the state dict has the key an integer of 16,799 bits of type int"),
    "convert a .pdparams with NaN weights": (
        lambda t: ["convert", "--paddle", _lcnet_025_pdparams(t, lambda a: a["conv1.conv.weight"].fill(float("nan"))),
                   "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "'conv_stem.weight' holds NaN or infinite values; nothing was written"),
    "convert a .pdparams with a negative BatchNorm variance": (
        lambda t: ["convert", "--paddle", _lcnet_025_pdparams(t, lambda a: a["conv1.bn._variance"].fill(-1.0)),
                   "--model", "lcnet_025_ssld", "--out", str(t / "o")],
        "'bn1.running_var' holds negative BatchNorm variances"),
    "convert a .pdparams with integer weights": (
        lambda t: ["convert", "--paddle", _lcnet_025_pdparams(
            t, lambda a: a.__setitem__("fc.bias", a["fc.bias"].astype("int64"))), "--model", "lcnet_025_ssld",
                   "--out", str(t / "o")],
        "'classifier.bias' is int64, not a floating-point tensor"),
    "predict --weights with NaN values": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", _nan_weights(t)],
        "hold NaN or infinite values in 1 tensor(s), e.g. linear.weight"),
    "eval a folder whose model.safetensors was replaced": (
        lambda t: ["eval", _folder_with_other_weights(t), "cifar10:test", "--limit", "2"],
        "does not match the sha256 recorded in its config.json"),
    "eval a folder without model.safetensors": (
        lambda t: (Path(_folder(t)) / "model.safetensors").unlink() or ["eval", str(t / "dl" / R20), "cifar10:test"],
        "is not in Hub layout"),
    "eval a folder whose config.json asks for 45000 px": (
        lambda t: ["eval", _folder_with_cfg(t, input_size=[3, 45000, 45000]), "cifar10:test", "--limit", "2"],
        "input_size (3, 45000, 45000) is not [channels, height, width]"),
    "eval a folder whose config.json has a string crop_pct": (
        lambda t: ["eval", _folder_with_cfg(t, crop_pct="0.9"), "cifar10:test", "--limit", "2"],
        "crop_pct '0.9' is not a number from 0.25 to 1"),
    "eval a folder whose config.json resizes with lanczos": (
        lambda t: ["eval", _folder_with_cfg(t, interpolation="lanczos"), "cifar10:test", "--limit", "2"],
        "interpolation 'lanczos' is not one of bilinear, bicubic, nearest"),
    "eval a folder whose config.json has a string mean": (
        lambda t: ["eval", _folder_with_cfg(t, mean="0.5"), "cifar10:test", "--limit", "2"],
        "mean '0.5' is not 3 finite numbers"),
    "eval a folder whose config.json has 10**9 classes": (
        lambda t: ["eval", _folder_with_config(t, json.dumps({"architecture": "resnet20_cifar",
                                                              "num_classes": 10 ** 9})), "cifar10:test"],
        "num_classes 1000000000 is not a whole number from 0 to 100,000"),
    "eval a folder whose config.json's model_args load another checkpoint": (
        lambda t: ["eval", _folder_with_top(t, model_args={"checkpoint_path": _file(t, "zeros.pth", b"")}),
                   "cifar10:test", "--limit", "2"],
        "config.json: model_args 'checkpoint_path' would change where or how weights are loaded"),
    "eval a folder whose config.json has an unknown key": (
        lambda t: ["eval", _folder_with_top(t, loader="pickle"), "cifar10:test", "--limit", "2"],
        "config.json: unknown key(s) 'loader' at the top level; the allowed ones are architecture, "),
    "eval a folder whose config.json asks timm for a custom loader": (
        lambda t: ["eval", _folder_with_cfg(t, custom_load=True), "cifar10:test", "--limit", "2"],
        "custom_load True must be false"),
    "eval a folder whose config.json is not JSON": (
        lambda t: ["eval", _folder_with_config(t, "{oops"), "cifar10:test", "--limit", "2"],
        "config.json is not valid JSON: Expecting property name"),
    "eval a folder whose config.json is a list": (
        lambda t: ["eval", _folder_with_config(t, "[]"), "cifar10:test", "--limit", "2"],
        "config.json must hold a JSON object"),
    "eval a malformed hf-hub id": (lambda t: ["eval", "hf-hub:a/b/c", "cifar10:test"],
                                   "must look like 'hf-hub:org/name'"),
    "predict --weights an empty hf-hub id": (lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", "hf-hub:"],
                                             "'hf-hub:' must look like 'hf-hub:org/name'"),
    "export --weights an hf-hub id with a bad revision": (
        lambda t: ["export", "resnet20_cifar", "--onnx", str(t / "m.onnx"), "--weights", "hf-hub:org/name@a/b"],
        "'hf-hub:org/name@a/b' must look like"),
    "predict --weights an hf-hub revision that climbs out of refs/": (
        lambda t: ["predict", "resnet20_cifar", _png(t), "--weights", "hf-hub:me/r20@refs/../../../../../X/PWN"],
        "'hf-hub:me/r20@refs/../../../../../X/PWN' must look like 'hf-hub:org/name' or 'hf-hub:org/name@revision': "
        "The Hub revision"),
    # -- damaged state files ---------------------------------------------------------------------------------
    "mine --resume a truncated state": (lambda t: _mining_state(t, b"PK\x03\x04" + b"\x00" * 20),
                                        "cannot read the mining state $TMP/mined.state.npz"),
    "mine --resume a state that is not a zip": (lambda t: _mining_state(t, b"not a zip at all"),
                                                "cannot read the mining state"),
    "train --resume a truncated checkpoint": (lambda t: _run_with_checkpoint(t, b"PK\x03\x04" + b"\x00" * 20),
                                              "checkpoint.pt"),
    "plot a metrics line that is a list": (lambda t: ["plot", _metrics(t, "[1, 2]\n")],
                                           "metrics.jsonl:1 is not a metrics record"),
    "plot an epoch record without fields": (lambda t: ["plot", _metrics(t, '{"type": "epoch", "stage": "s"}\n')],
                                            "the epoch record lacks epoch, train_loss, lr"),
    "plot a line that is not JSON": (lambda t: ["plot", _metrics(t, "{oops\n")], "metrics.jsonl:1 is not valid JSON"),
    "plot a folder without metrics": (lambda t: ["plot", str(t)], "Is $TMP a training run folder?"),
    # -- hostile arguments -----------------------------------------------------------------------------------
    "predict a decompression bomb": (lambda t: ["predict", R20, _bomb(t)], "cannot read image"),
    "predict an image that is not there": (lambda t: ["predict", R20, str(t / "no.png")], "does not exist"),
    "predict an empty image file": (lambda t: ["predict", R20, _file(t, "empty.png", b"")], "cannot read image"),
    "predict a folder as an image": (lambda t: ["predict", R20, str(t)],
                                     "The image $TMP is a folder, not a regular file"),
    "predict a FIFO as an image": (lambda t: ["predict", R20, _fifo(t, "p.png")],
                                   "The image $TMP/p.png is a FIFO (named pipe), not a regular file"),
    "eval --labels a FIFO": (lambda t: (_png(t), ["eval", R20, str(t), "--labels", _fifo(t, "labels.txt")])[1],
                             "The labels file $TMP/labels.txt is a FIFO (named pipe), not a regular file"),
    "predict an unknown model": (lambda t: ["predict", "resnet21_cifar", _png(t)],
                                 "Unknown model 'resnet21_cifar'. Did you mean"),
    "info an unknown model": (lambda t: ["info", "mobilenetv3_ssld"], "Did you mean: mobilenetv3_large_ssld"),
    "bench a pattern that matches nothing": (lambda t: _bench()[:1] + ["nothing_*"], "No model matches 'nothing_*'"),
    "export --batch-size 0": (lambda t: ["export", R20, "--onnx", str(t / "m.onnx"), "--batch-size", "0"],
                              "batch_size must be at least 1, got 0"),
    "eval --limit 0": (lambda t: ["eval", R20, "cifar10:test", "--limit", "0"], "--limit must be at least 1, not 0"),
    "eval --workers 100000": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--workers", "100000"],
                              "--workers must be at most 1,024, not 100,000"),
    "eval --input-size 100000": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--input-size", "100000"],
                                 "--input-size must be from 1 to 4096 pixels, not 100000"),
    "eval --crop-pct 1e-300": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--crop-pct", "1e-300"],
                               "--crop-pct must be from 0.25 to 1, not 1e-300"),
    "eval --device meta": (lambda t: ["eval", R20, "cifar10:test", "--limit", "2", "--device", "meta"],
                           "--device 'meta' is not a device ssld-zoo runs on"),
    "bench a batch no machine can hold": (lambda t: _bench()[:-2] + ["1000000000", "--no-timm"],
                                          "Out of memory … Ask for less: a smaller --batch-size"),
    "eval a binary labels file": (
        lambda t: (_png(t), ["eval", R20, str(t), "--labels", _file(t, "labels.txt", b"\xff\xfe\x00\x81")])[1],
        "labels.txt"),
    "mine a binary list file": (
        lambda t: _mine(t, pool=_file(t, "pool.bin", b"\xff\xfe\x00\x81 binary")),
        "is not a UTF-8 text file"),
    "mine --per-class 0": (lambda t: _mine(t, "--per-class", "0"),
                           "--per-class must be at least 1, not 0"),
    "publish a folder without README.md": (
        lambda t: (Path(_folder(t)) / "README.md").unlink() or ["publish", str(t / "dl" / R20), "--repo", "me/x"],
        "lacks README.md"),
    "publish to a malformed repo id": (lambda t: ["publish", str(_folder(t)), "--repo", "a/b/c"],
                                       "'a/b/c' is not a Hub repo id. Use ORG/NAME"),
    "release --apply a file that is not an update": (lambda t: ["release", "--apply", _file(t, "u.json", "[]")],
                                                      "is not a release update"),
    "release --only a pattern without weights": (lambda t: ["release", "--only", "nope*", "--state", str(t)],
                                                 "matches no weight with a PaddleClas origin"),
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
    "train a recipe that is not YAML": (lambda t: ["train", _file(t, "r.yaml", "name: [unclosed\n")],
                                        "r.yaml is not valid YAML: expected ',' or ']'"),
    "train an override whose value is not YAML": (lambda t: ["train", _recipe(t), "batch_size=[8"],
                                                  "Override 'batch_size=[8' for"),
    "train a FIFO as the recipe": (lambda t: ["train", _fifo(t, "r.yaml")],
                                   "The recipe $TMP/r.yaml is a FIFO (named pipe), not a regular file"),
    "train a YAML alias bomb under reference:": (
        lambda t: ["train", _file(t, "r.yaml", Path(_recipe(t)).read_text() + "reference:\n" + "".join(
            f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'lol'] * 9)}]\n" for i in range(9)))],
        "r.yaml is not valid YAML: aliases (*l0) are not allowed; write the value out (line"),
    "train a recipe nested 100,000 deep": (lambda t: ["train", _file(t, "r.yaml", "a: " + "[" * 100_000)],
                                           "r.yaml is not valid YAML: nesting deeper than 64 levels"),
    "train stages.0.lr=1e400": (lambda t: ["train", _recipe(t), "stages.0.lr=1e400"],
                                "`stages.0.lr` must be a non-negative number, not '1e400'"),
    "train batch_size of 5,000 digits": (lambda t: ["train", _recipe(t), "batch_size=" + "9" * 5000],
                                         "the value is not valid YAML: an integer of 5,000 digits"),
    "train --resume a checkpoint whose recipe is an alias bomb": (
        lambda t: _run_with_checkpoint_payload(t, {"recipe": "a: &a [x, x]\nb: [*a, *a]\n"}),
        "The recipe saved in $TMP/run/checkpoint.pt is not valid YAML: aliases (*a) are not allowed"),
    "train --resume a checkpoint that is a FIFO": (
        lambda t: (_fifo(t, "run/checkpoint.pt"),
                   ["train", _tiny_recipe(t), "--out", str(t / "run"), "--resume", "--device", "cpu"])[1],
        "The checkpoint $TMP/run/checkpoint.pt is a FIFO (named pipe), not a regular file"),
    "train a recipe that is a list": (lambda t: ["train", _file(t, "r.yaml", "- 1\n- 2\n")], "r.yaml"),
    "train an override without '='": (lambda t: ["train", _recipe(t), "batch_size"], "batch_size"),
    "train an override of a misspelt key": (lambda t: ["train", _recipe(t), "batch_sise=8"], "batch_sise"),
    "train an override whose key has 5,000 parts": (
        lambda t: ["train", _recipe(t), "a." * 5000 + "b=1"], "its key has 5,001 parts, more than the 64 levels"),
    "cache a recipe without a teacher": (lambda t: ["cache", _recipe(t, teacher="null")],
                                         "needs a teacher (set `teacher:`)"),
    "cache --verify a folder that holds no cache": (
        lambda t: ["cache", _tiny_recipe(t), "--verify", "--out", str(t)], "holds no soft-label cache"),
}


# -- rows that need the loopback servers, an unwritable place or environment variables ---------------------------------
@dataclass
class Scene:
    """What a `WORLD_CASES` row's setup may use: its temporary folder, the loopback Hub (`HF_ENDPOINT`) and PaddleClas
    host (`SSLD_ZOO_PADDLE_ENDPOINT`), `unwritable(path)`, and the test's fixtures."""

    tmp: Path
    hub: FakeHub
    paddle: FileServer
    unwritable: Callable[[Path], Path]
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch

    def hub_repo(self, repo: str = "me/r20", data: bytes | None = None) -> str:
        """`hf-hub:REPO` of a repo holding the shipped student's weights (or `data`) and its timm config.json."""
        from ssld_zoo.catalogue.registry import get_weight_entry
        weights = data if data is not None else get_weight_entry(R20).file.read_bytes()
        self.hub.publish(repo, {"model.safetensors": weights, "config.json": json.dumps(
            {"architecture": "resnet20_cifar", "num_classes": 10}).encode()})
        return f"hf-hub:{repo}"

    def catalogue_weight(self, data: bytes = b"\x01" * 4096, **pin: Any) -> str:
        """`tiny_resnet_ssld`, a catalogue weight published on the loopback Hub, pinned to `data` (or as `pin`
        says)."""
        commit = self.hub.publish("me/tiny", {"model.safetensors": data})
        pin = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **pin}
        self.request.getfixturevalue("extra_catalogue")(repo_id="me/tiny", revision=commit, **pin)
        return "tiny_resnet_ssld"

    def soft_label_cache(self, damage: Callable[[Path, dict[str, Any]], None]) -> list[str]:
        """`cache --verify` of a copy of a small finished cache, after `damage(folder, manifest)` (whose manifest
        changes are written back)."""
        folder = self.tmp / "cache"
        shutil.copytree(self.request.getfixturevalue("tiny_cache"), folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        damage(folder, manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return ["cache", _tiny_recipe(self.tmp), "--verify", "--out", str(folder), "--device", "cpu"]


WorldSetup = Callable[[Scene], tuple[list[str], dict[str, str]]]


def _ro(s: Scene, name: str = "ro") -> Path:
    return s.unwritable(s.tmp / name)


def _unreadable_class(s: Scene) -> Path:
    """A class-folder data set (`a/`, `b/`) whose folder `b` cannot be listed: mode 0 for a normal user; as root,
    whom permissions do not stop, the operating system's refusal is injected where it would arise (`os.scandir`)."""
    from PIL import Image
    root = s.tmp / "data"
    for name in "ab":
        (root / name).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / name / "x.png")
    locked = root / "b"
    if os.geteuid() != 0:
        locked.chmod(0)
        s.request.addfinalizer(lambda: locked.chmod(0o755))
    else:
        scandir = os.scandir

        def refusing(path: Any = ".") -> Any:
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(locked))
            return scandir(path)
        s.monkeypatch.setattr(os, "scandir", refusing)
    return root


def _hf_home(s: Scene) -> dict[str, str]:
    home = _ro(s, "hf_home")
    return {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}


def _garbage_shard(folder: Path, manifest: dict[str, Any]) -> None:
    """Shard 0 replaced by garbage, with its sha256 updated in the manifest: only reading it tells."""
    from ssld_zoo.train.soft_labels import shard_name
    shard = folder / shard_name(0, 0, 0)
    shard.write_bytes(b"\x10" + b"\x00" * 7 + b"not json at all!")
    manifest["files"][shard_name(0, 0, 0)]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()


def _first_use(s: Scene, **env: str) -> tuple[list[str], dict[str, str]]:
    """`predict` of a first-use weight (its PaddleClas file is fetched from the loopback host and converted)."""
    return ["predict", "lcnet_025_ssld", _png(s.tmp)], env


def _hub_repo_with_model_args(s: Scene, **model_args: object) -> str:
    """`hf-hub:me/ckpt`: the shipped student's weights with a config.json (architecture, classes) and `model_args`."""
    from ssld_zoo.catalogue.registry import get_weight_entry
    config = {"architecture": "resnet20_cifar", "num_classes": 10, "model_args": model_args}
    s.hub.publish("me/ckpt", {"model.safetensors": get_weight_entry(R20).file.read_bytes(),
                              "config.json": json.dumps(config).encode()})
    return "hf-hub:me/ckpt"


def _silent(s: Scene) -> FakeHub:
    s.hub.silent.set()
    return s.hub


def _held(s: Scene, folder: Path) -> Path:
    """`folder`, owned by another process (as a running `train --out folder` owns it) until the test ends."""
    from test_files import hold_lock
    holder = hold_lock(folder)
    s.request.addfinalizer(lambda: (holder.kill(), holder.wait()))
    return folder


def _cannot(path: str) -> str:
    """The line for a place that cannot be written (`Operation not permitted` as root, `Permission denied` else)."""
    return f"Cannot use {path}: … you may not write there"


WORLD_CASES: dict[str, tuple[WorldSetup, str]] = {
    # -- places that cannot be read -------------------------------------------------------------------------------
    "eval a data folder with an unreadable class folder": (
        lambda s: (["eval", R20, str(_unreadable_class(s)), "--limit", "2"], {}),
        "Cannot read the folder $TMP/data/b (Permission denied): its files would be left out"),
    # -- places that cannot be written ----------------------------------------------------------------------------
    "an unwritable HF_HOME": (lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo()],
                                         _hf_home(s)),
                              _cannot("$TMP/hf_home/hub")),
    "an unwritable --cache-dir": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo(), "--cache-dir",
                    str(_ro(s))], {}),
        _cannot("$TMP/ro/models--me--r20")),
    "download --cache-dir unwritable": (
        lambda s: (["download", s.catalogue_weight(), "--to", str(s.tmp / "dl"), "--cache-dir", str(_ro(s))], {}),
        _cannot("$TMP/ro/models--me--tiny")),
    "eval --cache-dir unwritable": (
        lambda s: (["eval", s.hub_repo(), "cifar10:test", "--limit", "2", "--cache-dir", str(_ro(s))], {}),
        _cannot("$TMP/ro/models--me--r20")),
    "an unwritable first-use cache": (lambda s: _first_use(s, SSLD_ZOO_CACHE=str(_ro(s))),
                                      _cannot("$TMP/ro/locks")),
    "demo --out unwritable": (lambda s: (_demo(_ro(s) / "demo"), {}), _cannot("$TMP/ro/demo")),
    "eval --out unwritable": (lambda s: (["eval", R20, "cifar10:test", "--limit", "2", "--out",
                                          str(_ro(s) / "r.json")], {}),
                              _cannot("$TMP/ro/r.json")),
    "bench --json unwritable": (lambda s: (_bench("--json", str(_ro(s) / "b.json")), {}),
                                _cannot("$TMP/ro/b.json")),
    "mine --out unwritable": (lambda s: (_mine(s.tmp, out=str(_ro(s) / "list.txt")), {}),
                              "Cannot use $TMP/ro/list. … you may not write there"),
    "train --out unwritable": (lambda s: (["train", _tiny_recipe(s.tmp), "--out", str(_ro(s) / "run"), "--device",
                                           "cpu"], {}), _cannot("$TMP/ro/run")),
    "cache --out unwritable": (lambda s: (["cache", _tiny_recipe(s.tmp), "--out", str(_ro(s) / "c"), "--device",
                                           "cpu"], {}), _cannot("$TMP/ro/c")),
    "export --onnx unwritable": (lambda s: (["export", R20, "--onnx", str(_ro(s) / "m.onnx")], {}),
                                 _cannot("$TMP/ro/m.onnx")),
    "backbone --out unwritable": (
        lambda s: (["backbone", "resnet50d_ssld", "--for", "presnet", "--out", str(_ro(s) / "o")], {}),
        _cannot("$TMP/ro/o")),
    "convert --out unwritable": (
        lambda s: (["convert", "--paddle", _pdparams(s.tmp, b"\x80\x02}q\x00."), "--model", "lcnet_025_ssld",
                    "--out", str(_ro(s) / "o")], {}),
        _cannot("$TMP/ro/o")),
    "download --to unwritable": (lambda s: (["download", R20, "--to", str(_ro(s))], {}),
                                 _cannot(f"$TMP/ro/{R20}")),
    "plot an unwritable run folder": (
        lambda s: (["plot", str(s.unwritable(Path(_metrics(s.tmp, json.dumps(
            {"type": "epoch", "stage": "s", "epoch": 1, "train_loss": 1.0, "lr": 0.1}) + "\n"))))], {}),
        _cannot("$TMP/run/curves.png")),
    # -- a folder another run owns (ssld_zoo.files.run_lock; test_interrupts.py runs real trainings) ------------
    "train --out a folder that another run holds": (
        lambda s: (["train", _tiny_recipe(s.tmp), "--out", str(_held(s, s.tmp / "run")), "--device", "cpu"], {}),
        "$TMP/run is in use by another run (pid … `-c … --marker`, started … or choose another --out."),
    # -- damaged state files ---------------------------------------------------------------------------------
    "cache --verify a manifest without sha256": (
        lambda s: (s.soft_label_cache(lambda f, m: next(iter(m["files"].values())).pop("sha256")), {}),
        "every entry of 'files' needs its 'sha256'"),
    "cache --verify a manifest with a string views": (
        lambda s: (s.soft_label_cache(lambda f, m: m.__setitem__("views", "1")), {}),
        "manifest.json is damaged: 'views' is missing or not int"),
    "cache --verify a garbage shard with a valid sha256": (lambda s: (s.soft_label_cache(_garbage_shard), {}),
                                                            "p00-v000-c0000.safetensors is not a soft-label shard"),
    "cache --verify an unfinished cache": (
        lambda s: (s.soft_label_cache(lambda f, m: m.__setitem__("complete", False)), {}), "is unfinished"),
    # -- network faults --------------------------------------------------------------------------------------
    "a CDN that answers 500": (
        lambda s: (setattr(s.hub, "cdn_status", 500), ["predict", "resnet20_cifar", _png(s.tmp), "--weights",
                                                       s.hub_repo()], {})[1:],
        "answered HTTP 500 for file 'model.safetensors' of repo 'me/r20'"),
    "a connection dropped mid-file": (
        lambda s: (setattr(s.hub, "cdn_cut", True), ["predict", "resnet20_cifar", _png(s.tmp), "--weights",
                                                     s.hub_repo()], {})[1:],
        "broke while downloading file 'model.safetensors' of repo 'me/r20'"),
    "a Hub that never answers": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", (s.hub_repo(), _silent(s))[0]],
                   {"SSLD_ZOO_HUB_DEADLINE_S": "1"}),
        "did not deliver file 'model.safetensors' of repo 'me/r20' at revision 'main' within 1 s"),
    "a PaddleClas host that never answers": (
        lambda s: _first_use(s, SSLD_ZOO_PADDLE_ENDPOINT=_silent(s).endpoint, SSLD_ZOO_DOWNLOAD_DEADLINE_S="1"),
        "PPLCNet_x0_25_ssld_pretrained.pdparams took longer than 1 s (SSLD_ZOO_DOWNLOAD_DEADLINE_S)"),
    "a PaddleClas host that drips a byte at a time": (
        lambda s: (setattr(s.paddle, "fault", "drip"), _first_use(s, SSLD_ZOO_DOWNLOAD_DEADLINE_S="1.5"))[1],
        "PPLCNet_x0_25_ssld_pretrained.pdparams took longer than 1.5 s (SSLD_ZOO_DOWNLOAD_DEADLINE_S)"),
    "a PaddleClas host sending an endless body": (
        lambda s: (setattr(s.paddle, "fault", "endless"), _first_use(s, SSLD_ZOO_DOWNLOAD_MAX_BYTES="200000"))[1],
        "sent more than the 200,000-byte limit (SSLD_ZOO_DOWNLOAD_MAX_BYTES); the download was cut"),
    "a PaddleClas host announcing 10**12 bytes": (
        lambda s: (setattr(s.paddle, "fault", "huge"), _first_use(s))[1],
        "announces 1,000,000,000,000 bytes, more than the"),
    "a PaddleClas endpoint that is a file: URL": (
        lambda s: _first_use(s, SSLD_ZOO_PADDLE_ENDPOINT=f"file://{s.tmp}"),
        "only http: and https: URLs are fetched, not file:"),
    "a repo that does not exist": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", "hf-hub:nobody/nothing"], {}),
        "Repo 'nobody/nothing' was not found"),
    "a revision that does not exist": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo() + "@" + "a" * 40], {}),
        f"Revision '{'a' * 40}' does not exist in repo 'me/r20'"),
    "a Hub file that is not safetensors": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo("me/junk", b"\x05" * 600)],
                   {}),
        "me/junk"),
    "a Hub repo whose config.json's model_args load another checkpoint": (
        lambda s: (["eval", _hub_repo_with_model_args(s, checkpoint_path=_file(s.tmp, "zeros.pth", b"")),
                    "cifar10:test", "--limit", "2"], {}),
        "config.json of me/ckpt: model_args 'checkpoint_path' would change where or how weights are loaded"),
    "a Hub repo whose config.json's model_args are not the architecture's": (
        lambda s: (["eval", _hub_repo_with_model_args(s, frobnicate=1), "cifar10:test", "--limit", "2"], {}),
        "me/ckpt … model_args frobnicate is not among the constructor arguments that 'resnet20_cifar' "
        "takes from a config.json: drop_rate, global_pool, in_chans, num_classes, widths."),
    "wrong bytes from the Hub": (
        lambda s: (["download", s.catalogue_weight(sha256="0" * 64, size=4096), "--to", str(s.tmp / "dl")], {}),
        "Downloaded file 'model.safetensors' of repo 'me/tiny'"),
    "offline with nothing cached": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo()], {"HF_HUB_OFFLINE": "1"}),
        "HF_HUB_OFFLINE is set"),
    "backbone of a weight that cannot be had offline": (
        lambda s: (["backbone", "hgnetv2_b0_ssld", "--for", "hgnetv2-dfine", "--out", str(s.tmp / "out")],
                   {"HF_HUB_OFFLINE": "1"}),
        "HF_HUB_OFFLINE is set … run `ssld-zoo download hgnetv2_b0_ssld.ssld_stage1_in22k_in1k --to DIR`"),
    "SSLD_ZOO_HUB_DEADLINE_S=soon": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo()],
                   {"SSLD_ZOO_HUB_DEADLINE_S": "soon"}),
        "SSLD_ZOO_HUB_DEADLINE_S='soon' is not a number from 0.001 to 604,800 seconds"),
    "SSLD_ZOO_HUB_DEADLINE_S=inf": (
        lambda s: (["predict", "resnet20_cifar", _png(s.tmp), "--weights", s.hub_repo()],
                   {"SSLD_ZOO_HUB_DEADLINE_S": "inf"}),
        "SSLD_ZOO_HUB_DEADLINE_S='inf' is not a number from 0.001 to 604,800 seconds"),
    "SSLD_ZOO_DOWNLOAD_DEADLINE_S=-1": (lambda s: _first_use(s, SSLD_ZOO_DOWNLOAD_DEADLINE_S="-1"),
                                        "SSLD_ZOO_DOWNLOAD_DEADLINE_S='-1' is not a number from 0.001"),
    "SSLD_ZOO_DOWNLOAD_MAX_BYTES=1e400": (lambda s: _first_use(s, SSLD_ZOO_DOWNLOAD_MAX_BYTES="1e400"),
                                          "SSLD_ZOO_DOWNLOAD_MAX_BYTES='1e400' is not a whole number from 1 to"),
    "a PaddleClas host without the file": (lambda s: _first_use(s), "answered HTTP 404"),
    "a PaddleClas host serving garbage": (
        lambda s: (s.paddle.files.__setitem__(LCNET_URL_PATH, b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01" + b"x" * 50),
                   _first_use(s))[1],
        "The downloaded file was removed"),
    "publish without a write token": (
        lambda s: (setattr(s.hub, "token", "hf_write"), ["publish", str(_folder(s.tmp)), "--repo", "me/x"], {})[1:],
        "HTTP 401"),
    # -- hostile environment -----------------------------------------------------------------------------------
    "list with a catalogue that is not JSON": (
        lambda s: (["list"], {"SSLD_ZOO_CATALOGUE": _file(s.tmp, "c.json", "{oops")}), "c.json is not valid JSON"),
    "list with a catalogue that is a FIFO": (lambda s: (["list"], {"SSLD_ZOO_CATALOGUE": _fifo(s.tmp, "c.json")}),
                                            "The catalogue file $TMP/c.json is a FIFO (named pipe), not a regular "
                                            "file"),
    "list with a catalogue nested 100,000 deep": (
        lambda s: (["list"], {"SSLD_ZOO_CATALOGUE": _file(s.tmp, "c.json", "[" * 100_000 + "]" * 100_000)}),
        "c.json nests lists and objects 100,000 deep, more than the 64 allowed"),
    "info with a catalogue that is not there": (
        lambda s: (["info", "resnet20_cifar"], {"SSLD_ZOO_CATALOGUE": str(s.tmp / "none.json")}),
        "none.json does not exist (check SSLD_ZOO_CATALOGUE)"),
    "recipes when the shipped recipes are missing": (
        lambda s: (s.monkeypatch.setattr("ssld_zoo.catalogue.shipped.CHECKOUT", s.tmp),
                   s.monkeypatch.setattr("ssld_zoo.catalogue.shipped.SHIPPED", s.tmp), ["recipes"], {})[2:],
        "The shipped recipes are missing"),
    "eval with SSLD_ZOO_DATA pointing nowhere": (
        lambda s: (["eval", R20, "cifar10:test", "--limit", "2"], {"SSLD_ZOO_DATA": str(s.tmp / "nothing")}),
        "CIFAR-10 test images not found: $TMP/nothing/cifar10/cifar10_jpegbytes_test.npz does not exist"),
}

# A first-use record (beside the PaddleClas file, in the first-use cache) damaged as each row says: it is rebuilt, so
# the command goes on to download the PaddleClas file again (here: one the host does not have), warning about it.
FIRST_USE_RECORDS: dict[str, str] = {
    "invalid JSON": "{not json",
    "no 'sha256'": json.dumps({"recorded": "2024-01-01T00:00:00+00:00", "converted": {"sha256": "0" * 64}}),
    "no 'recorded'": json.dumps({"sha256": "0" * 64, "converted": {"sha256": "0" * 64}}),
    "a number as 'sha256'": json.dumps({"sha256": 1, "recorded": "x", "converted": {"sha256": "0" * 64}}),
    "a list": "[]",
}

# Refused by argparse: its usage lines, then one `PROG: error: ...` line, exit status 2.
ARGUMENT_CASES: dict[str, tuple[Setup, str]] = {
    "predict --top -1": (lambda t: ["predict", R20, _png(t), "--top", "-1"],
                         "argument --top: must be at least 1, not -1"),
    "predict --top many": (lambda t: ["predict", R20, _png(t), "--top", "many"],
                           "argument --top: expected a whole number, not 'many'"),
    "mine --per-class many": (lambda t: _mine(t, "--per-class", "many"),
                              "argument --per-class: invalid int value: 'many'"),
    "convert without --model": (lambda t: ["convert", "--paddle", "x.pdparams", "--out", str(t)],
                                "the following arguments are required: --model"),
    "an unknown command": (lambda t: ["frobnicate"], "invalid choice: 'frobnicate'"),
}


# -- running the rows -------------------------------------------------------------------------------------------------
def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def _assert_one_clear_line(case: str, code: int, err: str, expected: str, root: Path, max_warnings: int = 0) -> None:
    """The corpus's assertion: a non-zero status, one `ssld-zoo: error:` line holding `expected` (`$TMP` stands for
    the test's folder; `A … B` is A, then B later in the line), after at most `max_warnings` `ssld-zoo: warning:`
    lines; no traceback, nothing half-written under `root` or in the conversion cache."""
    from ssld_zoo.convert.first_use import conversion_cache_root
    assert code != 0, (case, err)
    *notes, line = err.splitlines() or [""]
    assert "Traceback" not in err and err.endswith("\n") and len(notes) <= max_warnings, (case, err)
    assert all(note.startswith("ssld-zoo: warning: ") for note in notes), (case, err)
    assert line.startswith("ssld-zoo: error: "), (case, err)
    err = line
    at = 0
    for part in expected.replace("$TMP", str(root)).split(" … "):  # "A … B": A, later B
        assert part in err[at:], (case, part, err)
        at = err.index(part, at) + len(part)
    conversions = conversion_cache_root()
    assert not _leftovers(root) and not _leftovers(conversions), (case, _leftovers(root), _leftovers(conversions))


@pytest.fixture
def unwritable() -> Iterator[Callable[[Path], Path]]:
    """`unwritable(path)` makes the folder `path` (created if missing) a place nobody can write into, and returns it:
    `chattr +i` as root (whom permissions do not stop), mode 0o555 otherwise. Undone at teardown, so the temporary
    folder can be removed."""
    locked: list[Path] = []
    as_root = os.geteuid() == 0

    def lock(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if as_root and shutil.which("chattr") is None:
            pytest.fail("Tests of unwritable places run as root need `chattr` (e2fsprogs) to make a folder "
                        "immutable: root ignores permissions. Install e2fsprogs.", pytrace=False)
        if as_root:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"`chattr +i {path}` failed ({done.stderr.strip()}); the temporary folder's file system "
                            "must support immutable folders (ext4, xfs, btrfs).", pytrace=False)
        else:
            path.chmod(0o555)
        locked.append(path)
        try:
            (path / "probe").touch()
        except OSError:
            return path
        pytest.fail(f"{path} is still writable after making it unwritable.", pytrace=False)

    yield lock
    for path in reversed(locked):
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o755)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished soft-label cache of `_tiny_recipe` (10 CIFAR-10 images, one view)."""
    from ssld_zoo.train.cache import write_cache
    from ssld_zoo.train.recipe import load_recipe
    root = tmp_path_factory.mktemp("tiny_cache")
    return write_cache(load_recipe(_tiny_recipe(root)), root / "cache", device="cpu")


def _apply_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Set `env` as a user would before starting ssld-zoo (huggingface_hub reads some variables at import)."""
    from huggingface_hub import constants
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "HF_HOME" in env:
        monkeypatch.setattr(constants, "HF_HOME", env["HF_HOME"])
    if "HF_HUB_CACHE" in env:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    if "HF_HUB_OFFLINE" in env:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", env["HF_HUB_OFFLINE"] == "1")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    setup, expected = CASES[case]
    argv = setup(tmp_path)
    capsys.readouterr()  # what the setup printed
    code = main(argv)
    _assert_one_clear_line(case, code, capsys.readouterr().err, expected, tmp_path)


@pytest.mark.parametrize("case", list(WORLD_CASES))
def test_bad_world_is_one_clear_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture, fake_hub: FakeHub,
                                     isolated_paddle_origin: FileServer, unwritable: Callable[[Path], Path],
                                     request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    setup, expected = WORLD_CASES[case]
    scene = Scene(tmp_path, fake_hub, isolated_paddle_origin, unwritable, request, monkeypatch)
    try:
        argv, env = setup(scene)
        _apply_env(monkeypatch, env)
        capsys.readouterr()
        code = main(argv)
    finally:
        fake_hub.reset()  # lets go of requests a silent Hub holds
    _assert_one_clear_line(case, code, capsys.readouterr().err, expected, tmp_path)


@pytest.mark.parametrize("damage", list(FIRST_USE_RECORDS))
def test_a_damaged_first_use_record_is_rebuilt_with_a_warning(damage: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture):
    from ssld_zoo.convert.first_use import conversion_cache_root
    record = conversion_cache_root() / "paddle" / (Path(LCNET_URL_PATH).name + ".json")
    record.parent.mkdir(parents=True)
    record.write_text(FIRST_USE_RECORDS[damage])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(["predict", "lcnet_025_ssld", _png(tmp_path)])
    warning, error = capsys.readouterr().err.split("\n", 1)  # the warning is one line too, before the error
    assert warning.startswith(f"ssld-zoo: warning: The first-use record {record} of '{LCNET}' is damaged"), warning
    _assert_one_clear_line(damage, code, error, "answered HTTP 404", tmp_path)
    assert not record.exists()


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_argument_errors_name_the_argument(case: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    setup, expected = ARGUMENT_CASES[case]
    argv = setup(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, case
    assert "Traceback" not in err and expected in err.splitlines()[-1], (case, err)
    assert err.splitlines()[-1].startswith("ssld-zoo"), (case, err)


API_CASES: dict[str, tuple[Callable[[], Any], str]] = {  # the Python API given arguments of the wrong type
    "create(None)": (lambda: __import__("ssld_zoo").create(None), "A model name is a string … not NoneType None"),
    "model_info(42)": (lambda: __import__("ssld_zoo").model_info(42), "not int 42"),
    "list_models([])": (lambda: __import__("ssld_zoo").list_models([]), "takes an fnmatch pattern string"),
    "add_catalogue({})": (lambda: __import__("ssld_zoo").add_catalogue({}), "takes the path of a catalogue JSON"),
    "create(num_classes='10')": (lambda: __import__("ssld_zoo").create("resnet20_cifar", num_classes="10"),
                                 "num_classes must be a whole number … not '10'"),
    "create(num_classes=-1)": (lambda: __import__("ssld_zoo").create("resnet20_cifar", num_classes=-1),
                               "num_classes must be a whole number … not -1"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_arguments_of_the_wrong_type_are_one_typed_error(case: str):
    from ssld_zoo.errors import ArgumentTypeError
    call, expected = API_CASES[case]
    with pytest.raises(ArgumentTypeError) as raised:
        call()
    first, _, last = expected.partition(" … ")
    assert first in str(raised.value) and last in str(raised.value), (case, str(raised.value))


def test_hub_retries_reach_the_terminal_as_one_line(tmp_path: Path):
    """As a user's terminal shows it (a real process, no pytest capture): huggingface_hub's retries of a refused
    connection stay in the download process, which is stopped at the deadline; the terminal shows one error line
    naming the first failure."""
    import socket
    import sys
    with socket.socket() as port:  # bound, not listening: connections to it are refused
        port.bind(("127.0.0.1", 0))
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port.getsockname()[1]}",
               "HF_HOME": str(tmp_path / "hf"), "SSLD_ZOO_HUB_DEADLINE_S": "3"}
        done = subprocess.run([sys.executable, "-m", "ssld_zoo", "predict", "resnet20_cifar", _png(tmp_path),
                               "--weights", "hf-hub:me/r20"], env=env, capture_output=True, text=True, timeout=120)
    (error,) = done.stderr.splitlines()  # exactly one line
    assert done.returncode == 1
    assert error.startswith("ssld-zoo: error: The Hub at http://127.0.0.1:") and "within 3 s" in error, done.stderr
    assert "Connection refused" in error and "kept retrying" in error, done.stderr
