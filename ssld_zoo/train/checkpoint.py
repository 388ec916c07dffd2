"""The run's checkpoint: written atomically (`ssld_zoo.files.atomic_path`), read with `torch.load(weights_only=True)`.

A copy taken at the end of each stage but the last (`stage_end_file`) stays beside it, so another recipe with the same
earlier stages can start from there (`train(..., start_from=...)`).

It holds only tensors, dicts, lists, strings, numbers and None: the student, optimizer and EMA state dicts, where the
run stands (`Position`), the epoch's running totals, the metrics so far, the resolved recipe (YAML text), the teacher's
eval predictions, and the RNG states of torch, numpy and Python.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssld_zoo.errors import CheckpointError
from ssld_zoo.files import atomic_path
from ssld_zoo.reading import open_regular

FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"


def stage_end_file(stage_name: str) -> str:
    """The checkpoint a run keeps at the end of stage `stage_name` (every stage but the last), for `--start-from`."""
    return f"checkpoint.{stage_name}.pt"

@dataclass
class Position:
    """The next step to run: stage index, epoch within the stage, step within the epoch; and steps done in all."""

    stage: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0


def rng_state() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python, as tensors and numbers."""
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)
    _, keys, pos, has_gauss, gauss = state
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss,
                      "gauss": gauss},
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": py_gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured (CUDA states only when this machine has as many devices)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` (plus the format and position fields it already has) to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save` (weights_only, onto the CPU)."""
    if not os.path.lexists(path):
        raise CheckpointError(f"There is no checkpoint to resume at {path}; start the run without --resume.")
    try:
        with open_regular(path, what="checkpoint", error=CheckpointError) as f:  # a FIFO is refused, not waited on
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # a truncated or foreign file
        reason = str(e).splitlines()[0].split(". ")[0].rstrip(".") if str(e).strip() else type(e).__name__
        raise CheckpointError(f"Cannot read checkpoint {path}: {reason}. It is damaged or not a checkpoint; delete "
                              "it to start the run over without --resume, or choose another --out.") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ssld_zoo training checkpoint (format {FORMAT}).")
    return payload
