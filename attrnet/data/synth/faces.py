"""Schematic faces with CelebA's 40 attributes (64 x 64 by default).

Every planted group owns one region of the picture and all of its attributes
are drawn there, large and high-contrast: hair (top band), eyes, face (nose,
cheeks, face shape), mouth, beard (chin band), accessories (bottom band),
person (the two side columns); Blurry blurs the whole picture. Each region is
degraded by its group's visibility right after it is drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attrnet.core.schema import CELEBA_ATTRIBUTES
from attrnet.data.synth.common import Pen, Spec, exclusive, finish, jitter, sample_binary, sample_latents
from attrnet.data.synth.visibility import degrade

__all__ = ["REGIONS", "SPECS", "render", "sample_labels"]

# name, planted group, positive rate, loading on the group latent
SPECS = [
    Spec("Bald", "hair", 0.12, -1.0), Spec("Bangs", "hair", 0.2, 0.8), Spec("Black_Hair", "hair", 0.3, -0.5),
    Spec("Blond_Hair", "hair", 0.2, 1.0), Spec("Brown_Hair", "hair", 0.25, 0.3), Spec("Gray_Hair", "hair", 0.2, -1.0),
    Spec("Receding_Hairline", "hair", 0.16, -1.0), Spec("Straight_Hair", "hair", 0.3, 0.4), Spec("Wavy_Hair", "hair", 0.35, 0.9),
    Spec("Arched_Eyebrows", "eyes", 0.27, 1.0), Spec("Bags_Under_Eyes", "eyes", 0.2, -0.6),
    Spec("Bushy_Eyebrows", "eyes", 0.15, -0.8), Spec("Eyeglasses", "eyes", 0.12, -0.9), Spec("Narrow_Eyes", "eyes", 0.15, -0.5),
    Spec("Big_Lips", "mouth", 0.24, 0.7), Spec("Mouth_Slightly_Open", "mouth", 0.4, 0.9),
    Spec("Smiling", "mouth", 0.48, 1.2), Spec("Wearing_Lipstick", "mouth", 0.47, 0.8), Spec("High_Cheekbones", "mouth", 0.45, 1.0),
    Spec("5_o_Clock_Shadow", "beard", 0.15, 1.0), Spec("Goatee", "beard", 0.12, 1.2), Spec("Mustache", "beard", 0.12, 1.2),
    Spec("Sideburns", "beard", 0.13, 1.0), Spec("No_Beard", "beard", 0.7, -1.2),
    Spec("Chubby", "face", 0.12, 1.0), Spec("Double_Chin", "face", 0.12, 1.1), Spec("Oval_Face", "face", 0.28, -0.6),
    Spec("Pale_Skin", "face", 0.13, 0.3), Spec("Rosy_Cheeks", "face", 0.12, 0.4), Spec("Big_Nose", "face", 0.24, 0.6),
    Spec("Pointy_Nose", "face", 0.28, -0.6),
    Spec("Wearing_Earrings", "accessories", 0.19, 0.7), Spec("Wearing_Hat", "accessories", 0.12, 0.7),
    Spec("Wearing_Necklace", "accessories", 0.14, 0.7), Spec("Wearing_Necktie", "accessories", 0.12, 0.7),
    Spec("Male", "person", 0.42, 1.0), Spec("Young", "person", 0.7, -0.5),
    Spec("Attractive", "person", 0.5, -0.6), Spec("Heavy_Makeup", "person", 0.38, -1.2),
    Spec("Blurry", "image", 0.12, 0.0),
]
assert sorted(s.name for s in SPECS) == sorted(CELEBA_ATTRIBUTES)

# the region (boxes in the 64 x 64 frame) each planted group is drawn in; "image" is the whole picture
REGIONS = {
    "hair": [(10, 0, 54, 16)], "eyes": [(10, 16, 54, 28)], "face": [(10, 28, 54, 38)],
    "mouth": [(10, 38, 54, 48)], "beard": [(10, 48, 54, 55)], "accessories": [(0, 55, 64, 64)],
    "person": [(0, 0, 10, 56), (54, 0, 64, 56)],
}
HAIR_COLORS = {"Black_Hair": (25, 20, 18), "Blond_Hair": (240, 205, 90), "Brown_Hair": (125, 70, 30),
               "Gray_Hair": (175, 175, 180), "other": (30, 125, 120)}
SKIN_TONES = [(215, 165, 130), (190, 140, 105), (165, 115, 85), (135, 95, 65)]
PALE = (252, 246, 246)
BACKGROUNDS = [(150, 190, 230), (170, 215, 160), (225, 205, 160), (200, 175, 225), (120, 160, 200)]  # no grey
DARK = (35, 28, 24)
GOLD = (245, 200, 30)


@dataclass
class _Look:
    """Colours of one face, drawn from the image's generator."""

    skin: np.ndarray
    hair: np.ndarray
    shade: np.ndarray


def sample_labels(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(true attributes drawn in the image, annotated labels) as bool arrays; annotations are exact."""
    latents = sample_latents(rng, sorted({s.group for s in SPECS}), n)
    s = sample_binary(rng, SPECS, latents)
    exclusive(s, ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"])
    exclusive(s, ["Straight_Hair", "Wavy_Hair"])
    exclusive(s, ["Bangs", "Receding_Hairline"])
    truth = {k: v > 0 for k, v in s.items()}
    bald = truth["Bald"]
    for k in ("Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Straight_Hair", "Wavy_Hair", "Receding_Hairline"):
        truth[k] = truth[k] & ~bald
    truth["No_Beard"] = ~(truth["Goatee"] | truth["Mustache"] | truth["Sideburns"])  # derived: its Spec only names its group
    truth["Mouth_Slightly_Open"] |= truth["Smiling"] & (s["Mouth_Slightly_Open"] > -0.8)
    return truth, {k: v.copy() for k, v in truth.items()}


def render(a: dict[str, bool], visibility: dict[str, float], rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One face as RGB uint8 with the true attributes `a`, each group's region degraded by its visibility."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = jitter(rng, BACKGROUNDS[rng.integers(len(BACKGROUNDS))], 12).astype(np.uint8)
    pen = Pen(img)
    skin = jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 8)
    hair = jitter(rng, HAIR_COLORS[next((c for c in HAIR_COLORS if c != "other" and a[c]), "other")], 10)
    look = _Look(skin=skin, hair=hair, shade=skin * 0.5)
    for group, draw in _DRAW.items():
        draw(pen, a, look, rng)
        degrade(img, [pen.box(b) for b in REGIONS[group]], visibility.get(group, 1.0), rng)
    return finish(img, rng, noise=4.0, blur_sigma=1.2 * pen.sx if a["Blurry"] else 0.0)


def _hair(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    pen.rect((14, 10), (50, 16), look.skin)  # forehead
    if a["Bald"]:
        pen.ellipse((32, 16), (19, 14), look.skin, start=180, end=360)
        pen.ellipse((26, 7), (5, 2.5), np.minimum(look.skin + 60, 255))
        return
    pen.ellipse((32, 16), (21, 15), look.hair, start=180, end=360)
    streak = look.hair * 0.45
    if a["Straight_Hair"]:
        for x in range(16, 50, 5):
            pen.line((x, 3), (x, 15), streak, 2.0)
    if a["Wavy_Hair"]:
        for y in (5, 11):
            pen.poly([(x, y + 2.2 * (-1) ** (x // 3)) for x in range(14, 52, 3)], streak, closed=False, fill=False, thickness=2.0)
    if a["Bangs"]:
        pen.rect((14, 10), (50, 16), look.hair)
        for x in range(15, 50, 3):
            pen.line((x, 12), (x + 1, 16), streak, 0.8)
    else:
        pen.rect((18, 12), (46, 16), look.skin)
    if a["Receding_Hairline"]:
        for x in (19, 45):
            pen.ellipse((x, 10), (7, 7), look.skin)


def _eyes(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    pen.rect((12, 16), (52, 28), look.skin)
    for ex in (22, 42):
        brow = 3.5 if a["Bushy_Eyebrows"] else 1.3
        if a["Arched_Eyebrows"]:
            pen.ellipse((ex, 22.5), (5.5, 5), DARK, start=200, end=340, thickness=brow)
        else:
            pen.line((ex - 5, 18.5), (ex + 5, 18.5), DARK, brow)
        pen.ellipse((ex, 23), (5, 0.8 if a["Narrow_Eyes"] else 2.8), (250, 250, 250))
        pen.circle((ex, 23), 0.8 if a["Narrow_Eyes"] else 1.6, (20, 20, 30))
        if a["Bags_Under_Eyes"]:
            pen.ellipse((ex, 25.2), (4.5, 1.6), (90, 40, 70), start=0, end=180, thickness=1.6)
        if a["Eyeglasses"]:
            pen.rect((ex - 6.5, 19.5), (ex + 6.5, 27), (10, 10, 10), thickness=1.6)
    if a["Eyeglasses"]:
        pen.line((28.5, 22), (35.5, 22), (10, 10, 10), 1.6)


def _face(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    skin = jitter(rng, PALE, 4) if a["Pale_Skin"] else look.skin
    half = 22 if a["Chubby"] else 14
    if a["Oval_Face"]:
        pen.ellipse((32, 33), (half, 5.5), skin)
    else:
        pen.rect((32 - half, 28), (32 + half, 38), skin)
    if a["Rosy_Cheeks"]:
        for x in (22, 42):
            pen.circle((x, 32.5), 3.8, (255, 150, 185))
    if a["Double_Chin"]:
        for x0 in (18, 37):
            pen.line((x0, 36.3), (x0 + 9, 36.3), (90, 50, 40), 2.0)
    nose = 6.0 if a["Big_Nose"] else 1.8
    bottom = 37.8 if a["Pointy_Nose"] else 32.5
    pen.poly([(32, 28.5), (32 - nose, bottom), (32 + nose, bottom)], look.shade)


def _mouth(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    pen.rect((16, 38), (48, 48), look.skin)
    lips = jitter(rng, (215, 25, 55), 10) if a["Wearing_Lipstick"] else look.shade
    thick = 4.0 if a["Big_Lips"] else 2.0
    if a["Mouth_Slightly_Open"]:
        pen.ellipse((32, 43), (6, 3.5), (40, 8, 12))
    if a["Smiling"]:  # a wide grin that shows the teeth
        pen.ellipse((32, 41), (8, 4.5), (250, 250, 245), start=0, end=180)
        pen.ellipse((32, 40.5), (9, 5), lips, start=15, end=165, thickness=thick)
    else:
        pen.line((23, 43), (41, 43), lips, thick)
    if a["High_Cheekbones"]:
        for x in (19.5, 44.5):
            pen.ellipse((x, 41.5), (3.5, 3.5), (255, 225, 140))


def _beard(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    pen.rect((14, 48), (50, 55), look.skin)
    if a["5_o_Clock_Shadow"]:
        for y in np.arange(49, 55, 2.0):
            for x in np.arange(20 + (y % 4 == 1), 45, 2.5):
                pen.circle((x, y), 0.7, (70, 60, 55))
    if a["Mustache"]:
        pen.rect((23, 48.3), (41, 51.3), DARK)
    if a["Goatee"]:
        pen.ellipse((32, 52.8), (4.5, 2.4), DARK)
    if a["Sideburns"]:
        for x in (14, 45):
            pen.rect((x, 48), (x + 5, 55), DARK)


def _accessories(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    pen.rect((0, 55), (64, 64), rng.uniform(60, 150) + rng.uniform(-15, 15, 3))
    if a["Wearing_Hat"]:
        hat = jitter(rng, (240, 130, 20), 10)
        pen.rect((1, 61), (15, 64), hat)
        pen.rect((4, 56), (12, 61), hat)
    if a["Wearing_Necklace"]:
        pen.ellipse((24, 56), (6.5, 6), (245, 245, 255), start=0, end=180, thickness=2.5)
    if a["Wearing_Necktie"]:
        pen.poly([(35.5, 56), (42.5, 56), (44.5, 64), (33.5, 64)], jitter(rng, (30, 150, 50), 10))
    if a["Wearing_Earrings"]:
        for x in (51.5, 58.5):
            pen.circle((x, 60), 3, GOLD)


def _person(pen: Pen, a: dict[str, bool], look: _Look, rng: np.random.Generator) -> None:
    for mirror in (False, True):
        def at(x: float, y: float) -> tuple[float, float]:
            return (64 - x if mirror else x), y
        if a["Male"]:
            pen.rect(at(0.5, 9), at(3.5, 54), (40, 70, 205))
        if not a["Young"]:
            for y in range(10, 31, 4):
                pen.line(at(4.5, y), at(9.5, y), (45, 45, 45), 1.8)
        if a["Heavy_Makeup"]:
            pen.rect(at(5, 35), at(9.5, 54), (225, 50, 200))
        if a["Attractive"]:
            x, y = at(5, 4)
            pen.poly([(x, y - 4.5), (x + 5, y), (x, y + 4.5), (x - 5, y)], (40, 200, 225))


_DRAW = {"hair": _hair, "eyes": _eyes, "face": _face, "mouth": _mouth, "beard": _beard,
         "accessories": _accessories, "person": _person}
