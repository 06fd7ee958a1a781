"""Procedural pedestrians for the Market-1501 and DukeMTMC-reID attribute formats (128 x 64 by default).

Labels are per identity, as in the real annotations; every identity is drawn
several times (different background, position, scale, mirroring).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attrnet.data.synth.common import (
    Pen, Spec, add_label_noise, categorical_choice, finish, jitter, sample_binary, sample_latents,
)
from attrnet.core.schema import DUKE_DOWN_COLORS, DUKE_UP_COLORS, MARKET_AGES, MARKET_DOWN_COLORS, MARKET_UP_COLORS

COLORS = {
    "black": (25, 25, 28), "white": (232, 232, 228), "red": (200, 35, 35), "purple": (120, 45, 150),
    "yellow": (230, 205, 45), "gray": (125, 125, 125), "blue": (40, 75, 200), "green": (40, 150, 65),
    "pink": (240, 150, 185), "brown": (115, 72, 35),
}
SKIN = [(224, 180, 150), (195, 145, 110), (150, 100, 70), (105, 70, 50)]

MARKET_SPECS = [
    Spec("backpack", "carry", 0.25, 0.8), Spec("bag", "carry", 0.23, -0.6), Spec("handbag", "carry", 0.12, -0.6, 0.03),
    Spec("up", "upper", 0.6, 0.9),
    Spec("clothes", "lower", 0.85, -0.7), Spec("down", "lower", 0.3, 0.8),
    Spec("hair", "person", 0.35, 1.0, 0.03), Spec("hat", "person", 0.05, -0.5), Spec("gender", "person", 0.45, 1.2, 0.02),
]
MARKET_GROUPS = {"carry": ["backpack", "bag", "handbag"], "upper": ["up", "upcolor"],
                 "lower": ["clothes", "down", "downcolor"], "person": ["hair", "hat", "gender", "age"]}
DUKE_SPECS = [
    Spec("backpack", "carry", 0.4, 0.8), Spec("bag", "carry", 0.15, -0.6), Spec("handbag", "carry", 0.07, -0.6, 0.03),
    Spec("top", "upper", 0.15, 0.9),
    Spec("boots", "lower", 0.22, 0.8), Spec("shoes", "lower", 0.12, -0.7, 0.03),
    Spec("gender", "person", 0.35, 1.0, 0.02), Spec("hat", "person", 0.13, -0.6),
]
DUKE_GROUPS = {"carry": ["backpack", "bag", "handbag"], "upper": ["top", "upcolor"],
               "lower": ["boots", "shoes", "downcolor"], "person": ["gender", "hat"]}
# colour priors and loadings on the group latent (so colour correlates with the group's binary attributes)
MARKET_UP = ([0.25, 0.2, 0.1, 0.05, 0.07, 0.13, 0.12, 0.08], [-0.6, 0.5, 0.5, 0.2, 0.6, -0.3, 0.0, 0.2])
MARKET_DOWN = ([0.38, 0.06, 0.04, 0.03, 0.03, 0.15, 0.23, 0.03, 0.05], [-0.4, 0.6, 0.9, 0.5, 0.6, 0.0, -0.3, 0.2, 0.1])
MARKET_AGE = ([0.05, 0.25, 0.63, 0.07], [0.6, 0.3, 0.0, -0.8])
DUKE_UP = ([0.45, 0.15, 0.06, 0.02, 0.12, 0.1, 0.03, 0.07], [0.6, -0.4, -0.3, 0.0, 0.2, 0.0, 0.0, 0.5])
DUKE_DOWN = ([0.45, 0.05, 0.02, 0.12, 0.3, 0.02, 0.04], [0.3, -0.5, 0.0, 0.0, -0.2, 0.0, 0.4])
AGE_SCALE = {"young": 0.76, "teenager": 0.9, "adult": 1.0, "old": 0.97}
UNLABELLED_RATE = 0.03  # Duke: share of binary annotations left 0 (unlabelled)


@dataclass
class Identity:
    """What is drawn for one person (the true attributes)."""

    scale: float = 1.0
    female: bool = False
    long_hair: bool = False
    gray_hair: bool = False
    hat: bool = False
    up_color: str = "black"
    short_sleeve: bool = False
    long_top: bool = False
    dress: bool = False
    short_lower: bool = False
    down_color: str = "black"
    backpack: bool = False
    bag: bool = False
    handbag: bool = False
    boots: bool = False
    light_shoes: bool = False


def sample_market(rng: np.random.Generator, n: int) -> tuple[list[Identity], dict[str, np.ndarray]]:
    """Identities to draw and their .mat fields (1/2 coded; age 1..4; one colour field = 2)."""
    latents = sample_latents(rng, list(MARKET_GROUPS), n)
    truth = {k: v > 0 for k, v in sample_binary(rng, MARKET_SPECS, latents).items()}
    labels = add_label_noise(rng, truth, MARKET_SPECS)
    up = categorical_choice(rng, latents["upper"], *MARKET_UP)
    down = categorical_choice(rng, latents["lower"], *MARKET_DOWN)
    age = categorical_choice(rng, latents["person"], *MARKET_AGE)
    ids = []
    for i in range(n):
        ids.append(Identity(
            scale=AGE_SCALE[MARKET_AGES[age[i]]], female=bool(truth["gender"][i]), long_hair=bool(truth["hair"][i]),
            gray_hair=MARKET_AGES[age[i]] == "old", hat=bool(truth["hat"][i]), up_color=MARKET_UP_COLORS[up[i]],
            short_sleeve=bool(truth["up"][i]), dress=not truth["clothes"][i], short_lower=bool(truth["down"][i]),
            down_color=MARKET_DOWN_COLORS[down[i]], backpack=bool(truth["backpack"][i]), bag=bool(truth["bag"][i]),
            handbag=bool(truth["handbag"][i]), light_shoes=bool(rng.random() < 0.3)))
    fields = {k: np.where(labels[k], 2.0, 1.0) for k in labels}
    fields["age"] = age + 1.0
    fields.update(_color_fields("up", MARKET_UP_COLORS, up))
    fields.update(_color_fields("down", MARKET_DOWN_COLORS, down))
    return ids, fields


def sample_duke(rng: np.random.Generator, n: int) -> tuple[list[Identity], dict[str, np.ndarray]]:
    """Identities to draw and their .mat fields (1/2 coded, a few 0 = unlabelled)."""
    latents = sample_latents(rng, list(DUKE_GROUPS), n)
    truth = {k: v > 0 for k, v in sample_binary(rng, DUKE_SPECS, latents).items()}
    labels = add_label_noise(rng, truth, DUKE_SPECS)
    up = categorical_choice(rng, latents["upper"], *DUKE_UP)
    down = categorical_choice(rng, latents["lower"], *DUKE_DOWN)
    ids = []
    for i in range(n):
        female = bool(truth["gender"][i])
        ids.append(Identity(
            female=female, long_hair=bool(rng.random() < (0.75 if female else 0.1)), hat=bool(truth["hat"][i]),
            up_color=DUKE_UP_COLORS[up[i]], short_sleeve=bool(rng.random() < 0.3), long_top=bool(truth["top"][i]),
            down_color=DUKE_DOWN_COLORS[down[i]], backpack=bool(truth["backpack"][i]), bag=bool(truth["bag"][i]),
            handbag=bool(truth["handbag"][i]), boots=bool(truth["boots"][i]), light_shoes=bool(truth["shoes"][i])))
    fields = {}
    for k in labels:
        coded = np.where(labels[k], 2.0, 1.0)
        coded[rng.random(n) < UNLABELLED_RATE] = 0.0
        fields[k] = coded
    fields.update(_color_fields("up", DUKE_UP_COLORS, up))
    fields.update(_color_fields("down", DUKE_DOWN_COLORS, down))
    return ids, fields


def _color_fields(prefix: str, colors: tuple[str, ...], choice: np.ndarray) -> dict[str, np.ndarray]:
    return {prefix + c: np.where(choice == k, 2.0, 1.0) for k, c in enumerate(colors)}


def render(p: Identity, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One view of a person as RGB uint8."""
    img = np.empty((height, width, 3), np.uint8)
    wall, ground = rng.uniform(50, 210, 3), rng.uniform(40, 180, 3)
    img[:] = wall.astype(np.uint8)
    pen = Pen(img, 64.0, 128.0)
    pen.rect((0, 96 + rng.uniform(-10, 10)), (64, 128), ground)
    for _ in range(2):
        x, y = rng.uniform(-10, 60), rng.uniform(0, 100)
        pen.rect((x, y), (x + rng.uniform(6, 20), y + rng.uniform(6, 30)), rng.uniform(30, 230, 3))
    side = 1 if rng.random() < 0.5 else -1  # mirroring: which side bags hang on
    s = p.scale * rng.uniform(0.95, 1.04)
    cx = 32 + rng.uniform(-3, 3)
    y0 = 122 - 112 * s
    skin = jitter(rng, SKIN[rng.integers(len(SKIN))], 8)
    up = jitter(rng, COLORS[p.up_color], 14)
    down = jitter(rng, COLORS[p.down_color], 14)
    hair = np.array((165, 165, 165)) if p.gray_hair else jitter(rng, (40, 28, 20), 15)
    sh = (8.5 if p.female else 11.0) * s
    neck, waist = y0 + 21 * s, y0 + (70 if p.long_top else 58) * s
    hip, feet = y0 + 58 * s, y0 + 112 * s

    if p.backpack:
        pen.rect((cx - side * (sh + 4 * s), neck + 2 * s), (cx - side * (sh - 6 * s), neck + 30 * s), jitter(rng, (60, 60, 70), 30))
    if p.long_hair:
        pen.rect((cx - 7 * s, y0 + 10 * s), (cx + 7 * s, neck + 9 * s), hair)
    # lower body
    knee = hip + (feet - hip) * 0.45
    if p.dress:
        bottom = knee if p.short_lower else feet - 6 * s
        pen.poly([(cx - 7 * s, hip), (cx + 7 * s, hip), (cx + 11 * s, bottom), (cx - 11 * s, bottom)], down)
        for lx in (-4, 4):
            pen.rect((cx + (lx - 2) * s, bottom), (cx + (lx + 2) * s, feet), skin)
    else:
        for lx in (-4, 4):
            pen.rect((cx + (lx - 2.6) * s, hip), (cx + (lx + 2.6) * s, feet), down)
            if p.short_lower:
                pen.rect((cx + (lx - 2.2) * s, knee), (cx + (lx + 2.2) * s, feet), skin)
    shoe = jitter(rng, (235, 235, 230), 10) if p.light_shoes else jitter(rng, (30, 28, 28), 10)
    for lx in (-4, 4):
        top = feet - (14 * s if p.boots else 3 * s)
        pen.rect((cx + (lx - 3) * s, top), (cx + (lx + 3.2) * s, feet + 1.5 * s), shoe * 0.5 if p.boots else shoe)
    # torso and arms
    pen.poly([(cx - sh, neck), (cx + sh, neck), (cx + sh * 0.85, waist), (cx - sh * 0.85, waist)], up)
    for ax in (-1, 1):
        x0, x1 = cx + ax * sh, cx + ax * (sh + 4.2 * s)
        pen.rect((min(x0, x1), neck + 1 * s), (max(x0, x1), neck + 36 * s), up)
        if p.short_sleeve:
            pen.rect((min(x0, x1), neck + 12 * s), (max(x0, x1), neck + 36 * s), skin)
    if p.backpack:
        for sx in (-0.5, 0.5):
            pen.line((cx + sx * sh, neck), (cx + sx * sh * 0.9, neck + 18 * s), (30, 30, 30), 1.2 * s)
    # head, hair, hat
    hy = y0 + 12 * s
    pen.rect((cx - 2.5 * s, hy + 6 * s), (cx + 2.5 * s, neck + 1), skin)
    pen.ellipse((cx, hy), (6.3 * s, 8 * s), skin)
    pen.ellipse((cx, hy - 1.5 * s), (6.8 * s, 7.5 * s), hair, start=180, end=360)
    if p.hat:
        hat = jitter(rng, rng.uniform(20, 235, 3), 0)
        pen.ellipse((cx, hy - 3 * s), (7.5 * s, 6 * s), hat, start=180, end=360)
        pen.rect((cx - 8 * s, hy - 3.5 * s), (cx + 10 * s * side, hy - 1.5 * s), hat * 0.75)
    # bags
    if p.bag:
        bag = jitter(rng, rng.uniform(30, 200, 3), 0)
        pen.line((cx - side * sh * 0.9, neck), (cx + side * sh * 0.9, hip - 4 * s), bag * 0.6, 1.3 * s)
        pen.rect((cx + side * (sh - 2 * s), hip - 8 * s), (cx + side * (sh + 6 * s), hip + 2 * s), bag)
    if p.handbag:
        hx = cx + side * (sh + 2 * s)
        pen.rect((hx - 3 * s, neck + 38 * s), (hx + 3 * s, neck + 44 * s), jitter(rng, (150, 40, 60), 40))
    return finish(img, rng, noise=4.0)
