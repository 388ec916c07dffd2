"""The tool commands: `release`, `eval`, `bench`, `export`, `backbone`, `mine`, `pack` and `ship`, each run by its
module in `ssld_zoo.tools`."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `release`, `eval`, `bench`, `export`, `backbone`, `mine`, `pack` and `ship`."""
    from ssld_zoo.cli.common import add_module_commands
    from ssld_zoo.tools import bench, detector_backbones, evaluate, mine, onnx_export, pack, release, ship
    add_module_commands(sub, (
        ("release", release, "convert, prove, evaluate and publish the PaddleClas weights (a networked machine)"),
        ("eval", evaluate, "top-1/top-5 of a model on a validation folder or CIFAR-10 pack"),
        ("bench", bench, "latency and throughput of models on this machine (fp32/bf16, channels_last)"),
        ("export", onnx_export, "export a model to ONNX, checked against onnxruntime"),
        ("backbone", detector_backbones, "write a backbone file in the keys and name a detector loads (RT-DETR, "
                                         "D-FINE, DEIM, transformers)"),
        ("mine", mine, "pick the images a teacher is most confident about from an unlabeled pool"),
        ("pack", pack, "write a data source as WebDataset tar shards (optionally pre-resized) for `shards:`"),
        ("ship", ship, "turn a finished training run into a catalogue weight (measured, carded, can publish)")))
