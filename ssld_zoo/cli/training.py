"""The training commands: `train`, `plot`, `demo` and `cache`, each delegating to its module in `ssld_zoo.train`."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `train`, `plot`, `demo` and `cache`."""
    from ssld_zoo.cli.common import add_module_commands
    from ssld_zoo.train import cache, command as train_command, demo, plot
    p = sub.add_parser("train", help="train a student from a recipe (SSLD distillation or supervised)")
    train_command.add_arguments(p)  # `main` hands `train` to the training command itself (overrides anywhere)
    add_module_commands(sub, (
        ("plot", plot, "draw a training run's curves into RUN_DIR/curves.png"),
        ("demo", demo, "label-free SSLD on real CIFAR-10 in a few CPU minutes"),
        ("cache", cache, "run a recipe's teacher once and store its top-k soft labels for many students")))
