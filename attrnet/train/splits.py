"""A run's training and validation splits: the dataset's own, or validation held out of train."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.schema import Schema
from attrnet.data import load_index
from attrnet.data.base import AttributeDataset
from attrnet.train.config import TrainConfig
from attrnet.train.data import Resize

__all__ = ["Splits", "hold_out", "load_splits"]


@dataclass
class Splits:
    """The dataset's schema, its training split and its validation split (None without one)."""

    schema: Schema
    train: AttributeDataset
    val: AttributeDataset | None


def hold_out(dataset: AttributeDataset, fraction: float, seed: int) -> tuple[AttributeDataset, AttributeDataset]:
    """Split a seeded random `fraction` of a dataset off as its validation part."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_val = max(1, int(round(len(dataset) * fraction)))
    parts = []
    for name, idx in (("train", np.sort(order[n_val:])), ("val", np.sort(order[:n_val]))):
        parts.append(AttributeDataset(dataset.schema, dataset.format, name, dataset.root,
                                      [dataset.paths[i] for i in idx], dataset.labels[idx], dataset.transform))
    return parts[0], parts[1]


def load_splits(config: TrainConfig, spec: InputSpec, log: Callable[[str], None]) -> Splits:
    """``config.data``'s train and val splits, resized to `spec`.

    Without a val split, ``config.val_fraction`` of train (at least 10 images)
    is held out; with neither, thresholds stay 0.5 and the best checkpoint is
    chosen by training loss. AWMT needs a validation split.
    """
    index = load_index(config.data)
    resize = Resize(spec)
    train = index.subset("train", resize)
    if len(train) == 0:
        raise InputError("the dataset has no training images", config.data)
    val = index.subset("val", resize)
    splits = Splits(index.schema, train, val if len(val) else None)
    if splits.val is None and config.val_fraction > 0 and len(train) >= 10:
        splits.train, splits.val = hold_out(train, config.val_fraction, config.seed)
        log(f"no validation split: holding out {len(splits.val)} training images for validation")
    if splits.val is None:
        log("no validation split: thresholds stay 0.5, best checkpoint by training loss")
    if config.weighting == "awmt" and splits.val is None:
        raise InputError("--weighting awmt needs a validation split", config.data)
    return splits
