"""What the command-group modules share: registering commands that a module's `add_arguments` and `run` serve."""
from __future__ import annotations

import argparse
from types import ModuleType
from typing import Sequence


def add_module_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                         commands: Sequence[tuple[str, ModuleType, str]]) -> None:
    """One sub-command per `(name, module, help)`: its arguments from `module.add_arguments`, run by `module.run`."""
    for name, module, text in commands:
        parser = sub.add_parser(name, help=text)
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)
