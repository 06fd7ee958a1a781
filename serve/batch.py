"""One batch on its way through the predict pipeline, the run's counters, and error rows' text."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.imageio import decode_image, resize_to_spec
from attrnet.core.input_spec import InputSpec
from attrnet.serve.sources import Item

__all__ = ["Batch", "Stats", "describe_error"]


@dataclass
class Stats:
    """Counters of one run: images, errors and where the time went."""

    images: int = 0
    errors: int = 0
    decode_seconds: float = 0.0  # summed over decode threads
    model_seconds: float = 0.0  # the caller's thread inside the backend
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None  # set when the run ends

    @property
    def wall_seconds(self) -> float:
        return (self.finished if self.finished is not None else time.perf_counter()) - self.started

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.wall_seconds, 1e-9)


@dataclass
class Batch:
    """Items of one batch and their pixels.

    `images[k]` (decoded on the CPU) belongs to `items[cpu_rows[k]]`;
    `blobs[k]` (JPEG bytes for nvjpeg) to `items[blob_rows[k]]`; failed items
    carry `errors[i]`. The model's output rows follow `rows`.
    """

    items: list[Item]
    errors: list[str | None]
    cpu_rows: list[int]
    images: np.ndarray
    blob_rows: list[int] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)

    @property
    def rows(self) -> list[int]:
        return sorted(self.cpu_rows + self.blob_rows) if self.blob_rows else self.cpu_rows

    def decode_blobs_on_cpu(self, spec: InputSpec) -> None:
        """Fallback when nvjpeg rejects the batch: decode its blobs here (bad ones become errors)."""
        decoded = dict(zip(self.cpu_rows, self.images))
        for row, blob in zip(self.blob_rows, self.blobs):
            try:
                decoded[row] = resize_to_spec(decode_image(blob, reduce_to=(spec.height, spec.width)), spec)
            except Exception as exc:  # noqa: BLE001 - one bad file is one error row
                self.errors[row] = describe_error(exc)
        self.cpu_rows = sorted(decoded)
        self.images = np.stack([decoded[r] for r in self.cpu_rows]) if decoded else self.images[:0]
        self.blob_rows, self.blobs = [], []


def describe_error(exc: BaseException) -> str:
    """The one-line text of an error row: an InputError's reason, else the exception's type and first line."""
    if isinstance(exc, InputError):
        return exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
