"""The one evaluation loop: top-1 / top-5 accuracy of a model over the batches of an evaluation set.

Training (`engine`, every epoch and under DDP), `ssld-zoo eval` (`tools.evaluate`) and the teacher's pass of
`ssld-zoo cache` all score through `score`, so the three report the same numbers for the same model and images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ssld_zoo.train.data import Batch

Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Scores:
    """Counts over the images scored (over all processes), and each image's top-1 class when asked for."""

    correct1: int = 0
    correct5: int = 0
    labelled: int = 0
    agree: int = 0  # top-1 equal to the reference prediction (the teacher's), over `compared` images
    compared: int = 0
    skipped: int = 0  # images that could not be decoded
    seconds: float = 0.0
    predictions: torch.Tensor | None = None  # int64 top-1 class per dataset index, -1 where not scored

    @property
    def top1(self) -> float | None:
        return 100 * self.correct1 / self.labelled if self.labelled else None

    @property
    def top5(self) -> float | None:
        return 100 * self.correct5 / self.labelled if self.labelled else None

    @property
    def agreement(self) -> float | None:
        return 100 * self.agree / self.compared if self.compared else None


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@torch.no_grad()
def score(logits_of: Logits, batches: Iterable[Batch], size: int, device: torch.device, *,
          reference: torch.Tensor | None = None, keep_predictions: bool = False,
          all_sum: Callable[[torch.Tensor], torch.Tensor] = _identity,
          on_batch: Callable[[int], object] | None = None) -> Scores:
    """Score `logits_of(batch.images)` on every batch of a `size`-image evaluation set.

    `reference` (int64 per dataset index, -1 for unknown) is a prediction to agree with; `all_sum` adds a tensor
    over the DDP processes; `on_batch(images)` is called after each batch (a progress bar).
    """
    sums = torch.zeros(6, dtype=torch.float64, device=device)
    predictions = torch.zeros(size, dtype=torch.int64, device=device) if keep_predictions else None
    reference = reference.to(device) if reference is not None else None
    started = time.perf_counter()
    for batch in batches:
        sums[5] += batch.skipped
        if len(batch.labels):
            logits = logits_of(batch.images)
            top = logits.float().topk(min(5, logits.shape[-1]), dim=-1).indices
            labels, indices = batch.labels.to(device), batch.indices.to(device)
            valid = labels >= 0
            sums[0] += (top[:, 0] == labels)[valid].sum()
            sums[1] += (top == labels[:, None]).any(-1)[valid].sum()
            sums[2] += valid.sum()
            if reference is not None:
                expected = reference[indices]
                known = expected >= 0
                sums[3] += (top[:, 0] == expected)[known].sum()
                sums[4] += known.sum()
            if predictions is not None:
                predictions[indices] = top[:, 0] + 1
        if on_batch is not None:
            on_batch(len(batch.labels) + batch.skipped)
    c1, c5, labelled, agree, compared, skipped = (int(v) for v in all_sum(sums).tolist())
    return Scores(c1, c5, labelled, agree, compared, skipped, time.perf_counter() - started,
                  (all_sum(predictions) - 1).cpu() if predictions is not None else None)
