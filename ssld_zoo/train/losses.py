"""Training losses. Distillation losses compare student and teacher logits and never see labels; `ce` is the
supervised baseline. Every loss works on log-probabilities (`log_softmax`), in float32, and returns one value per
sample (summed over classes); `reduce` averages them over the samples that count.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ssld_zoo.train.recipe import LOSSES, RecipeError

IGNORE_LABEL = -1  # unlabeled or hidden images
_MIN_REST = 1e-8  # per-class floor of the probability left outside a top-k target (rounding can leave none)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return F.log_softmax(logits.float() / temperature, dim=-1)


def symmetric_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """PaddleClas SSLD's loss: `0.5 * (KL(p_t || p_s) + KL(p_s || p_t))` per sample (T = 1).

    The two KL terms add up to `sum((p_t - p_s) * (log p_t - log p_s))`, which has no 0 * log 0 terms.
    """
    log_s, log_t = _log_probs(student), _log_probs(teacher)
    return 0.5 * ((log_t.exp() - log_s.exp()) * (log_t - log_s)).sum(-1)


def soft_ce(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy `-sum p_t log p_s` per sample (PaddleClas `DistillationCELoss`)."""
    return -(_log_probs(teacher).exp() * _log_probs(student)).sum(-1)


def js(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per sample: `0.5 * (KL(p_s || m) + KL(p_t || m))` with `m = (p_s + p_t) / 2`."""
    log_s, log_t = _log_probs(student), _log_probs(teacher)
    log_m = torch.logaddexp(log_s, log_t) - math.log(2.0)
    return 0.5 * ((log_s.exp() * (log_s - log_m)).sum(-1) + (log_t.exp() * (log_t - log_m)).sum(-1))


def kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton's `T^2 * KL(p_t^T || p_s^T)` per sample, with both distributions softened by `temperature`."""
    log_s, log_t = _log_probs(student, temperature), _log_probs(teacher, temperature)
    return temperature ** 2 * (log_t.exp() * (log_t - log_s)).sum(-1)


def ce(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Supervised cross-entropy per sample; samples labelled `IGNORE_LABEL` (-1) give 0 and do not count."""
    return F.cross_entropy(student.float(), labels, ignore_index=IGNORE_LABEL, reduction="none")


def complete_topk(student: torch.Tensor, log_probs: torch.Tensor, classes: torch.Tensor,
                  sparse: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`(student, teacher)` logits for a loss, from the teacher's top-k log-probabilities at `classes` (n, k).

    `uniform`: the teacher's distribution over all classes, the probability left outside the top k spread evenly
    over the other classes (FKD's "marginal smoothing"). `renormalize`: both distributions restricted to the
    teacher's top-k classes (each renormalised there by the loss's softmax). With k = number of classes both give
    the full teacher distribution.
    """
    log_probs = log_probs.float()
    if sparse == "renormalize":
        return student.gather(-1, classes), log_probs
    n, k = log_probs.shape
    others = student.shape[-1] - k
    if others == 0:
        return student, torch.empty_like(log_probs).scatter_(-1, classes, log_probs)
    rest = (1 - log_probs.exp().sum(-1, keepdim=True)).clamp_min(_MIN_REST * others) / others
    teacher = rest.log().expand(n, student.shape[-1]).clone()
    return student, teacher.scatter_(-1, classes, log_probs)


def get_loss(name: str, temperature: float = 1.0) -> LossFn:
    """The per-sample loss `fn(student_logits, target)`; target is the teacher's logits, or labels for `ce`."""
    if name not in LOSSES:
        raise RecipeError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    if name == "kl":
        return lambda student, teacher: kl(student, teacher, temperature)
    return {"symmetric_kl": symmetric_kl, "soft_ce": soft_ce, "js": js, "ce": ce}[name]


def counted(name: str, target: torch.Tensor) -> torch.Tensor:
    """How many samples of a batch count towards the mean: all of them, or only the labelled ones for `ce`."""
    if name == "ce":
        return (target != IGNORE_LABEL).sum()
    return torch.tensor(target.shape[0], device=target.device)


def reduce(per_sample: torch.Tensor, global_count: int, world: int = 1) -> torch.Tensor:
    """The loss to back-propagate: this process's per-sample losses summed, over the samples of the *global* batch
    that count (0 for none). Each of `world` DDP processes scales its share by `world`, because DDP averages the
    gradients over processes: the gradient is then that of the global batch's mean loss, whatever number of
    undecodable images or unlabelled samples each process dropped."""
    return per_sample.sum() * (world / max(global_count, 1))
