"""Per-group visibility: one shared visual cause that makes all of a planted group's attributes hard at once.

Every image gets, for every planted group, a visibility in [0, 1] (1: drawn
cleanly). After a group's region is drawn, `degrade` lowers its visibility
with one of four effects, chosen per image and group: blur, contrast pulled
toward the region's mean, an occluding patch, or the region drawn smaller.
The lower the visibility, the stronger the effect. How often and how strongly
groups are degraded is the difficulty level (`LEVELS`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from attrnet.core.errors import InputError

__all__ = ["Box", "Difficulty", "LEVELS", "MODES", "changed", "degrade", "degrade_masked", "difficulty_of",
           "sample_visibility"]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the image
MODES = ("blur", "contrast", "occlude", "shrink")


@dataclass(frozen=True)
class Difficulty:
    """Share of (image, group) pairs degraded, and the visibility range those get."""

    share: float
    low: float
    high: float


LEVELS = {
    "none": Difficulty(0.0, 1.0, 1.0),
    "easy": Difficulty(0.1, 0.5, 0.9),
    "default": Difficulty(0.25, 0.15, 0.7),
    "hard": Difficulty(0.45, 0.0, 0.5),
}


def difficulty_of(name: str) -> Difficulty:
    """The named level, or an InputError naming --difficulty and the choices."""
    if name not in LEVELS:
        raise InputError(f"unknown --difficulty {name!r} (choose from {', '.join(LEVELS)})")
    return LEVELS[name]


def sample_visibility(rng: np.random.Generator, groups: list[str], n: int, level: Difficulty) -> dict[str, np.ndarray]:
    """Visibility per group and image, drawn independently: 1.0, or uniform in the level's range."""
    out = {}
    for g in groups:
        hit = rng.random(n) < level.share
        value = rng.uniform(level.low, level.high, n)
        out[g] = np.where(hit, np.round(value, 3), 1.0)
    return out


def degrade(img: np.ndarray, boxes: list[Box], visibility: float, rng: np.random.Generator,
            mode: str | None = None) -> None:
    """Lower the visibility of the group's region (`boxes`, in pixels) in place; nothing when visibility is 1.

    One effect (`mode`, one of MODES; drawn from `rng` when None) is applied to every box of the region.
    """
    if visibility >= 1.0:
        return
    h, w = img.shape[:2]
    effect = _EFFECTS[mode or MODES[int(rng.integers(len(MODES)))]]
    strength = 1.0 - max(0.0, visibility)
    for box in boxes:
        x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
        x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            region = img[y0:y1, x0:x1]
            region[:] = effect(region, strength, rng)


def degrade_masked(img: np.ndarray, mask: np.ndarray, visibility: float, rng: np.random.Generator) -> None:
    """Lower the visibility of the pixels under `mask` (H x W, 0..1) only, in place: a feature, not a box."""
    if visibility >= 1.0 or not mask.any():
        return
    h, w = img.shape[:2]
    done = img.copy()
    degrade(done, [(0, 0, w, h)], visibility, rng)
    alpha = mask.astype(np.float32)[..., None]
    img[:] = np.clip(img * (1.0 - alpha) + done * alpha, 0, 255).astype(np.uint8)


def changed(before: np.ndarray, after: np.ndarray, grow: int = 1) -> np.ndarray:
    """Mask of the pixels that drawing changed, grown by `grow` pixels (what `degrade_masked` takes)."""
    mask = (before != after).any(axis=-1).astype(np.uint8)
    if grow > 0:
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return mask.astype(np.float32)


def _blur(region: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 0.3 + 0.09 * min(region.shape[:2]) * strength
    return cv2.GaussianBlur(region, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _contrast(region: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    mean = region.reshape(-1, 3).mean(axis=0)
    keep = 1.0 - 0.95 * strength
    return np.clip(mean + keep * (region.astype(np.float32) - mean), 0, 255).astype(np.uint8)


def _occlude(region: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = region.shape[:2]
    out = region.copy()
    cover = max(1, int(round(w * min(1.0, 1.1 * strength))))
    x = int(rng.integers(0, w - cover + 1))
    out[:, x:x + cover] = np.clip(rng.uniform(60, 200, 3), 0, 255).astype(np.uint8)
    return out


def _shrink(region: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    h, w = region.shape[:2]
    k = 1.0 - 0.75 * strength
    sh, sw = max(1, int(round(h * k))), max(1, int(round(w * k)))
    out = np.empty_like(region)
    border = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    out[:] = border.mean(axis=0).astype(np.uint8)  # the surroundings, so a shrunk mask stays a mask
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y:y + sh, x:x + sw] = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)
    return out


_EFFECTS = {"blur": _blur, "contrast": _contrast, "occlude": _occlude, "shrink": _shrink}
