"""Which epoch is the best: ``--best-metric`` on validation, or the training loss without a validation split."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["BestTracker", "LOWER_IS_BETTER"]

LOWER_IS_BETTER = {"val_loss", "train_loss"}


@dataclass
class BestTracker:
    """The best value of `metric` so far and its epoch."""

    metric: str
    value: float | None = None
    epoch: int | None = None

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
