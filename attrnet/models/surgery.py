"""Weight surgery for topology edits: a widened model that computes exactly what the old one did."""
from __future__ import annotations

from typing import Sequence

import torch

from attrnet.core.topology import split_topology
from attrnet.models.net import MultiTaskNet

__all__ = ["copy_branch_weights", "widen_model"]


def copy_branch_weights(old: MultiTaskNet, new: MultiTaskNet, sources: list[list[int]]) -> None:
    """Load `new` with `old`'s weights: new branch j of stage s copies old branch ``sources[s][j]``.

    Every stage tensor is branch-major along dim 0 (grouped conv rows, BN
    channels, grouped linear ``[B, out, in]``); other tensors are copied as they are.
    """
    old_state = old.state_dict()
    counts = old.topology.branch_counts()
    state = {}
    for key, target in new.state_dict().items():
        value = old_state[key]
        parts = key.split(".")
        if parts[0] == "stages" and value.dim() >= 1:
            s = int(parts[1])
            b = counts[s]
            idx = torch.tensor(sources[s], dtype=torch.long, device=value.device)
            value = value.reshape(b, value.shape[0] // b, *value.shape[1:]).index_select(0, idx)
            value = value.reshape(target.shape)
        elif value.shape != target.shape:
            raise ValueError(f"cannot copy {key}: shape {tuple(value.shape)} -> {tuple(target.shape)}")
        state[key] = value.clone()
    new.load_state_dict(state, strict=True)


def widen_model(model: MultiTaskNet, stage: int, branch: int, labels: Sequence[int]) -> MultiTaskNet:
    """A new model with branch `branch` of `stage` split by `labels`; it computes the same outputs."""
    topology, sources = split_topology(model.topology, stage, branch, labels)
    params = list(model.parameters())
    device = params[0].device if params else None
    new = MultiTaskNet(topology, model.schema).to(device)
    copy_branch_weights(model, new, sources)
    new.train(model.training)
    return new
