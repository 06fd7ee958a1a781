"""Train every leaf column of a branched model on its own attributes only.

With one column per group (independent columns, or cross-stitch columns whose
units are set to the identity) and the loss Σ_a mean_n(loss_na) / |group(a)|,
column g receives gradients from its own group's mean loss and nothing else:
K separate single-group trainings run as one batched model. Used for
cross-stitch per-column pretraining and for Taskonomy's source encoders.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from attrnet.models.net import MultiTaskNet

__all__ = ["group_weights", "train_columns"]

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def group_weights(model: MultiTaskNet) -> torch.Tensor:
    """Per attribute (schema order): 1 / number of attributes its leaf reads."""
    sizes = [len(g) for g in model.topology.leaf_groups()]
    return torch.tensor([1.0 / sizes[model.topology.tasks[a]] for a in model.schema.names])


def train_columns(model: MultiTaskNet, batches: Batches, epochs: int, lr: float = 2e-3,
                  device: str | torch.device = "cpu",
                  progress: Callable[[str], None] | None = None) -> list[float]:
    """Adam over the model's trainable parameters for `epochs` passes of `batches()`.

    Images come normalised (float ``[N, 3, H, W]``), labels over output columns.
    Returns the mean training loss of every epoch.
    """
    from attrnet.train.host_memory import keep_freed_memory
    from attrnet.train.losses import AttributeLoss

    if torch.device(device).type == "cpu":
        keep_freed_memory()
    model.to(device).train()
    criterion = AttributeLoss(model.schema).to(device)
    weights = group_weights(model).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for images, labels in batches():
            images, labels = images.to(device), labels.to(device)
            losses, mask = criterion(model(images), labels)
            per_task = losses.sum(0) / mask.sum(0).clamp(min=1)
            loss = (per_task * weights).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * images.shape[0]
            count += images.shape[0]
        history.append(total / max(count, 1))
        if progress is not None:
            progress(f"columns epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    return history
