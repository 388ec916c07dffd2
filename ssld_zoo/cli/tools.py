"""The tool commands: `release`, `eval`, `bench`, `export` and `mine`, each run by its module in `ssld_zoo.tools`."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `release`, `eval`, `bench`, `export` and `mine`."""
    from ssld_zoo.cli.common import add_module_commands
    from ssld_zoo.tools import bench, evaluate, mine, onnx_export, release
    add_module_commands(sub, (
        ("release", release, "convert, prove, evaluate and publish the PaddleClas weights (a networked machine)"),
        ("eval", evaluate, "top-1/top-5 of a model on a validation folder or CIFAR-10 pack"),
        ("bench", bench, "latency and throughput of models on this machine (fp32/bf16, channels_last)"),
        ("export", onnx_export, "export a model to ONNX, checked against onnxruntime"),
        ("mine", mine, "pick the images a teacher is most confident about from an unlabeled pool")))
