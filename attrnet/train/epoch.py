"""One training epoch's bookkeeping: running sums, throughput, the end-of-epoch line, and the reasons to stop.

A run stops with one line, on every rank alike, when the training loss is not
finite (before the step is taken), when the weights are not finite at the end
of an epoch, or when more than ``--max-bad-fraction`` of an epoch's images
could not be used. The last checkpoint (the previous epoch's) stays.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

import torch

from attrnet.core.errors import AttrnetError

__all__ = ["EpochStats", "check_skipped", "loss_problem", "stop_non_finite", "summary_line"]


@dataclass
class EpochStats:
    """Per-task and total training loss sums of an epoch, its step and image counts, and timing."""

    task_sum: torch.Tensor
    task_cnt: torch.Tensor
    loss_sum: torch.Tensor
    started: float
    window_start: float
    steps: int = 0
    seen: int = 0
    skipped: int = 0
    window_seen: int = 0

    @classmethod
    def start(cls, num_tasks: int, device: torch.device) -> "EpochStats":
        now = time.perf_counter()
        return cls(torch.zeros(num_tasks, device=device), torch.zeros(num_tasks, device=device),
                   torch.zeros((), device=device), started=now, window_start=now)

    def add_losses(self, task_losses: torch.Tensor, present: torch.Tensor, loss: torch.Tensor) -> None:
        """One step's per-task mean losses (where `present`) and its combined loss."""
        self.task_sum += task_losses.detach() * present
        self.task_cnt += present
        self.loss_sum += loss.detach()

    def count(self, batch_size: int) -> None:
        self.steps += 1
        self.seen += batch_size
        self.window_seen += batch_size

    def mean_loss(self) -> float:
        return float(self.loss_sum) / self.steps

    def task_means(self) -> torch.Tensor:
        return self.task_sum / self.task_cnt.clamp(min=1)

    def window_rate(self, world: int) -> float:
        """Images per second (over all `world` ranks) since the previous call; starts a new window."""
        now = time.perf_counter()
        rate = self.window_seen * world / max(now - self.window_start, 1e-9)
        self.window_start, self.window_seen = now, 0
        return rate

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def loss_problem(losses_by_rank: list[float]) -> str | None:
    """None when the training loss is finite on every rank, else what is wrong (the same text on every rank)."""
    bad = [(rank, value) for rank, value in enumerate(losses_by_rank) if not math.isfinite(value)]
    if not bad:
        return None
    if len(losses_by_rank) == 1:
        return f"the training loss is {bad[0][1]}"
    return "the training loss is " + ", ".join(f"{value} on rank {rank}" for rank, value in bad)


def stop_non_finite(what: str, epoch: int, step: int, last: Path) -> NoReturn:
    """Stop before anything non-finite is optimised further or saved; the last checkpoint stays."""
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written"
    raise AttrnetError(f"{what} at epoch {epoch + 1} step {step + 1}; stopping ({kept}). "
                       "Lower --lr, or check the data for broken labels")


def check_skipped(skipped: int, seen: int, epoch: int, max_bad_fraction: float, log: Callable[[str], None]) -> None:
    """Unreadable images are skipped; too many of them stop the run (last checkpoint kept)."""
    if not skipped:
        return
    fraction = skipped / max(seen, 1)
    log(f"epoch {epoch + 1}: skipped {skipped} of {seen} images (unreadable, or no label at all)")
    if fraction > max_bad_fraction:
        raise AttrnetError(f"{skipped} of {seen} training images ({fraction:.1%}) could not be used in epoch "
                           f"{epoch + 1}, more than --max-bad-fraction {max_bad_fraction:g}; "
                           "the messages above name them")


def summary_line(row: dict[str, Any], epochs: int) -> str:
    """The log line of a finished epoch: losses, headline metrics and throughput."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    for k in ("val_loss", "mean_accuracy", "mA", "instance_f1"):
        if row.get(k) is not None:
            parts.append(f"{k} {row[k]:.4f}")
    parts.append(f"{row['images_per_s']:.1f} img/s")
    return "  ".join(parts)
