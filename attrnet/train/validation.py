"""Validation: predictions and loss on the validation split, thresholds and metrics, AWMT's validation batches.

Every rank validates on the whole split (no sharding): each then holds the
same thresholds and metrics. AWMT's per-step validation batches are sharded
like the training batches and their task losses averaged over ranks.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from attrnet.core.model_card import probabilities
from attrnet.core.schema import Schema
from attrnet.data.base import AttributeDataset
from attrnet.models.net import MultiTaskNet
from attrnet.train import distributed as dd
from attrnet.train.amp import LossForward
from attrnet.train.data import EpochSampler, EvalView, make_loader
from attrnet.train.losses import task_means
from attrnet.train.metrics import compute_metrics
from attrnet.train.thresholds import choose_thresholds
from attrnet.train.weighting import Weighting

__all__ = ["observe_val_batch", "predict", "score", "val_batches"]

Batch = tuple[torch.Tensor, torch.Tensor]


@torch.no_grad()
def predict(model: MultiTaskNet, val_set: AttributeDataset, forward: LossForward, *, batch_size: int, workers: int,
            device: torch.device, max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities, labels and the equally weighted mean task loss on (the first `max_batches` batches of) `val_set`."""
    model.eval()
    loader = make_loader(EvalView(val_set), batch_size, EpochSampler(len(val_set), 0, shuffle=False), workers)
    probs, labels = [], []
    a = len(val_set.schema.attributes)
    task_sum = torch.zeros(a, device=device, dtype=torch.float64)
    task_cnt = torch.zeros(a, device=device, dtype=torch.float64)
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        logits, losses, mask = forward(model, x, y)
        task_sum += losses.sum(0).double()
        task_cnt += mask.sum(0).double()
        probs.append(probabilities(logits.float(), val_set.schema).cpu().numpy())
        labels.append(y.cpu().numpy())
    model.train()
    present = task_cnt > 0
    val_loss = float((task_sum[present] / task_cnt[present]).mean()) if present.any() else float("nan")
    return np.concatenate(probs), np.concatenate(labels), val_loss


def score(probs: np.ndarray, labels: np.ndarray, schema: Schema, objective: str
          ) -> tuple[list[float | None], dict[str, Any]]:
    """Thresholds chosen for `objective`, and every metric at those thresholds."""
    thresholds = choose_thresholds(probs, labels, schema, objective)
    return thresholds, compute_metrics(probs, labels, schema, thresholds)


def val_batches(val_set: AttributeDataset, *, batch_size: int, steps: int, seed: int, epoch: int,
                workers: int, d: dd.Dist) -> Iterator[Batch]:
    """AWMT's validation batches for one epoch: `steps` per rank, a seeded stream of its own."""
    sampler = EpochSampler(len(val_set), seed, d.rank, d.world, length=steps * batch_size * d.world, stream=1)
    sampler.epoch = epoch
    return iter(make_loader(EvalView(val_set), batch_size, sampler, workers))


def observe_val_batch(batch: Batch, model: MultiTaskNet, forward: LossForward, weighting: Weighting,
                      device: torch.device, d: dd.Dist) -> bool:
    """Hand one validation batch's task losses (averaged over ranks) to the weighting; True if its weights changed."""
    x, y = (t.to(device, non_blocking=True) for t in batch)
    model.eval()
    with torch.no_grad():
        _, losses, mask = forward(model, x, y)
    model.train()
    tl, present = task_means(losses, mask)
    tl = dd.mean_across(torch.where(present, tl, torch.full_like(tl, float("nan"))), d)
    return weighting.observe_val(tl)
