"""Per-sample, per-attribute losses with label masks and optional positive-class weighting.

Binary attributes use BCE-with-logits, categorical attributes softmax
cross-entropy within their column group. Missing labels (NaN) are masked out.
`AttributeLoss(logits, labels)` returns ``losses [N, A]`` (0 where masked) and
``mask [N, A]`` (bool), in schema attribute order.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from attrnet.core.schema import Schema

__all__ = ["AttributeLoss", "class_weights", "POS_WEIGHTS", "positive_rates", "PosWeight", "prior_logits",
           "task_means"]

PosWeight = Literal["none", "ratio", "deepmar"]
POS_WEIGHTS = ("none", "ratio", "deepmar")
_EPS = 1e-3


def positive_rates(labels: torch.Tensor, schema: Schema) -> torch.Tensor:
    """Positive rate of every output column over labelled samples (NaN-aware), ``[C]``."""
    valid = ~torch.isnan(labels)
    pos = torch.where(valid, labels, torch.zeros_like(labels)).sum(0)
    return pos / valid.sum(0).clamp(min=1)


def class_weights(rates: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive weight, negative weight) per column for `--pos-weight`.

    ``ratio``: positives weighted (1-p)/p, negatives 1 (balances the two classes).
    ``deepmar``: DeepMAR (Li et al. 2015): exp(1-p) for positives, exp(p) for negatives.
    """
    p = rates.clamp(_EPS, 1 - _EPS)
    if mode == "none":
        return torch.ones_like(p), torch.ones_like(p)
    if mode == "ratio":
        return (1 - p) / p, torch.ones_like(p)
    if mode == "deepmar":
        return torch.exp(1 - p), torch.exp(p)
    raise ValueError(f"unknown pos-weight mode {mode!r} (choose from {', '.join(POS_WEIGHTS)})")


def prior_logits(rates: torch.Tensor, schema: Schema, mode: str = "none") -> torch.Tensor:
    """Head biases at which a model whose features say nothing minimises the loss: ``[C]``.

    A binary column gets the logit of its positive rate as the loss weighs it
    (`mode`: ``ratio`` balances the classes, so 0); a class column of a
    categorical attribute the log of its rate (softmax ignores a shared shift).
    An untrained model then predicts the training prior, as a majority guess
    does, instead of 0.5 everywhere (the prior initialisation of Lin et al., 2017).
    """
    p = rates.clamp(_EPS, 1 - _EPS)
    pos, neg = class_weights(p, mode)
    weighted = (p * pos / (p * pos + (1 - p) * neg)).clamp(_EPS, 1 - _EPS)
    binary = torch.tensor(schema.binary_columns, dtype=torch.bool)
    return torch.where(binary, torch.log(weighted / (1 - weighted)), torch.log(p))


class AttributeLoss(torch.nn.Module):
    """Masked per-attribute losses for a schema; positive weighting applies to binary columns."""

    def __init__(self, schema: Schema, pos_weight: torch.Tensor | None = None,
                 neg_weight: torch.Tensor | None = None):
        super().__init__()
        self.schema = schema
        binary = [c for c, b in enumerate(schema.binary_columns) if b]
        self.register_buffer("binary_cols", torch.tensor(binary, dtype=torch.long), persistent=False)
        attr_of_binary = [schema.column_attribute[c] for c in binary]
        self.register_buffer("binary_attrs", torch.tensor(attr_of_binary, dtype=torch.long), persistent=False)
        self.categorical = [(i, sl) for i, (a, sl) in enumerate(zip(schema.attributes, schema.slices))
                            if a.kind == "categorical"]
        c = schema.num_columns
        pw = torch.ones(c) if pos_weight is None else pos_weight.float()
        nw = torch.ones(c) if neg_weight is None else neg_weight.float()
        self.register_buffer("pos_weight", pw[binary].clone(), persistent=False)
        self.register_buffer("neg_weight", nw[binary].clone(), persistent=False)
        self.weighted = pos_weight is not None or neg_weight is not None

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, a = logits.shape[0], len(self.schema.attributes)
        logits = logits.float()
        losses = logits.new_zeros(n, a)
        mask = torch.zeros(n, a, dtype=torch.bool, device=logits.device)
        if self.binary_cols.numel():
            lg = logits.index_select(1, self.binary_cols)
            y = labels.index_select(1, self.binary_cols)
            valid = ~torch.isnan(y)
            y0 = torch.where(valid, y, torch.zeros_like(y))
            per = F.binary_cross_entropy_with_logits(lg, y0, reduction="none")
            if self.weighted:
                per = per * (y0 * self.pos_weight + (1 - y0) * self.neg_weight)
            per = torch.where(valid, per, torch.zeros_like(per))
            losses.index_copy_(1, self.binary_attrs, per)
            mask.index_copy_(1, self.binary_attrs, valid)
        for i, sl in self.categorical:
            y = labels[:, sl]
            valid = ~torch.isnan(y).any(1) & (y.nan_to_num(0).sum(1) > 0)
            target = y.nan_to_num(0).argmax(1)
            per = F.cross_entropy(logits[:, sl], target, reduction="none")
            losses[:, i] = torch.where(valid, per, torch.zeros_like(per))
            mask[:, i] = valid
        return losses, mask


def task_means(losses: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss of every task over its labelled samples ``[A]``, and whether it had any."""
    count = mask.sum(0)
    return losses.sum(0) / count.clamp(min=1), count > 0
