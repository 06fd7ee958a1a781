"""Task affinity from concurrently hard or easy samples (FAFS, Lu et al. 2017, §3.3).

Sample n is *hard* for task i, e_i^n = 1, when its loss is at least the task's
running mean loss (the paper's definition, ``mode="loss"``) or, with
``mode="error"``, when the sample is misclassified. The affinity of two tasks
is the probability that a sample is hard for both or easy for both:

    A(i, j) = E[e_i e_j + (1 - e_i)(1 - e_j)]

estimated as an exponential moving average (decay 0.99, the authors'
``error_decay_factor``) of batch means. As in the authors' code the average is
normalised by the sum of the decayed weights, so it is unbiased from the first
batch. Missing labels are left out pair by pair; a pair never labelled
together reads 0.5.

Branch affinity between branches k and l with task sets I_k and J_l:

    Ã(k, l) = mean_{i in I_k} min_{j in J_l} A(i, j),   A_b = (Ã(k, l) + Ã(l, k)) / 2
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

__all__ = ["branch_affinity", "DEFAULT_DECAY", "misclassified", "MODES", "TaskAffinity", "UNOBSERVED"]

if TYPE_CHECKING:
    import torch
    from attrnet.core.schema import Schema

Mode = Literal["loss", "error"]
MODES = ("loss", "error")
DEFAULT_DECAY = 0.99
UNOBSERVED = 0.5


class TaskAffinity:
    """Running estimate of the ``[A, A]`` task affinity matrix, updated one batch at a time."""

    def __init__(self, num_tasks: int, decay: float = DEFAULT_DECAY, mode: Mode = "loss"):
        import torch

        if mode not in MODES:
            raise ValueError(f"affinity mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"affinity decay must lie in [0, 1), got {decay}")
        self.num_tasks, self.decay, self.mode = num_tasks, decay, mode
        a = num_tasks
        self.agree = torch.zeros(a, a, dtype=torch.float64)      # decayed sum of batch agreement rates
        self.pair_weight = torch.zeros(a, a, dtype=torch.float64)  # decayed count of batches per pair
        self.loss_sum = torch.zeros(a, dtype=torch.float64)      # decayed sum of batch mean losses
        self.loss_weight = torch.zeros(a, dtype=torch.float64)

    # ------------------------------------------------------------ updates
    def running_loss(self) -> "torch.Tensor":
        """E[m_i]: the running mean loss of every task (NaN before its first labelled batch)."""
        import torch

        return torch.where(self.loss_weight > 0, self.loss_sum / self.loss_weight.clamp(min=1e-300),
                           torch.full_like(self.loss_sum, float("nan")))

    def hard_from_losses(self, losses: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
        """e_i^n = [m_i^n >= E[m_i]], against the running mean before this batch
        (the batch's own mean for a task seen for the first time). Also updates E[m_i]."""
        import torch

        losses = losses.detach().to("cpu", torch.float64)
        mask = mask.detach().to("cpu", torch.bool)
        count = mask.sum(0)
        batch_mean = torch.where(mask, losses, torch.zeros_like(losses)).sum(0) / count.clamp(min=1)
        running = self.running_loss()
        threshold = torch.where(torch.isnan(running), batch_mean, running)
        seen = count > 0
        self.loss_sum = torch.where(seen, self.decay * self.loss_sum + batch_mean, self.loss_sum)
        self.loss_weight = torch.where(seen, self.decay * self.loss_weight + 1.0, self.loss_weight)
        return losses >= threshold

    def update(self, hard: "torch.Tensor", mask: "torch.Tensor") -> None:
        """Fold one batch of hard/easy indicators ``[N, A]`` (only where `mask`) into the average."""
        import torch

        m = mask.detach().to("cpu", torch.float64)
        e = hard.detach().to("cpu", torch.float64) * m
        easy = (1.0 - e) * m
        n, a = m.shape
        # one batched matmul: [hard; easy]^T [hard; easy] counts agreements, M^T M counts co-labelled samples
        stacked = torch.stack([torch.cat([e, easy], 0), torch.cat([m, torch.zeros_like(m)], 0)])
        products = torch.bmm(stacked.transpose(1, 2), stacked)
        agree, count = products[0], products[1]
        seen = count > 0
        rate = agree / count.clamp(min=1)
        self.agree = torch.where(seen, self.decay * self.agree + rate, self.agree)
        self.pair_weight = torch.where(seen, self.decay * self.pair_weight + 1.0, self.pair_weight)

    def update_from_batch(self, losses: "torch.Tensor", mask: "torch.Tensor", logits: "torch.Tensor",
                          labels: "torch.Tensor", schema: "Schema") -> None:
        """One training step: hard by loss (default) or by misclassification."""
        hard_by_loss = self.hard_from_losses(losses, mask)  # keeps E[m_i] current in both modes
        hard = hard_by_loss if self.mode == "loss" else misclassified(logits, labels, schema)
        self.update(hard, mask)

    # ------------------------------------------------------------ reading
    def matrix(self) -> np.ndarray:
        """The current ``[A, A]`` affinity (1 on the diagonal, 0.5 where a pair was never seen)."""
        w = self.pair_weight.numpy()
        a = np.where(w > 0, self.agree.numpy() / np.maximum(w, 1e-300), UNOBSERVED)
        np.fill_diagonal(a, 1.0)
        return a

    def state_dict(self, prefix: str = "") -> dict[str, "torch.Tensor"]:
        return {prefix + "agree": self.agree.clone(), prefix + "pair_weight": self.pair_weight.clone(),
                prefix + "loss_sum": self.loss_sum.clone(), prefix + "loss_weight": self.loss_weight.clone()}

    def load_state_dict(self, state: dict[str, "torch.Tensor"], prefix: str = "") -> None:
        import torch

        for name in ("agree", "pair_weight", "loss_sum", "loss_weight"):
            value = state[prefix + name].to(torch.float64)
            if value.shape != getattr(self, name).shape:
                raise ValueError(f"affinity state {name}: shape {tuple(value.shape)}, "
                                 f"expected {tuple(getattr(self, name).shape)}")
            setattr(self, name, value.clone())


def misclassified(logits: "torch.Tensor", labels: "torch.Tensor", schema: "Schema") -> "torch.Tensor":
    """``[N, A]`` bool: the sample is misclassified for the attribute (binary at logit 0, categorical argmax)."""
    import torch

    logits, labels = logits.detach().float().cpu(), labels.detach().float().cpu()
    out = torch.zeros(logits.shape[0], len(schema.attributes), dtype=torch.bool)
    for i, (attr, sl) in enumerate(zip(schema.attributes, schema.slices)):
        if attr.kind == "binary":
            out[:, i] = (logits[:, sl.start] > 0) != (labels[:, sl.start].nan_to_num(0) > 0.5)
        else:
            out[:, i] = logits[:, sl].argmax(1) != labels[:, sl].nan_to_num(0).argmax(1)
    return out


def branch_affinity(task_affinity: np.ndarray, branch_tasks: Sequence[Sequence[int]]) -> np.ndarray:
    """A_b over branches whose task sets are `branch_tasks` (indices into `task_affinity`).

    Ã(k, l) = mean_{i in I_k} min_{j in J_l} A(i, j); A_b = (Ã + Ã^T) / 2. The
    diagonal uses the same formula with k = l, as in the authors' code.
    """
    a = np.asarray(task_affinity, dtype=np.float64)
    k = len(branch_tasks)
    tilde = np.empty((k, k))
    for p, ip in enumerate(branch_tasks):
        rows = a[np.asarray(ip)]
        for q, jq in enumerate(branch_tasks):
            tilde[p, q] = rows[:, np.asarray(jq)].min(axis=1).mean()
    return (tilde + tilde.T) / 2.0
