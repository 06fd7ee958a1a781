"""Shared pieces of the procedural data generators: correlated labels and drawing helpers.

Labels: every planted group g has a latent z_g ~ N(0, 1); attribute a of the
group is positive when ``bias_a + load_a * z_g + e_a > 0`` (e_a ~ N(0, 1)),
with the bias chosen so the positive rate is `rate`. Attributes of one group
are therefore correlated (sign of `load`), groups are independent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

__all__ = ["Pen", "Spec", "categorical_choice", "encode_jpeg", "exclusive", "finish", "flip_labels",
           "groups_of", "jitter", "sample_binary", "sample_latents"]

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Spec:
    """One synthetic binary attribute: its group, positive rate and loading on the group latent."""

    name: str
    group: str
    rate: float
    load: float = 0.8


def groups_of(specs: list[Spec]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in specs:
        out.setdefault(s.group, []).append(s.name)
    return out


def sample_latents(rng: np.random.Generator, groups: list[str], n: int) -> dict[str, np.ndarray]:
    return {g: rng.standard_normal(n) for g in groups}


def sample_binary(rng: np.random.Generator, specs: list[Spec], latents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Score (logit) per attribute; positive where > 0."""
    out = {}
    for s in specs:
        z = latents[s.group]
        bias = _NORMAL.inv_cdf(s.rate) * math.sqrt(s.load * s.load + 1.0)
        out[s.name] = bias + s.load * z + rng.standard_normal(z.shape[0])
    return out


def exclusive(scores: dict[str, np.ndarray], names: list[str]) -> None:
    """At most one of `names` stays positive per sample: the highest score wins."""
    stack = np.stack([scores[n] for n in names], axis=1)
    best = stack.argmax(axis=1)
    for k, n in enumerate(names):
        scores[n] = np.where(best == k, scores[n], np.minimum(scores[n], -1e-3))


def categorical_choice(rng: np.random.Generator, z: np.ndarray, prior: list[float], loads: list[float]) -> np.ndarray:
    """Class index per sample with probabilities softmax(log prior + load * z)."""
    logits = np.log(np.asarray(prior))[None, :] + np.asarray(loads)[None, :] * z[:, None]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(z.shape[0])[:, None]
    return np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), len(prior) - 1)


class Pen:
    """Draws in a canonical coordinate frame (default 64 x 64) onto an image of any size."""

    def __init__(self, img: np.ndarray, base_w: float = 64.0, base_h: float = 64.0) -> None:
        self.img = img
        h, w = img.shape[:2]
        self.sx, self.sy = w / base_w, h / base_h

    def p(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * self.sx)), int(round(y * self.sy))

    def box(self, b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A canonical (x0, y0, x1, y1) box in pixels."""
        return b[0] * self.sx, b[1] * self.sy, b[2] * self.sx, b[3] * self.sy

    def t(self, k: float) -> int:
        return max(1, int(round(k * min(self.sx, self.sy))))

    def ellipse(self, c, axes, color, angle=0.0, start=0.0, end=360.0, thickness=-1.0) -> None:
        ax = (max(1, int(round(axes[0] * self.sx))), max(1, int(round(axes[1] * self.sy))))
        th = -1 if thickness < 0 else self.t(thickness)
        cv2.ellipse(self.img, self.p(*c), ax, angle, start, end, _c(color), th, cv2.LINE_AA)

    def circle(self, c, r, color, thickness=-1.0) -> None:
        th = -1 if thickness < 0 else self.t(thickness)
        cv2.circle(self.img, self.p(*c), max(1, int(round(r * min(self.sx, self.sy)))), _c(color), th, cv2.LINE_AA)

    def rect(self, a, b, color, thickness=-1.0) -> None:
        th = -1 if thickness < 0 else self.t(thickness)
        cv2.rectangle(self.img, self.p(*a), self.p(*b), _c(color), th)

    def line(self, a, b, color, thickness=1.0) -> None:
        cv2.line(self.img, self.p(*a), self.p(*b), _c(color), self.t(thickness), cv2.LINE_AA)

    def poly(self, points, color, closed=True, fill=True, thickness=1.0) -> None:
        pts = np.array([self.p(*q) for q in points], np.int32).reshape(-1, 1, 2)
        if fill:
            cv2.fillPoly(self.img, [pts], _c(color), cv2.LINE_AA)
        else:
            cv2.polylines(self.img, [pts], closed, _c(color), self.t(thickness), cv2.LINE_AA)


def _c(color) -> tuple[int, int, int]:
    return (int(color[0]), int(color[1]), int(color[2]))


def jitter(rng: np.random.Generator, rgb, amount: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def finish(img: np.ndarray, rng: np.random.Generator, noise: float = 5.0, blur_sigma: float = 0.0) -> np.ndarray:
    """Optional blur, then sensor noise."""
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    n = rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def flip_labels(rng: np.random.Generator, labels: dict[str, np.ndarray], names: list[str], fraction: float,
                rows: np.ndarray) -> None:
    """Flip each of `names`' annotations on `rows` (a bool mask: the training and validation images) with
    probability `fraction`, in place (the noisy-group variant; the test split keeps its true labels)."""
    for name in names:
        labels[name] = labels[name] ^ ((rng.random(labels[name].shape[0]) < fraction) & rows)
