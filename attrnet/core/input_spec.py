"""How images are fed to a model: size, resize mode and normalisation."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from attrnet.core.errors import InputError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "InputSpec", "parse_img_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    resize: Literal["stretch", "letterbox"] = "stretch"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return cls(int(d["height"]), int(d["width"]), d.get("resize", "stretch"),
                   tuple(d.get("mean", IMAGENET_MEAN)), tuple(d.get("std", IMAGENET_STD)))


def parse_img_size(text: str) -> tuple[int, int]:
    """Parse ``S`` or ``HxW`` into (height, width)."""
    t = text.strip().lower()
    try:
        if "x" in t:
            h, w = (int(p) for p in t.split("x", 1))
        else:
            h = w = int(t)
    except ValueError:
        raise InputError(f"--img-size takes S or HxW, got {text!r}") from None
    if h < 8 or w < 8 or h > 4096 or w > 4096:
        raise InputError(f"--img-size out of range (8..4096): {text!r}")
    return h, w
