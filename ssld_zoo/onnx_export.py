"""Placeholder: being written (this session)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""


def run(args: argparse.Namespace) -> None:
    raise NotImplementedError
