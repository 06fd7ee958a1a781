"""The optimiser and its learning-rate schedule: AdamW or SGD over parameter groups, warm-up then cosine."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from attrnet.train.config import TrainConfig

__all__ = ["Schedule", "build_optimizer", "lr_factor"]


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(groups: list[dict[str, Any]], extra: list[torch.nn.Parameter],
                    config: TrainConfig) -> torch.optim.Optimizer:
    """`config.optimizer` over a method's parameter groups plus `extra` (the loss weighting's own parameters).

    Groups without a weight decay get ``config.decay``; `extra` gets none. Every
    group remembers its ``base_lr`` for the schedule.
    """
    for g in groups:
        g.setdefault("weight_decay", config.decay)
    if extra:
        groups.append({"params": extra, "lr": config.lr, "weight_decay": 0.0, "name": "weighting"})
    for g in groups:
        g["base_lr"] = g["lr"]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


@dataclass(frozen=True)
class Schedule:
    """`lr_factor` over a run of `total` steps whose first `warmup` steps warm up."""

    total: int
    warmup: int

    @classmethod
    def for_run(cls, epochs: int, steps_per_epoch: int, warmup_epochs: float) -> "Schedule":
        """Warm-up of `warmup_epochs`, at most half the run."""
        total = epochs * steps_per_epoch
        return cls(total, min(int(warmup_epochs * steps_per_epoch), total // 2))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's learning rate for `step`; returns the first group's."""
        f = lr_factor(step, self.total, self.warmup)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return optimizer.param_groups[0]["lr"]
