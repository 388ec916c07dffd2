"""SGD with momentum and per-step cosine learning rate after a linear warm-up (PaddleClas `CosineWarmup`)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ssld_zoo.train.recipe import Recipe, Stage


def make_optimizer(model: nn.Module, stage: Stage, recipe: Recipe) -> torch.optim.SGD:
    """SGD over the trainable parameters; with `no_decay_norm_bias`, norm weights and biases (every parameter with
    at most one dimension) get no weight decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if recipe.optimizer.no_decay_norm_bias and param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": stage.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=stage.lr, momentum=recipe.optimizer.momentum, nesterov=recipe.optimizer.nesterov)


def learning_rate(stage: Stage, step: int, steps_per_epoch: int) -> float:
    """The learning rate of step `step` (0-based, counted within the stage): a linear ramp to `stage.lr` over
    `warmup_epochs` (which may be fractional), then a cosine from `stage.lr` down to `stage.min_lr` at the end."""
    total = stage.epochs * steps_per_epoch
    warmup = min(total, round(stage.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return stage.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return stage.min_lr + 0.5 * (stage.lr - stage.min_lr) * (1.0 + math.cos(math.pi * progress))
