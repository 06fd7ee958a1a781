"""Loss weighting across tasks: equal, AWMT, uncertainty, DWA — one interface, any topology.

A `Weighting` turns the per-task mean losses of a batch (``[A]``) into the one
scalar the optimiser minimises, and updates its weights from what the trainer
shows it:

- `observe_val(val_task_losses)` after every training step (AWMT only: the
  trainer draws a validation batch per step when `needs_val_batch`);
- `end_epoch(mean_train_task_losses)` at each epoch end (DWA).

Both return True when the weights changed, so the trainer can log them.
`weights()` is the current per-task weight vector (mean 1 for AWMT/DWA).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["AWMT", "awmt_update", "DWA", "dwa_weights", "make_weighting", "Uncertainty", "Weighting",
           "WEIGHTINGS", "weights_record"]

WEIGHTINGS = ("equal", "awmt", "uncertainty", "dwa")


class Weighting:
    """Equal weights: the loss is the mean of the task losses."""

    name = "equal"
    needs_val_batch = False

    def __init__(self, num_tasks: int):
        self.num_tasks = num_tasks
        self._w = torch.ones(num_tasks)

    def weights(self) -> torch.Tensor:
        return self._w.clone()

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the weighting itself (uncertainty's log-variances)."""
        return []

    def to(self, device: torch.device | str) -> "Weighting":
        """Move trainable state to `device` (weights are moved on use)."""
        return self

    def combine(self, task_losses: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss from per-task losses ``[A]`` (tasks without labels in the batch contribute 0)."""
        w = self._w.to(task_losses.device, task_losses.dtype)
        return (w * task_losses).sum() / self.num_tasks

    def observe_val(self, val_task_losses: torch.Tensor) -> bool:
        return False

    def end_epoch(self, train_task_losses: torch.Tensor) -> bool:
        return False

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self._w.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._w = state["weights"].detach().cpu().float().clone()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def awmt_update(pre: torch.Tensor, cur: torch.Tensor) -> torch.Tensor | None:
    """AWMT weights (He et al., ACM MM 2017; seed 002) from two window means of validation losses.

    trend = |cur - pre| / cur; w = (cur / mean(cur)) * (trend / mean(trend)); w /= mean(w).
    Guards (the public port divides by zero): tasks whose cur or pre is NaN, or whose cur
    is 0, take neutral factors (1); a factor whose mean is 0 (e.g. a window with zero
    trend everywhere) becomes all ones; returns None when no finite weight results.
    """
    pre, cur = pre.double(), cur.double()
    ok = torch.isfinite(pre) & torch.isfinite(cur) & (cur > 0)
    if not ok.any():
        return None
    trend = torch.where(ok, (cur - pre).abs() / torch.where(ok, cur, torch.ones_like(cur)), torch.zeros_like(cur))

    def normalised(v: torch.Tensor) -> torch.Tensor:
        m = v[ok].mean()
        if not torch.isfinite(m) or m <= 0:
            return torch.ones_like(v)
        return torch.where(ok, v / m, torch.ones_like(v))

    w = normalised(torch.where(ok, cur, torch.zeros_like(cur))) * normalised(trend)
    m = w.mean()
    if not torch.isfinite(m) or m <= 0:
        return None
    return (w / m).float()


class AWMT(Weighting):
    """Validation-loss-trend weighting; updates every `k` validation observations."""

    name = "awmt"
    needs_val_batch = True

    def __init__(self, num_tasks: int, k: int = 100):
        super().__init__(num_tasks)
        if k < 1:
            raise ValueError("AWMT window k must be >= 1")
        self.k = k
        self.count = 0
        self.history = torch.full((2 * k, num_tasks), float("nan"))  # ring buffer of the last 2k

    def observe_val(self, val_task_losses: torch.Tensor) -> bool:
        self.history[self.count % (2 * self.k)] = val_task_losses.detach().float().cpu()
        self.count += 1
        if self.count < 2 * self.k or self.count % self.k:
            return False
        order = [(self.count - 2 * self.k + i) % (2 * self.k) for i in range(2 * self.k)]
        window = self.history[order]
        pre = window[: self.k].nanmean(0)
        cur = window[self.k:].nanmean(0)
        w = awmt_update(pre, cur)
        if w is None:
            return False
        self._w = w
        return True

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self._w.clone(), "history": self.history.clone(),
                "count": torch.tensor(self.count, dtype=torch.long)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        if state["history"].shape != self.history.shape:
            raise ValueError(f"AWMT state has window {state['history'].shape[0] // 2}, run uses k={self.k}")
        self.history = state["history"].float().clone()
        self.count = int(state["count"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k}


class Uncertainty(Weighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Per task a learnt s_i = log σ_i²; loss = mean_i(exp(-s_i)·L_i + s_i/2) over the
    tasks present in the batch. The reported weight of task i is exp(-s_i).
    """

    name = "uncertainty"

    def __init__(self, num_tasks: int):
        super().__init__(num_tasks)
        self.log_var = nn.Parameter(torch.zeros(num_tasks))

    def weights(self) -> torch.Tensor:
        return torch.exp(-self.log_var.detach().cpu())

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_var]

    def combine(self, task_losses: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        s = self.log_var.to(task_losses.device)
        reg = s / 2 if present is None else torch.where(present, s / 2, torch.zeros_like(s))
        return (torch.exp(-s) * task_losses + reg).sum() / self.num_tasks

    def to(self, device: torch.device | str) -> "Uncertainty":
        self.log_var.data = self.log_var.data.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"log_var": self.log_var.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.log_var.data.copy_(state["log_var"].to(self.log_var.device))


class DWA(Weighting):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019).

    w_i(t) = A·exp(r_i(t-1)/T) / Σ_j exp(r_j(t-1)/T), r_i(t-1) = L_i(t-1) / L_i(t-2),
    with L the epoch-mean training loss; weights are 1 for the first two epochs. T = 2.
    """

    name = "dwa"

    def __init__(self, num_tasks: int, temperature: float = 2.0):
        super().__init__(num_tasks)
        self.temperature = temperature
        self.prev = torch.full((2, num_tasks), float("nan"))  # L(t-2), L(t-1)

    def end_epoch(self, train_task_losses: torch.Tensor) -> bool:
        self.prev = torch.stack([self.prev[1], train_task_losses.detach().float().cpu()])
        w = dwa_weights(self.prev[0], self.prev[1], self.temperature)
        if w is None:
            return False
        self._w = w
        return True

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self._w.clone(), "prev": self.prev.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        self.prev = state["prev"].float().clone()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "temperature": self.temperature}


def dwa_weights(l2: torch.Tensor, l1: torch.Tensor, temperature: float = 2.0) -> torch.Tensor | None:
    """DWA weights from the losses of epochs t-2 (`l2`) and t-1 (`l1`); None before two epochs.

    Tasks with a missing or zero loss get ratio 1 (neutral).
    """
    if torch.isnan(l2).all() or torch.isnan(l1).all():
        return None
    ok = torch.isfinite(l1) & torch.isfinite(l2) & (l2 > 0)
    r = torch.where(ok, l1 / torch.where(ok, l2, torch.ones_like(l2)), torch.ones_like(l1))
    r = torch.nan_to_num(r.double(), posinf=torch.finfo(torch.float64).max)
    # softmax subtracts the max first: a diverging task (huge ratio) cannot overflow exp
    return (len(r) * torch.softmax(r / temperature, 0)).float()


def make_weighting(name: str, num_tasks: int, *, awmt_k: int = 100, dwa_temperature: float = 2.0) -> Weighting:
    """The weighting strategy called `name` for `num_tasks` tasks."""
    if name == "equal":
        return Weighting(num_tasks)
    if name == "awmt":
        return AWMT(num_tasks, awmt_k)
    if name == "uncertainty":
        return Uncertainty(num_tasks)
    if name == "dwa":
        return DWA(num_tasks, dwa_temperature)
    raise ValueError(f"unknown weighting {name!r} (choose from {', '.join(WEIGHTINGS)})")


def weights_record(weighting: Weighting, step: int, names: list[str]) -> dict[str, Any]:
    """One log line: the step and the current weight of every task."""
    w = weighting.weights().tolist()
    return {"step": step, "weighting": weighting.name,
            "weights": {n: (round(v, 6) if math.isfinite(v) else None) for n, v in zip(names, w)}}
