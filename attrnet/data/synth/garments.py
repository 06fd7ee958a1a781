"""Procedural garments for the DeepFashion attribute format: 33 attributes of the five DeepFashion types."""
from __future__ import annotations

import numpy as np

from attrnet.data.synth.common import Pen, Spec, exclusive, finish, jitter, sample_binary, sample_latents
from attrnet.data.synth.visibility import changed, degrade, degrade_masked

__all__ = ["CATEGORIES", "SPECS", "TYPES", "render", "sample_labels"]

# DeepFashion attribute types: 1 texture, 2 fabric, 3 shape, 4 part, 5 style (the planted groups)
SPECS = [
    Spec("floral", "texture", 0.12, 0.8), Spec("striped", "texture", 0.15, -0.6), Spec("polka dot", "texture", 0.1, 0.7),
    Spec("plaid", "texture", 0.1, -0.8), Spec("graphic print", "texture", 0.1, -0.5), Spec("colorblock", "texture", 0.12, -0.7),
    Spec("denim", "fabric", 0.12, -0.9), Spec("leather", "fabric", 0.1, -0.8), Spec("lace", "fabric", 0.1, 0.8),
    Spec("knit", "fabric", 0.12, -0.4), Spec("chiffon", "fabric", 0.15, 0.9), Spec("sequin", "fabric", 0.1, 0.6),
    Spec("a-line", "shape", 0.2, 0.8), Spec("bodycon", "shape", 0.12, -0.4), Spec("maxi", "shape", 0.15, 0.9),
    Spec("mini", "shape", 0.25, -0.3), Spec("sleeveless", "shape", 0.3, 0.7), Spec("long sleeve", "shape", 0.3, -0.8),
    Spec("cropped", "shape", 0.1, -0.5), Spec("peplum", "shape", 0.1, 0.5),
    Spec("v-neck", "part", 0.25, 0.7), Spec("crew neck", "part", 0.3, -0.7), Spec("hooded", "part", 0.1, -0.9),
    Spec("pocket", "part", 0.15, -0.8), Spec("button", "part", 0.18, -0.4), Spec("zipper", "part", 0.1, -0.9),
    Spec("collar", "part", 0.12, 0.3), Spec("belted", "part", 0.1, 0.5),
    Spec("boho", "style", 0.1, 0.7), Spec("sporty", "style", 0.1, -0.9), Spec("summer", "style", 0.3, 0.8),
    Spec("party", "style", 0.15, 0.6), Spec("casual", "style", 0.35, -0.8),
]
TYPES = {"texture": 1, "fabric": 2, "shape": 3, "part": 4, "style": 5}
CATEGORIES = (("Tee", 1), ("Dress", 3))
DRESS_ONLY = ("a-line", "bodycon", "maxi", "mini")
TOP_ONLY = ("cropped", "peplum")


def sample_labels(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(true attributes, annotated labels (exact), category index: 0 Tee, 1 Dress)."""
    latents = sample_latents(rng, list(TYPES), n)
    s = sample_binary(rng, SPECS, latents)
    exclusive(s, ["floral", "striped", "polka dot", "plaid", "graphic print"])
    exclusive(s, ["denim", "leather", "lace", "knit", "chiffon", "sequin"])
    for pair in (["a-line", "bodycon"], ["maxi", "mini"], ["sleeveless", "long sleeve"], ["v-neck", "crew neck"], ["hooded", "collar"]):
        exclusive(s, pair)
    truth = {k: v > 0 for k, v in s.items()}
    dress = np.zeros(n, bool)
    for k in DRESS_ONLY:
        dress |= truth[k]
    dress |= ~dress & (rng.random(n) < 0.25)
    for k in TOP_ONLY:
        truth[k] &= ~dress
    truth["hooded"] &= ~dress
    return truth, {k: v.copy() for k, v in truth.items()}, dress.astype(np.int64)


def _outline(pen: Pen, a: dict[str, bool], dress: bool) -> None:
    """Garment silhouette drawn with colour 255 on a mask."""
    white = (255, 255, 255)
    hem = 34 if a["cropped"] else 45
    if dress:
        hem = 61 if a["maxi"] else 38 if a["mini"] else 50
        flare = 15 if a["a-line"] else 6 if a["bodycon"] else 10
        pen.poly([(22, 10), (42, 10), (41, 28), (32 + flare, hem), (32 - flare, hem), (23, 28)], white)
    else:
        pen.poly([(20, 10), (44, 10), (43, hem), (21, hem)], white)
        if a["peplum"]:
            pen.poly([(21, 34), (43, 34), (48, 44), (16, 44)], white)
    if not a["sleeveless"]:
        end = 44 if a["long sleeve"] else 21
        for side in (-1, 1):
            x = 32 + side * 11
            pen.poly([(x, 10), (x + side * 6, 12), (x + side * 9, end), (x + side * 3, end)], white)


def _fabric(img: np.ndarray, pen: Pen, a: dict[str, bool], rng: np.random.Generator, base) -> None:
    """The cloth itself over the whole frame: its colour and weave."""
    img[:] = base.astype(np.uint8)
    if a["denim"]:
        for x in range(-64, 64, 3):
            pen.line((x, 0), (x + 64, 64), base * 0.7, 0.8)
    if a["knit"]:
        for x in range(0, 64, 2):
            pen.line((x, 0), (x, 64), base * 0.65, 0.6)
    if a["leather"]:
        pen.line((18, 0), (46, 64), np.minimum(base + 90, 255), 4)
    if a["lace"]:
        for y in range(2, 64, 4):
            for x in range(2 + (y // 4) % 2 * 2, 64, 4):
                pen.circle((x, y), 1.0, base * 0.5)
    if a["sequin"]:
        for x, y in rng.uniform(0, 64, (50, 2)):
            pen.circle((x, y), 0.8, (255, 250, 210))


def _pattern(pen: Pen, a: dict[str, bool], rng: np.random.Generator, base, second) -> None:
    """The printed pattern, over the cloth."""
    if a["striped"]:
        for y in range(0, 64, 6):
            pen.rect((0, y), (64, y + 2.5), second)
    if a["polka dot"]:
        for y in range(3, 64, 7):
            for x in range(3 + (y // 7) % 2 * 3, 64, 7):
                pen.circle((x, y), 2, second)
    if a["plaid"]:
        for k in range(0, 64, 8):
            pen.rect((k, 0), (k + 2, 64), second)
            pen.rect((0, k), (64, k + 2), second * 0.7)
    if a["floral"]:
        for x, y in zip(rng.uniform(18, 46, 12), rng.uniform(10, 56, 12)):
            for ang in range(0, 360, 72):
                pen.circle((x + 2 * np.cos(np.radians(ang)), y + 2 * np.sin(np.radians(ang))), 1.4, second)
            pen.circle((x, y), 1.0, (250, 220, 60))
    if a["colorblock"]:
        pen.rect((0, 30), (64, 64), second * 0.85 + 30)
    if a["graphic print"]:
        pen.circle((32, 22), 6, second)
        pen.poly([(32, 16), (37, 26), (27, 26)], base)


def _parts(pen: Pen, a: dict[str, bool], base, skin) -> None:
    if a["hooded"]:
        pen.ellipse((32, 8), (8.5, 6.5), base * 0.7)
    if a["v-neck"]:
        pen.poly([(27, 10), (37, 10), (32, 19)], skin)
    elif a["crew neck"]:
        pen.ellipse((32, 10), (4.5, 3), skin, start=0, end=180)
        pen.ellipse((32, 10), (5, 3.5), base * 0.5, start=0, end=180, thickness=1.2)
    if a["collar"]:
        pen.poly([(25, 10), (32, 11), (27.5, 16)], (245, 245, 245))
        pen.poly([(39, 10), (32, 11), (36.5, 16)], (245, 245, 245))
    if a["button"]:
        for y in (15, 20, 25, 30):
            pen.circle((32, y), 1.3, (240, 235, 200))
    if a["zipper"]:
        pen.line((32.5, 11), (32.5, 33), (200, 200, 205), 1.2)
        for y in range(12, 33, 2):
            pen.line((31, y), (34, y), (150, 150, 155), 0.6)
    if a["pocket"]:
        for x in (23, 36):
            pen.rect((x, 29), (x + 6, 35), base * 0.45, thickness=1.2)
    if a["belted"]:
        pen.rect((22, 26.5), (42, 29.5), (40, 30, 25))


def _style(pen: Pen, a: dict[str, bool], base, hem: float) -> None:
    if a["sporty"]:
        for x in (21.5, 42.5):
            pen.line((x, 11), (x, 33), (245, 245, 245), 1.4)
    if a["party"]:
        pen.poly([(32, 12), (27, 9.5), (27, 14.5)], (210, 30, 60))
        pen.poly([(32, 12), (37, 9.5), (37, 14.5)], (210, 30, 60))
    if a["boho"]:
        for x in range(24, 41, 2):
            pen.line((x, hem - 1), (x, hem + 3.5), base * 0.5, 0.7)
    if a["summer"]:
        pen.circle((7, 7), 3.5, (250, 205, 30))
        for ang in range(0, 360, 45):
            c, d = np.cos(np.radians(ang)), np.sin(np.radians(ang))
            pen.line((7 + 4.5 * c, 7 + 4.5 * d), (7 + 6.5 * c, 7 + 6.5 * d), (250, 205, 30), 0.8)
    if a["casual"]:
        pen.rect((52, 3), (60, 9), (60, 150, 70))


def _hem(a: dict[str, bool], dress: bool) -> float:
    if dress:
        return 61 if a["maxi"] else 38 if a["mini"] else 50
    return 34 if a["cropped"] else 45


def _colors(a: dict[str, bool], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The cloth's colour (set by the fabric) and a contrasting print colour."""
    base = rng.uniform(30, 170, 3)
    if a["denim"]:
        base = jitter(rng, (55, 85, 140), 12)
    elif a["leather"]:
        base = jitter(rng, (45, 30, 25), 10)
    elif a["lace"]:
        base = jitter(rng, (235, 230, 220), 8)
    second = 255 - base if np.abs(255 - 2 * base).mean() > 60 else np.clip(base + 110, 0, 255)
    return base, second


def render(a: dict[str, bool], dress: bool, visibility: dict[str, float], rng: np.random.Generator,
           height: int, width: int) -> np.ndarray:
    """One garment on a plain light background as RGB uint8.

    Each group is one feature, degraded by its visibility right after it is drawn: fabric (the
    cloth), texture (the print), shape (the silhouette mask), part and style (the pixels they draw).
    """
    base, second = _colors(a, rng)
    vis = {g: visibility.get(g, 1.0) for g in TYPES}
    cloth = np.empty((height, width, 3), np.uint8)
    _fabric(cloth, Pen(cloth), a, rng, base)
    degrade(cloth, [(0, 0, width, height)], vis["fabric"], rng)
    plain = cloth.copy()
    _pattern(Pen(cloth), a, rng, base, second)
    degrade_masked(cloth, changed(plain, cloth), vis["texture"], rng)
    mask = np.zeros((height, width, 3), np.uint8)
    _outline(Pen(mask), a, dress)
    degrade(mask, [(0, 0, width, height)], vis["shape"], rng)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = rng.uniform(200, 250, 3).astype(np.uint8)
    alpha = (mask.astype(np.float32) / 255.0) * (0.55 if a["chiffon"] else 1.0)
    img = (img * (1 - alpha) + cloth * alpha).astype(np.uint8)
    pen = Pen(img)
    for group, draw in (("part", lambda: _parts(pen, a, base, jitter(rng, (215, 170, 140), 20))),
                        ("style", lambda: _style(pen, a, base, _hem(a, dress)))):
        before = img.copy()
        draw()
        degrade_masked(img, changed(before, img), vis[group], rng)
    return finish(img, rng, noise=3.0)
