"""`ssld-zoo pack SOURCE --out SHARDS [--raw] [--max-side N] [--per-shard N]`: write a recipe data source as WebDataset
tar shards (`ssld_zoo.data.shards`) that a recipe reads back with `shards:SHARDS` (or `shards:URL` once they are
served over http(s)), on every node, with the same seeded augmentation and DDP sharding as any other source.

SOURCE is a recipe source (`imagefolder:PATH`, `folder:PATH`, `list:PATH`, `cifar10:train`, `shards:...`). Images
are stored as they are (no re-encoding), in source order, with their labels. Decoding is the floor of the input
pipeline's cost (`benchmarks/bench_input_pipeline.py`), and two options take it away:

- `--raw` stores each image's decoded RGB pixels, exactly those that training decodes from the original, as a binary
  PPM (`.ppm`, which WebDataset readers decode too). Training reads them in place: the same pixels at several times
  the images per second per core, for about 6-7x the bytes of ImageNet-like JPEGs (FFCV's `raw` write mode).
- `--max-side N` pre-resizes every image whose longer side exceeds N pixels (PIL LANCZOS, aspect kept), stored as a
  quality-95 JPEG (as a PPM with `--raw`). It changes the pixels a recipe trains on: crops of a smaller image are
  upsampled more often.

Images that cannot be decoded are left out and counted.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from ssld_zoo.errors import DataError

DEFAULT_PER_SHARD = 1000
RESIZED_QUALITY = 95
_logger = logging.getLogger(__name__)


def _stored(data: bytes, max_side: int | None, raw: bool) -> tuple[bytes, str]:
    """The bytes to store for an encoded image, and their extension: as it is, as decoded pixels (`raw`), and
    pre-resized when it exceeds `max_side`."""
    from PIL import Image

    from ssld_zoo.data.pixels import decode, encode_ppm, open_image, rgb, to_tensor
    from ssld_zoo.data.shards import IMAGE_EXTENSIONS
    im = open_image(data)
    if max_side is None or max(im.size) <= max_side:
        if raw:
            return encode_ppm(decode(data)), "ppm"
        im.load()  # an image that cannot be decoded is left out here, not found out in training
        if im.format in IMAGE_EXTENSIONS:
            return data, IMAGE_EXTENSIONS[im.format]
        out = io.BytesIO()  # a format WebDataset readers do not know: stored losslessly as PNG
        rgb(im).save(out, format="PNG")
        return out.getvalue(), "png"
    scale = max_side / max(im.size)
    size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    resized = rgb(im).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if raw:
        return encode_ppm(to_tensor(resized)), "ppm"
    out = io.BytesIO()
    resized.save(out, format="JPEG", quality=RESIZED_QUALITY)
    return out.getvalue(), "jpg"


def pack(source: str, out: str | os.PathLike, *, raw: bool = False, max_side: int | None = None,
         per_shard: int = DEFAULT_PER_SHARD, data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the images of recipe source `source` as tar shards into `out`; returns a summary (images, skipped,
    shards, bytes)."""
    from ssld_zoo.console import raise_if_interrupted
    from ssld_zoo.data.shards import write_shards
    from ssld_zoo.train.data import DECODE_ERRORS, open_source
    from ssld_zoo.train.recipe import SOURCE_KINDS, DataSource
    if source.partition(":")[0] not in SOURCE_KINDS or ":" not in source:
        raise DataError(f"'{source}' is not a data source; give KIND:LOCATION with KIND one of "
                        f"{', '.join(SOURCE_KINDS)}.")
    if max_side is not None and max_side < 1:
        raise DataError(f"--max-side must be a positive number of pixels, not {max_side}.")
    if per_shard < 1:
        raise DataError(f"--per-shard must be at least 1, not {per_shard}.")
    images = open_source(DataSource(source), data_root)
    skipped = 0

    def samples() -> Iterator[tuple[bytes, str, int]]:
        nonlocal skipped
        for i in range(len(images)):
            raise_if_interrupted()  # a Ctrl-C taken for an undecodable image below still ends the packing
            try:
                data, extension = _stored(images.encoded(i), max_side, raw)
            except DECODE_ERRORS as e:
                skipped += 1
                _logger.warning("left out image %d of %s: it cannot be decoded (%s)", i, source, e)
                continue
            yield data, extension, int(images.labels[i])

    folder = Path(out)
    index = write_shards(samples(), folder, per_shard)
    stored = sum((folder / s["url"]).stat().st_size for s in index["shardlist"])
    return {"images": sum(s["nsamples"] for s in index["shardlist"]), "skipped": skipped,
            "shards": len(index["shardlist"]), "bytes": stored, "out": str(folder)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `pack` command's arguments."""
    parser.add_argument("source", metavar="SOURCE", help="a recipe data source: imagefolder:PATH, folder:PATH, "
                                                         "list:PATH, cifar10:train|test or shards:...")
    parser.add_argument("--out", type=Path, required=True, metavar="SHARDS", help="folder for the shards and "
                                                                                  "their index.json")
    parser.add_argument("--raw", action="store_true", help="store decoded pixels (binary PPM): the same pixels, no "
                                                           "decoding in training, about 6-7x the bytes of JPEGs")
    parser.add_argument("--max-side", type=int, metavar="N", help="pre-resize images whose longer side exceeds N "
                                                                  "pixels (stored as quality-95 JPEG, or PPM with "
                                                                  "--raw); changes the pixels trained on")
    parser.add_argument("--per-shard", type=int, default=DEFAULT_PER_SHARD, metavar="N",
                        help=f"images per shard (default {DEFAULT_PER_SHARD})")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder for cifar10: sources "
                                                                 "(default: $SSLD_ZOO_DATA)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Pack as `args` say and print a summary."""
    summary = pack(args.source, args.out, raw=args.raw, max_side=args.max_side, per_shard=args.per_shard,
                   data_root=args.data)
    print(f"{summary['out']}: {summary['images']} images in {summary['shards']} shards, {summary['bytes']:,} bytes"
          + (f" ({summary['skipped']} undecodable images left out)" if summary["skipped"] else "")
          + f"; train on it with `source: shards:{summary['out']}`")
    return summary
