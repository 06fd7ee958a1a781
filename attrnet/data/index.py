"""A whole dataset as read from disk (numpy only: summaries and splits without torch)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.schema import Schema
from attrnet.data.labels import positive_rate

if TYPE_CHECKING:
    from attrnet.data.base import AttributeDataset

__all__ = ["Index", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass
class Index:
    """A whole dataset as read from disk: every image with its split and labels."""

    schema: Schema
    format: str
    root: Path
    paths: list[Path]
    splits: np.ndarray  # str per image: "train" | "val" | "test"
    labels: np.ndarray  # float32 [n, num_columns]: 1, 0, NaN

    def positive_rate(self) -> np.ndarray:
        """Per column: positives / labelled images, NaN where none is labelled."""
        return positive_rate(self.labels)

    def counts(self) -> dict[str, int]:
        return {s: int(np.count_nonzero(self.splits == s)) for s in SPLITS}

    def summary(self) -> dict[str, Any]:
        """Format, images per split, attributes, output columns and positive rate per column
        (4 decimals; None where no image is labelled), as `attrnet data info` prints it."""
        rates = self.positive_rate()
        return {
            "format": self.format,
            "splits": self.counts(),
            "attributes": self.schema.names,
            "outputs": self.schema.columns,
            "positive_rate": {c: (None if math.isnan(r) else round(float(r), 4))
                              for c, r in zip(self.schema.columns, rates)},
        }

    def subset(
        self,
        split: str,
        transform: Callable[[np.ndarray], Any] | None = None,
        reduce_to: tuple[int, int] | None = None,
    ) -> "AttributeDataset":
        from attrnet.data.base import AttributeDataset

        if split not in SPLITS:
            raise InputError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
        keep = np.flatnonzero(self.splits == split)
        paths = [self.paths[i] for i in keep]
        labels = np.ascontiguousarray(self.labels[keep], dtype=np.float32).reshape(len(keep), self.schema.num_columns)
        return AttributeDataset(self.schema, self.format, split, self.root, paths, labels, transform, reduce_to)
