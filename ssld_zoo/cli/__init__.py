"""The `ssld-zoo` command line: argument parsing only, one module per command group, each command calling public
functions of the layers below.

`list` and `info` never import torch.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ssld_zoo.cli import catalogue, predict, tools, training, weights
from ssld_zoo.console import run_parsed


def build_parser() -> argparse.ArgumentParser:
    """The `ssld-zoo` parser with every command group's subcommands."""
    parser = argparse.ArgumentParser(prog="ssld-zoo", description="SSLD-distilled backbones for PyTorch/timm.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (catalogue, weights, predict, training, tools):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ssld-zoo` with `argv` (default: the process's arguments) and return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # its KEY=VALUE overrides may come after the options, which subparsers cannot parse
        from ssld_zoo.train.command import main as train_main
        return train_main(argv[1:], prog="ssld-zoo train")
    if argv[:1] == ["cache"]:  # the same for the cache command's recipe overrides
        from ssld_zoo.train.cache import main as cache_main
        return cache_main(argv[1:])
    args = build_parser().parse_args(argv)
    return run_parsed(args.func, args, prog="ssld-zoo", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
