"""`AttributeDataset`: the torch dataset every loader returns."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from attrnet.core.imageio import decode_image
from attrnet.core.schema import Schema
from attrnet.data.labels import positive_rate

__all__ = ["AttributeDataset"]


class AttributeDataset(Dataset):
    """Images and label vectors (1, 0, NaN = missing) over the schema's output columns.

    ``ds[i]`` is ``(image, labels)``: the image is ``transform(rgb uint8 HxWx3)``
    when a transform is given, else a uint8 tensor ``[3, H, W]``; labels are a
    float32 tensor ``[num_columns]``. A categorical attribute is one-hot over
    its columns, all NaN when missing. Setting ``reduce_to = (h, w)`` (the
    model's input size) lets large JPEGs decode at 1/2, 1/4 or 1/8 scale; the
    transform still does the final resize.
    """

    def __init__(
        self,
        schema: Schema,
        format: str,
        split: str,
        root: Path,
        paths: list[Path],
        labels: np.ndarray,
        transform: Callable[[np.ndarray], Any] | None = None,
        reduce_to: tuple[int, int] | None = None,
    ) -> None:
        if labels.shape != (len(paths), schema.num_columns):
            raise ValueError(f"labels shape {labels.shape} does not match {len(paths)} images x {schema.num_columns} columns")
        self.schema = schema
        self.format = format
        self.split = split
        self.root = root
        self.paths = paths
        self.labels = labels
        self.transform = transform
        self.reduce_to = reduce_to

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        img = decode_image(self.paths[i], reduce_to=self.reduce_to)
        if self.transform is not None:
            image = self.transform(img)
        else:
            image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return image, torch.from_numpy(self.labels[i].copy())

    def positive_rate(self) -> np.ndarray:
        """Fraction of labelled samples that are positive, per column (NaN where none is labelled)."""
        return positive_rate(self.labels)

    def __repr__(self) -> str:
        return f"AttributeDataset({self.format}, split={self.split}, n={len(self)}, columns={self.schema.num_columns})"
