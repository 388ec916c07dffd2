"""`ssld-zoo mine`: choose the unlabeled images a teacher is most confident about — SSLD's data-mining step.

SSLD removed near-duplicates of the evaluation set from ImageNet-22k, scored the rest with a teacher and kept the top-k
most confident images per class. `mine()` does the same for any pool: it streams the pool through the teacher (its
own eval preprocessing), drops images that are near-duplicates of the evaluation images (a 64-bit DCT perceptual hash
or the cosine similarity of the teacher's pooled features), keeps a top-K heap per predicted class, and writes

    LIST                  one entry per line (absolute path, or `cifar10:SPLIT/INDEX`), `#` header: `list:LIST`
    STEM.summary.json     counts per class, score quantiles, duplicates dropped (with example pairs), undecodable
    STEM.scores.png       score histogram and per-class counts (with matplotlib)
    STEM.duplicates.png   example duplicate pairs, pool image above its evaluation image (with matplotlib)

While it runs it keeps `STEM.state.npz` (heaps, counts, position; rewritten atomically every few batches) and
`STEM.exclude.npz` (the evaluation fingerprints, computed once); `resume=True` continues from them and gives the same
list as an uninterrupted run. Both are deleted when the list is written.

This module is the command (its arguments and output); the work is in `ssld_zoo.tools.mining`, one module per job.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ssld_zoo.errors import MineError
from ssld_zoo.tools.mining.excluder import Excluder
from ssld_zoo.tools.mining.hashing import HASH_BITS, hamming, phash
from ssld_zoo.tools.mining.outputs import QUANTILES, output_paths
from ssld_zoo.tools.mining.pool import open_images
from ssld_zoo.tools.mining.run import mine
from ssld_zoo.tools.mining.settings import DEDUP_METHODS, DEFAULT_THRESHOLDS, MineResult, MineSettings
from ssld_zoo.tools.mining.state import EXAMPLES, SCORE_BINS, MineState
from ssld_zoo.tools.mining.teacher import Teacher

__all__ = ["DEDUP_METHODS", "DEFAULT_THRESHOLDS", "EXAMPLES", "HASH_BITS", "QUANTILES", "SCORE_BINS", "Excluder",
           "MineError", "MineResult", "MineSettings", "MineState", "Teacher", "add_arguments", "hamming", "mine",
           "open_images", "output_paths", "phash", "run"]


# --- command line ------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `mine` command's arguments."""
    parser.add_argument("--teacher", required=True, help="zoo name (resnet56_cifar), timm name or hf-hub:org/name")
    parser.add_argument("--teacher-weights", metavar="W", help="a .safetensors / torch checkpoint file or Hub-layout "
                                                               "folder (default: the model's pretrained weights)")
    parser.add_argument("--pool", required=True, metavar="DIR_OR_LIST",
                        help="a folder of images (recursive), a list file, or cifar10:train / cifar10:test")
    parser.add_argument("--pool-subset", metavar="SUBSET", help="per_class:N or except_per_class:N of a labelled pool")
    parser.add_argument("--exclude", required=True, metavar="EVAL",
                        help="evaluation images whose near-duplicates are dropped (folder, list, cifar10:test)")
    parser.add_argument("--exclude-subset", metavar="SUBSET", help="per_class:N or except_per_class:N")
    parser.add_argument("--per-class", required=True, type=int, metavar="K", help="images kept per predicted class")
    parser.add_argument("--out", required=True, type=Path, metavar="LIST", help="list file to write")
    parser.add_argument("--dedup", choices=DEDUP_METHODS, default="phash",
                        help="perceptual hash (default) or cosine similarity of the teacher's pooled features")
    parser.add_argument("--threshold", type=float, metavar="X",
                        help=f"duplicate if phash distance <= X (default {DEFAULT_THRESHOLDS['phash']:g}) or feature "
                             f"cosine >= X (default {DEFAULT_THRESHOLDS['features']})")
    parser.add_argument("--min-score", type=float, metavar="S", help="keep only images the teacher scores >= S")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--input-size", type=int, metavar="PX", help="teacher input size (default: its pretrained cfg)")
    parser.add_argument("--data", metavar="DIR", help="data folder for cifar10: sources and data-folder weights "
                                                      "(default: $SSLD_ZOO_DATA)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from LIST's state file")
    parser.add_argument("--state-every", type=int, default=50, metavar="N", help="save the state every N batches")
    parser.add_argument("--max-batches", type=int, metavar="N",
                        help="stop after N batches with the state saved (continue later with --resume)")


def run(args: argparse.Namespace) -> MineResult:
    """Mine as `args` say and print what was written."""
    settings = MineSettings(teacher=args.teacher, pool=args.pool, exclude=args.exclude, per_class=args.per_class,
                            teacher_weights=args.teacher_weights, pool_subset=args.pool_subset,
                            exclude_subset=args.exclude_subset, dedup=args.dedup, threshold=args.threshold,
                            min_score=args.min_score, input_size=args.input_size, batch_size=args.batch_size)
    from ssld_zoo.console import arguments, command_line, resumable
    state = output_paths(Path(args.out).expanduser())["state"]
    resume = [*arguments(), *([] if args.resume else ["--resume"])]
    with resumable(lambda: command_line(resume) if state.is_file() else None):
        result = mine(settings, args.out, data_root=args.data, device=args.device, workers=args.workers,
                      resume=args.resume, state_every=args.state_every, max_batches=args.max_batches)
    if not result.complete:
        print(f"stopped after {result.processed} of {result.pool_size} pool images; state saved in "
              f"{result.state_path}: rerun with --resume to continue.")
        return result
    print(f"mined {result.selected} images from {result.pool_size} pool images ({result.duplicates} near-duplicates "
          f"of the excluded images dropped, {result.undecodable} undecodable)")
    for path in [result.list_path, result.summary_path, *result.plot_paths]:
        print(f"  {path}")
    return result
