"""`python -m ssld_zoo.train RECIPE.yaml [key=value ...] [--out RUN_DIR] [--resume | --start-from CHECKPOINT]
[--data DIR] [--device cpu|cuda]`.

Under torchrun every process runs this same command. `add_arguments` + `run` let `ssld-zoo train` reuse it.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train` command's arguments."""
    parser.add_argument("recipe", type=Path, metavar="RECIPE", help="training recipe: a YAML file, or a shipped "
                                                                    "recipe by name such as cifar10/b_ssld "
                                                                    "(`ssld-zoo recipes`; docs/training.md)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe overrides with dotted keys and YAML values, e.g. stages.0.epochs=1 batch_size=64")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR",
                        help="run folder for checkpoint, metrics and the trained student (default: runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint")
    parser.add_argument("--start-from", type=Path, metavar="CHECKPOINT",
                        help="start a new run at the stage where another run's stage-end checkpoint "
                             "(OTHER_RUN/checkpoint.<stage>.pt) stands, when both recipes train the stages before it "
                             "the same way")
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder for cifar10: sources "
                                                                 "(default: $SSLD_ZOO_DATA)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")


def run(args: argparse.Namespace) -> Path:
    """Train as `args` say; print and return the folder of the trained student. Interrupted after its first
    checkpoint, the command says how to resume."""
    from ssld_zoo.console import resumable
    from ssld_zoo.train.engine import train
    from ssld_zoo.train.recipe import load_recipe
    recipe = load_recipe(args.recipe, args.overrides)
    out = args.out or Path("runs") / recipe.name
    with resumable(lambda: resume_command(args, out)):
        folder = train(recipe, out, resume=args.resume, start_from=args.start_from, data_root=args.data,
                       device=args.device)
    if os.environ.get("RANK", "0") == "0":  # one line from torchrun's processes
        print(folder)
    return folder


def resume_command(args: argparse.Namespace, out: Path) -> str | None:
    """The command that resumes this run from `out`'s checkpoint; None while there is none."""
    from ssld_zoo.console import command_line
    from ssld_zoo.train.checkpoint import CHECKPOINT_FILE
    if not (out / CHECKPOINT_FILE).is_file():
        return None
    options = [*(["--data", str(args.data)] if args.data else []), *(["--device", args.device] if args.device else [])]
    return command_line([str(args.recipe), *args.overrides, "--out", str(out), "--resume", *options])


def main(argv: Sequence[str] | None = None, prog: str = "python -m ssld_zoo.train") -> int:
    from ssld_zoo.console import run_command
    return run_command(add_arguments, run, argv, prog=prog, description="Train a student from a recipe.")
