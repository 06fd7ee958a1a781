"""Training input pipeline: resize as at serving time, augment deterministically, shard for DDP.

Images are resized with `attrnet.core.imageio.resize_to_spec` (the same function
the serving path uses), then augmented with a random generator derived from
(seed, epoch, sample index): the same sample gets the same crop and flip
whatever the number of workers, and a resumed run sees exactly the batches
an uninterrupted run would. Batches are uint8 ``[N, 3, H, W]``; normalisation
happens on the device (`normalise`).
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec

__all__ = ["augment", "batches_per_epoch", "EpochSampler", "EvalView", "make_loader", "normalise",
           "read_or_blank", "Resize", "skipped_rows", "TrainView"]


class Resize:
    """Picklable transform: decoded RGB uint8 HxWx3 -> the model's input size."""

    def __init__(self, spec: InputSpec):
        self.spec = spec

    def __call__(self, img: np.ndarray) -> np.ndarray:
        from attrnet.core.imageio import resize_to_spec

        return resize_to_spec(img, self.spec)


def read_or_blank(base: Any, i: int) -> tuple[np.ndarray, torch.Tensor]:
    """`base[i]`; an unreadable image becomes a blank image whose labels are all missing.

    Missing labels are masked out of the loss and the metrics, so the sample is
    skipped; the trainer counts such rows (`skipped_rows`) and stops when too many.
    """
    try:
        return base[i]
    except InputError as exc:
        sys.stderr.write(f"attrnet: skipping unreadable image: {exc}\n")
        spec = base.transform.spec
        return (np.zeros((spec.height, spec.width, 3), np.uint8),
                torch.full((base.labels.shape[1],), float("nan")))


def skipped_rows(labels: torch.Tensor) -> int:
    """Rows of a label batch with every label missing (unreadable images, see `read_or_blank`)."""
    return int(torch.isnan(labels).all(dim=1).sum())


def augment(img: np.ndarray, rng: np.random.Generator, crop_fraction: float, flip: bool = True) -> np.ndarray:
    """Horizontal flip (p=0.5) and a random crop of the image padded by `crop_fraction` per side."""
    h, w = img.shape[:2]
    if flip and rng.random() < 0.5:
        img = img[:, ::-1]
    ph, pw = int(round(h * crop_fraction)), int(round(w * crop_fraction))
    if ph or pw:
        padded = np.pad(img, ((ph, ph), (pw, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
        y, x = int(rng.integers(0, 2 * ph + 1)), int(rng.integers(0, 2 * pw + 1))
        img = padded[y:y + h, x:x + w]
    return img


class TrainView(Dataset):
    """A dataset (transform = `Resize`) seen through deterministic per-sample augmentation."""

    def __init__(self, base: Dataset, seed: int, enabled: bool = True, crop_fraction: float = 0.0625):
        self.base, self.seed, self.enabled, self.crop_fraction = base, seed, enabled, crop_fraction
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, labels = read_or_blank(self.base, i)
        if self.enabled:
            rng = np.random.default_rng((self.seed, self.epoch, int(i)))
            img = augment(img, rng, self.crop_fraction)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), labels


class EvalView(Dataset):
    """A resized dataset as uint8 ``[3, H, W]`` tensors, no augmentation."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, labels = read_or_blank(self.base, i)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), labels


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch (or several, to reach `length`), sharded over ranks.

    Rank r takes positions r, r+W, ... of the (padded) order, so ranks see
    distinct samples and the same number of them.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, length: int | None = None,
                 shuffle: bool = True, stream: int = 0):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.length = length if length is not None else n
        self.shuffle, self.stream = shuffle, stream
        self.epoch = 0

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + self.stream) % (2 ** 63))
        total = -(-self.length // self.world) * self.world
        parts, have = [], 0
        while have < total:
            p = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
            parts.append(p)
            have += self.n
        return torch.cat(parts)[:total].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.rank::self.world])

    def __len__(self) -> int:
        return -(-self.length // self.world)


def batches_per_epoch(n: int, batch_size: int, world: int) -> tuple[int, bool]:
    """Steps per epoch on each rank, and whether to drop the last short batch (only when every rank gets a full one)."""
    drop_last = n >= batch_size * world
    per_rank = -(-n // world)
    return (per_rank // batch_size if drop_last else -(-per_rank // batch_size)), drop_last


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler[int] | None, workers: int,
                drop_last: bool = False, pin: bool = False) -> DataLoader:
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs["prefetch_factor"] = 4
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, pin_memory=pin, **kwargs)


def normalise(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` -> float, scaled to [0, 1] and standardised with the spec's mean/std."""
    mean = torch.tensor(spec.mean, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std
