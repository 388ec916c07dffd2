"""Export a zoo model to ONNX and check it against onnxruntime (`ssld-zoo export NAME --onnx OUT.onnx`).

The model is exported in eval mode at its weights' input size with the `torch.export`-based ONNX exporter
(`torch.onnx.export(..., dynamo=True)`), with a dynamic batch axis by default. The file carries the weights'
preprocessing and identity as ONNX `metadata_props` (read them back with `read_metadata`). Unless told not to, the
exported file is run with onnxruntime on random inputs and compared with PyTorch before it is renamed into place, so
a file under the requested name is always complete and checked. Needs the `onnx` extra
(`pip install "ssld-zoo[onnx]"`: onnx, onnxscript, onnxruntime). Module top level imports the standard library only.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Sequence

from ssld_zoo.errors import OnnxExportError

INPUT_NAME, OUTPUT_NAME = "input", "logits"
RANDOM_INIT = "random-init"
JSON_KEYS = ("input_size", "mean", "std", "crop_pct", "num_classes")
INSTALL_HINT = 'pip install "ssld-zoo[onnx]"'




@dataclass(frozen=True)
class ParityCheck:
    """onnxruntime vs PyTorch logits at one batch size; `max_rel_error` is `max_abs_error / max|PyTorch logit|`."""

    batch_size: int
    max_abs_error: float
    max_rel_error: float


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the file, the weights it holds, its input shape and the parity checks it passed."""

    path: Path
    weights: str
    input_size: tuple[int, int, int]
    opset: int
    dynamic_batch: bool
    metadata: dict[str, str]
    checks: tuple[ParityCheck, ...]


def _require_packages(check: bool) -> None:
    """Fail with the install command when the exporter's (or, for `check`, onnxruntime's) packages are missing."""
    needed = ("onnx", "onnxscript", *(("onnxruntime",) if check else ()))
    missing = []
    for package in needed:
        try:
            __import__(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise OnnxExportError(f"ONNX export needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                              f"not installed. Install it with: {INSTALL_HINT}")


def _chw(input_size: int | Sequence[int] | None, default: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) from the weight's default and an optional `int` or `(H, W)` override."""
    if input_size is None:
        return tuple(default)  # type: ignore[return-value]
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if height < 1 or width < 1:
        raise OnnxExportError(f"input_size must be positive, got {input_size!r}.")
    return int(default[0]), int(height), int(width)


def _build(name: str, weights: str | os.PathLike | bool | None,
           cache_dir: str | os.PathLike | None) -> tuple[Any, dict[str, str]]:
    """The model in eval mode and the metadata that identifies its weights (the verified file's sha256, or the
    file's own when nothing pins it)."""
    from ssld_zoo.catalogue.registry import get_weight_entry
    from ssld_zoo.files import file_sha256
    from ssld_zoo.models.factory import create, load_model
    from ssld_zoo.weights.resolve import resolve
    from ssld_zoo.weights.sources import pretrained_cfg_for
    if weights is False:
        return create(name).eval(), {"weights": RANDOM_INIT}
    entry = get_weight_entry(name)
    if weights is None or weights is True:
        resolved = resolve(entry, cache_dir=cache_dir)
        model = load_model(resolved, name).eval()
        identity = {"weights": entry.full_name}
    else:
        resolved = resolve(weights, catalogue=False, cache_dir=cache_dir)
        model = load_model(resolved, name, cfg=pretrained_cfg_for(entry)).eval()
        identity = {"weights": resolved.source}
    identity["weights_sha256"] = resolved.sha256 or file_sha256(resolved.path)
    if resolved.weight is not None and resolved.weight.origin_sha256:
        identity["origin_sha256"] = resolved.weight.origin_sha256
    return model, identity


def _input_size(model: Any) -> tuple[int, int, int]:
    """The (C, H, W) input size of the weights a model was built with (its timm pretrained cfg)."""
    from timm.data import resolve_data_config
    return tuple(resolve_data_config({}, model=model)["input_size"])


def _metadata(name: str, model: Any, input_size: tuple[int, int, int], identity: dict[str, str]) -> dict[str, str]:
    """ONNX `metadata_props`: the model, its weights and the preprocessing (lists and numbers JSON-encoded)."""
    from timm.data import resolve_data_config
    from ssld_zoo.version import __version__
    cfg = resolve_data_config({}, model=model)
    encoded = {"input_size": list(input_size), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
               "crop_pct": cfg["crop_pct"], "num_classes": model.num_classes}
    return {"model": name.partition(".")[0], **identity, "interpolation": cfg["interpolation"],
            **{key: json.dumps(value) for key, value in encoded.items()}, "ssld_zoo_version": __version__}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The `metadata_props` of an exported file, JSON values decoded (`input_size`, `mean`, `std`, `crop_pct`, ...)."""
    import onnx
    props = {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}
    return {key: json.loads(value) if key in JSON_KEYS else value for key, value in props.items()}


def _export(name: str, model: Any, example: Any, dynamic_batch: bool, opset: int | None) -> Any:
    """`torch.onnx.export` with the dynamo exporter; any failure, including an opset it could not convert to, becomes
    one `OnnxExportError` naming the model."""
    import torch
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    converter_log = logging.getLogger("onnxscript.version_converter")  # logs a traceback, then keeps opset 18
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                    opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    verbose=False)
    except Exception as e:  # the exporter raises many types; report them all the same way
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise OnnxExportError(f"Exporting '{name}' to ONNX failed: {type(e).__name__}: {message}") from e
    finally:
        converter_log.setLevel(level)
    assert program is not None  # the dynamo exporter always returns its program
    produced = program.model.opset_imports[""]
    if opset is not None and produced != opset:
        raise OnnxExportError(f"'{name}' cannot be exported at opset {opset}: the ONNX version converter failed and "
                              f"the exporter produced opset {produced}. Use --opset {produced} or higher.")
    return program


def _check_parity(name: str, model: Any, path: Path, batch_sizes: Sequence[int], input_size: tuple[int, int, int],
                  rtol: float, atol: float) -> tuple[ParityCheck, ...]:
    """Run `path` with onnxruntime and the model with PyTorch on the same random inputs; compare the logits."""
    import numpy as np
    import onnxruntime
    import torch
    try:
        session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise OnnxExportError(f"onnxruntime cannot load the ONNX export of '{name}': {e}") from e
    generator = torch.Generator().manual_seed(0)
    checks = []
    for batch in batch_sizes:
        x = torch.randn(batch, *input_size, generator=generator)
        with torch.inference_mode():
            expected = model(x).double().numpy()
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0].astype(np.float64)
        if actual.shape != expected.shape:
            raise OnnxExportError(f"The ONNX export of '{name}' returns shape {actual.shape} at batch {batch}; "
                                  f"PyTorch returns {expected.shape}.")
        scale = float(np.abs(expected).max())
        max_abs = float(np.abs(actual - expected).max())
        if not max_abs <= atol + rtol * scale:  # also catches NaN
            raise OnnxExportError(
                f"The ONNX export of '{name}' differs from PyTorch at batch {batch}: max abs error {max_abs:.3g} "
                f"(max |logit| {scale:.3g}) exceeds atol {atol:g} + rtol {rtol:g} x max |logit|. The exporter or "
                "onnxruntime mis-handles an operator of this model; try another --opset.")
        checks.append(ParityCheck(batch, max_abs, max_abs / scale if scale else 0.0))
    return tuple(checks)


def _staging_dir(out: Path) -> ContextManager[Path]:
    """A temporary folder beside `out` (so the final rename stays on one file system), made before any work."""
    from ssld_zoo.files import staging_folder
    if out.is_dir():
        raise OnnxExportError(f"'{out}' is a folder; give the path of the .onnx file to write.")
    return staging_folder(out)


def _place(staging: Path, out: Path) -> None:
    """Publish the staged files beside `out`: external-data files first, the `.onnx` file that names them last."""
    from ssld_zoo.files import publish, write_target
    staged = staging / out.name
    beside = write_target(out).parent  # where a symlinked `out` leads, as the .onnx file goes there
    for path in sorted(staging.iterdir(), key=lambda p: p == staged):
        publish(path, out if path == staged else beside / path.name)


def export_onnx(name: str, out: str | os.PathLike, *, weights: str | os.PathLike | bool | None = None,
                input_size: int | Sequence[int] | None = None, batch_size: int = 1, dynamic_batch: bool = True,
                opset: int | None = None, check: bool = True, rtol: float = 1e-4, atol: float = 1e-5,
                cache_dir: str | os.PathLike | None = None) -> OnnxExport:
    """Export zoo model `name` (or `name.tag`) to the ONNX file `out`, checked against onnxruntime.

    Args:
        name: a zoo model or weight, e.g. `"resnet20_cifar.sup_cifar10"`.
        out: the `.onnx` file to write (its folder is created); written under a temporary name, then renamed.
        weights: None (the catalogue's weights for `name`), False (random init, for architectures whose weights
            cannot be fetched), or an explicit source as `create(pretrained=...)` takes: a `.safetensors` file, a
            Hub-layout folder or `"hf-hub:org/name[@revision]"`.
        input_size: the exported spatial size, an int or `(H, W)` (default: the weights' own input size).
        batch_size: the batch of the static-batch export, and the first batch checked.
        dynamic_batch: a symbolic batch axis (checked at `batch_size` and at another size).
        opset: ONNX opset (default: the exporter's).
        check: compare onnxruntime with PyTorch; a mismatch raises `OnnxExportError` and writes nothing.
        rtol, atol: the check passes when `max|onnx - torch| <= atol + rtol * max|torch|`.
        cache_dir: Hub cache folder (default: `HF_HUB_CACHE`).
    """
    from ssld_zoo.catalogue.registry import get_weight_entry
    get_weight_entry(name)  # unknown names fail before any work
    if batch_size < 1:
        raise OnnxExportError(f"batch_size must be at least 1, got {batch_size}.")
    _require_packages(check)
    import torch
    out = Path(out).expanduser()
    with _staging_dir(out) as staging:
        model, identity = _build(name, weights, cache_dir)
        shape = _chw(input_size, _input_size(model))
        trace_batch = max(batch_size, 2) if dynamic_batch else batch_size  # torch.export specialises batches 0 and 1
        program = _export(name, model, torch.zeros(trace_batch, *shape), dynamic_batch, opset)
        metadata = _metadata(name, model, shape, identity)
        program.model.metadata_props.update(metadata)
        staged = Path(staging) / out.name
        program.save(staged)  # one file; weights beyond protobuf's 2 GB limit go to an external-data file beside it
        batches = (batch_size, trace_batch + 1) if dynamic_batch else (batch_size,)
        checks = _check_parity(name, model, staged, batches, shape, rtol, atol) if check else ()
        _place(Path(staging), out)
    return OnnxExport(path=out, weights=identity["weights"], input_size=shape, opset=program.model.opset_imports[""],
                      dynamic_batch=dynamic_batch, metadata=metadata, checks=checks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument("name", metavar="NAME", help="zoo model or weight (NAME or NAME.TAG)")
    parser.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="SRC", help="a .safetensors file, Hub-layout folder or hf-hub:org/name "
                                                         "(default: the catalogue's weights)")
    source.add_argument("--random-init", action="store_true", help="random weights (architectures whose weights "
                                                                   "cannot be fetched)")
    parser.add_argument("--input-size", type=int, metavar="PX", help="square input size (default: the weights')")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="batch of a --static-batch export, and the first batch checked (default: 1)")
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: the exporter's)")
    parser.add_argument("--static-batch", action="store_true", help="a fixed batch axis instead of a dynamic one")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch comparison")
    parser.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")


def run(args: argparse.Namespace) -> None:
    """`ssld-zoo export`: write the file, then print its shape, metadata and parity errors."""
    result = export_onnx(args.name, args.onnx, weights=False if args.random_init else args.weights,
                         input_size=args.input_size, batch_size=args.batch_size, dynamic_batch=not args.static_batch,
                         opset=args.opset, check=not args.no_check, cache_dir=args.cache_dir)
    batch = "N" if result.dynamic_batch else str(args.batch_size)
    size = result.path.stat().st_size
    what = f"{args.name} (random weights)" if args.random_init else result.weights
    print(f"exported {what} -> {result.path} ({size / 1e6:.1f} MB, opset {result.opset}, "
          f"input '{INPUT_NAME}' {batch}x{'x'.join(map(str, result.input_size))}, output '{OUTPUT_NAME}')")
    meta = result.metadata
    pins = [f"{key.replace('_', ' ')} {meta[key]}" for key in ("weights_sha256", "origin_sha256") if key in meta]
    print(f"metadata: mean {meta['mean']}, std {meta['std']}, {meta['interpolation']}, crop_pct {meta['crop_pct']}"
          + "".join(f", {pin}" for pin in pins))
    for c in result.checks:
        print(f"onnxruntime vs PyTorch, batch {c.batch_size}: max abs error {c.max_abs_error:.2e}, "
              f"max rel error {c.max_rel_error:.2e}")
    if not result.checks:
        print("not checked against onnxruntime (--no-check)")
