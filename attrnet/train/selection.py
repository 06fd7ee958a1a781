"""Which epoch is the best: ``--best-metric`` on validation, or the training loss without a validation split.

The best is chosen among the checkpoints of one tree (topology): when a method
replaces the model (FAFS widening), the new tree starts a new best, so
``best.safetensors`` always holds the tree the run ends with, which the
method's reports describe. Tree 0 is the model a run starts with; each
replacement counts one up. The best of an earlier tree is kept as
``best.tree<N>.safetensors`` (`attrnet.train.outputs.retire_best`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BestTracker", "LOWER_IS_BETTER"]

LOWER_IS_BETTER = {"val_loss", "train_loss"}


@dataclass
class BestTracker:
    """The best value of `metric` so far on the current `tree`, and its epoch."""

    metric: str
    value: float | None = None
    epoch: int | None = None
    tree: int = 0

    @classmethod
    def for_run(cls, best_metric: str, has_val: bool) -> "BestTracker":
        return cls(best_metric if has_val else "train_loss")

    def is_better(self, value: float | None) -> bool:
        """A finite `value` beats the best so far; anything counts while there is none."""
        if value is None or not math.isfinite(value):
            return self.value is None
        if self.value is None:
            return True
        return value < self.value if self.metric in LOWER_IS_BETTER else value > self.value

    def offer(self, epoch: int, row: dict[str, Any], metrics: dict[str, Any]) -> bool:
        """Take `epoch` as the best if its value (from the metrics row, else the metrics) is better."""
        value = row.get(self.metric) if self.metric in row else metrics.get(self.metric)
        if not self.is_better(value):
            return False
        self.value, self.epoch = value, epoch
        return True

    def new_tree(self) -> int:
        """The model was replaced: forget the best so far; returns the tree that ended."""
        ended = self.tree
        self.tree, self.value, self.epoch = ended + 1, None, None
        return ended
