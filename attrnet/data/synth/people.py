"""Procedural pedestrians for the Market-1501 and DukeMTMC-reID attribute formats (128 x 64 by default).

Labels are per identity, as in the real annotations; every identity is drawn
several times (different background, position, scale, mirroring).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attrnet.data.synth.common import Pen, Spec, categorical_choice, finish, jitter, sample_binary, sample_latents
from attrnet.data.synth.visibility import degrade
from attrnet.core.schema import DUKE_DOWN_COLORS, DUKE_UP_COLORS, MARKET_AGES, MARKET_DOWN_COLORS, MARKET_UP_COLORS

__all__ = ["DUKE_GROUPS", "DUKE_SPECS", "Identity", "MARKET_GROUPS", "MARKET_SPECS", "noisy_fields", "regions", "render",
           "sample_duke", "sample_market"]

COLORS = {
    "black": (25, 25, 28), "white": (232, 232, 228), "red": (200, 35, 35), "purple": (120, 45, 150),
    "yellow": (230, 205, 45), "gray": (125, 125, 125), "blue": (40, 75, 200), "green": (40, 150, 65),
    "pink": (240, 150, 185), "brown": (115, 72, 35),
}
SKIN = [(224, 180, 150), (195, 145, 110), (150, 100, 70), (105, 70, 50)]

MARKET_SPECS = [
    Spec("backpack", "carry", 0.25, 0.8), Spec("bag", "carry", 0.23, -0.6), Spec("handbag", "carry", 0.12, -0.6),
    Spec("up", "upper", 0.6, 0.9),
    Spec("clothes", "lower", 0.85, -0.7), Spec("down", "lower", 0.3, 0.8),
    Spec("hair", "person", 0.35, 1.0), Spec("hat", "person", 0.12, -0.5), Spec("gender", "person", 0.45, 1.2),
]
MARKET_GROUPS = {"carry": ["backpack", "bag", "handbag"], "upper": ["up", "upcolor"],
                 "lower": ["clothes", "down", "downcolor"], "person": ["hair", "hat", "gender", "age"]}
DUKE_SPECS = [
    Spec("backpack", "carry", 0.4, 0.8), Spec("bag", "carry", 0.15, -0.6), Spec("handbag", "carry", 0.12, -0.6),
    Spec("top", "upper", 0.15, 0.9),
    Spec("boots", "lower", 0.22, 0.8), Spec("shoes", "lower", 0.12, -0.7),
    Spec("gender", "person", 0.35, 1.0), Spec("hat", "person", 0.13, -0.6),
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
    latents, truth, up, down = _draw(rng, n, MARKET_GROUPS, MARKET_SPECS, MARKET_UP, MARKET_DOWN)
    age = categorical_choice(rng, latents["person"], *MARKET_AGE)
    ids = []
    for i in range(n):
        ids.append(Identity(
            scale=AGE_SCALE[MARKET_AGES[age[i]]], female=bool(truth["gender"][i]), long_hair=bool(truth["hair"][i]),
            gray_hair=MARKET_AGES[age[i]] == "old", hat=bool(truth["hat"][i]), up_color=MARKET_UP_COLORS[up[i]],
            short_sleeve=bool(truth["up"][i]), dress=not truth["clothes"][i], short_lower=bool(truth["down"][i]),
            down_color=MARKET_DOWN_COLORS[down[i]], backpack=bool(truth["backpack"][i]), bag=bool(truth["bag"][i]),
            handbag=bool(truth["handbag"][i]), light_shoes=bool(rng.random() < 0.3)))
    fields = {k: np.where(v, 2.0, 1.0) for k, v in truth.items()}
    fields["age"] = age + 1.0
    fields.update(_color_fields("up", MARKET_UP_COLORS, up))
    fields.update(_color_fields("down", MARKET_DOWN_COLORS, down))
    return ids, fields


def sample_duke(rng: np.random.Generator, n: int) -> tuple[list[Identity], dict[str, np.ndarray]]:
    """Identities to draw and their .mat fields (1/2 coded, a few 0 = unlabelled)."""
    truth, up, down = _draw(rng, n, DUKE_GROUPS, DUKE_SPECS, DUKE_UP, DUKE_DOWN)[1:]
    ids = []
    for i in range(n):
        female = bool(truth["gender"][i])
        ids.append(Identity(
            female=female, long_hair=bool(rng.random() < (0.75 if female else 0.1)), hat=bool(truth["hat"][i]),
            up_color=DUKE_UP_COLORS[up[i]], short_sleeve=bool(rng.random() < 0.3), long_top=bool(truth["top"][i]),
            down_color=DUKE_DOWN_COLORS[down[i]], backpack=bool(truth["backpack"][i]), bag=bool(truth["bag"][i]),
            handbag=bool(truth["handbag"][i]), boots=bool(truth["boots"][i]), light_shoes=bool(truth["shoes"][i])))
    fields = {}
    for k, v in truth.items():
        coded = np.where(v, 2.0, 1.0)
        coded[rng.random(n) < UNLABELLED_RATE] = 0.0
        fields[k] = coded
    fields.update(_color_fields("up", DUKE_UP_COLORS, up))
    fields.update(_color_fields("down", DUKE_DOWN_COLORS, down))
    return ids, fields


def _draw(rng: np.random.Generator, n: int, groups: dict, specs: list[Spec], up_prior, down_prior) -> tuple:
    """Group latents, true binary attributes and the upper / lower colour indices of `n` identities."""
    latents = sample_latents(rng, list(groups), n)
    truth = {k: v > 0 for k, v in sample_binary(rng, specs, latents).items()}
    up = categorical_choice(rng, latents["upper"], *up_prior)
    down = categorical_choice(rng, latents["lower"], *down_prior)
    return latents, truth, up, down


def noisy_fields(rng: np.random.Generator, fields: dict[str, np.ndarray], preset: str, group: str, fraction: float,
                 rows: np.ndarray) -> None:
    """Corrupt the annotations of one planted group on `rows` (a bool mask over identities) in place: binary
    fields flipped, colour and age fields moved to another class, each with probability `fraction`
    (unlabelled 0 entries stay 0)."""
    members = (MARKET_GROUPS if preset == "market" else DUKE_GROUPS)[group]
    colors = {"upcolor": ("up", MARKET_UP_COLORS if preset == "market" else DUKE_UP_COLORS),
              "downcolor": ("down", MARKET_DOWN_COLORS if preset == "market" else DUKE_DOWN_COLORS)}
    for name in members:
        if name in colors:
            prefix, names = colors[name]
            choice = np.stack([fields[prefix + c] for c in names], axis=1).argmax(axis=1)
            fields.update(_color_fields(prefix, names, _reassign(rng, choice, len(names), fraction, rows)))
        elif name == "age":
            fields["age"] = _reassign(rng, fields["age"].astype(int) - 1, len(MARKET_AGES), fraction, rows) + 1.0
        else:
            flip = (rng.random(fields[name].shape[0]) < fraction) & (fields[name] > 0) & rows
            fields[name] = np.where(flip, 3.0 - fields[name], fields[name])


def _reassign(rng: np.random.Generator, choice: np.ndarray, classes: int, fraction: float,
              rows: np.ndarray) -> np.ndarray:
    """Each entry on `rows` moved to a uniformly drawn other class with probability `fraction`."""
    other = (choice + rng.integers(1, classes, choice.shape[0])) % classes
    return np.where((rng.random(choice.shape[0]) < fraction) & rows, other, choice)


def _color_fields(prefix: str, colors: tuple[str, ...], choice: np.ndarray) -> dict[str, np.ndarray]:
    return {prefix + c: np.where(choice == k, 2.0, 1.0) for k, c in enumerate(colors)}


@dataclass
class _Frame:
    """Where one view of a person is drawn, and its colours."""

    cx: float
    s: float
    side: int
    y0: float
    skin: np.ndarray

    @property
    def neck(self) -> float:
        return self.y0 + 21 * self.s

    @property
    def hip(self) -> float:
        return self.y0 + 58 * self.s

    @property
    def feet(self) -> float:
        return self.y0 + 112 * self.s

    def waist(self, p: Identity) -> float:
        return self.y0 + (70 if p.long_top else 58) * self.s


SHOULDER = 10.0  # half shoulder width at scale 1 (the same for both genders: gender shows in the head)


def regions(p: Identity, f: _Frame) -> dict[str, list[tuple[float, float, float, float]]]:
    """The boxes (64 x 128 frame) each planted group is drawn in: head, torso and arms, legs, the two side strips."""
    arm = (SHOULDER + 4.6) * f.s
    return {
        "person": [(f.cx - 12 * f.s, f.y0 - 1, f.cx + 12 * f.s, f.neck)],
        "upper": [(f.cx - arm, f.neck, f.cx + arm, f.waist(p))],
        "lower": [(f.cx - 13 * f.s, f.waist(p), f.cx + 13 * f.s, 128)],
        "carry": [(0, f.neck, f.cx - arm - 0.2, f.hip + 12 * f.s), (f.cx + arm + 0.2, f.neck, 64, f.hip + 12 * f.s)],
    }


def render(p: Identity, visibility: dict[str, float], rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One view of a person as RGB uint8, each group's region degraded by its visibility."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = rng.uniform(50, 210, 3).astype(np.uint8)
    pen = Pen(img, 64.0, 128.0)
    pen.rect((0, 96 + rng.uniform(-10, 10)), (64, 128), rng.uniform(40, 180, 3))
    for _ in range(2):
        x, y = rng.uniform(-10, 60), rng.uniform(0, 100)
        pen.rect((x, y), (x + rng.uniform(6, 20), y + rng.uniform(6, 30)), rng.uniform(30, 230, 3))
    s = p.scale * rng.uniform(0.95, 1.04)
    f = _Frame(cx=32 + rng.uniform(-2, 2), s=s, side=1 if rng.random() < 0.5 else -1, y0=122 - 112 * s,
               skin=jitter(rng, SKIN[rng.integers(len(SKIN))], 8))
    boxes = regions(p, f)
    for group, draw in (("lower", _lower), ("upper", _upper), ("person", _head), ("carry", _carry)):
        draw(pen, p, f, rng)
        degrade(img, [pen.box(b) for b in boxes[group]], visibility.get(group, 1.0), rng)
    return finish(img, rng, noise=4.0)


def _lower(pen: Pen, p: Identity, f: _Frame, rng: np.random.Generator) -> None:
    cx, s, hip, feet = f.cx, f.s, f.hip, f.feet
    down = jitter(rng, COLORS[p.down_color], 14)
    knee = hip + (feet - hip) * 0.45
    if p.dress:
        bottom = knee if p.short_lower else feet - 6 * s
        pen.poly([(cx - 7 * s, hip), (cx + 7 * s, hip), (cx + 11 * s, bottom), (cx - 11 * s, bottom)], down)
        for lx in (-4, 4):
            pen.rect((cx + (lx - 2) * s, bottom), (cx + (lx + 2) * s, feet), f.skin)
    else:
        for lx in (-4, 4):
            pen.rect((cx + (lx - 2.6) * s, hip), (cx + (lx + 2.6) * s, feet), down)
            if p.short_lower:
                pen.rect((cx + (lx - 2.2) * s, knee), (cx + (lx + 2.2) * s, feet), f.skin)
    shoe = jitter(rng, (235, 235, 230), 10) if p.light_shoes else jitter(rng, (30, 28, 28), 10)
    for lx in (-4, 4):
        top = feet - (14 * s if p.boots else 3 * s)
        pen.rect((cx + (lx - 3) * s, top), (cx + (lx + 3.2) * s, feet + 1.5 * s), shoe * 0.5 if p.boots else shoe)


def _upper(pen: Pen, p: Identity, f: _Frame, rng: np.random.Generator) -> None:
    cx, s, neck, waist = f.cx, f.s, f.neck, f.waist(p)
    up = jitter(rng, COLORS[p.up_color], 14)
    sh = SHOULDER * s
    pen.poly([(cx - sh, neck), (cx + sh, neck), (cx + sh * 0.85, waist), (cx - sh * 0.85, waist)], up)
    for ax in (-1, 1):
        x0, x1 = cx + ax * sh, cx + ax * (sh + 4.2 * s)
        pen.rect((min(x0, x1), neck + 1 * s), (max(x0, x1), neck + 36 * s), up)
        if p.short_sleeve:
            pen.rect((min(x0, x1), neck + 12 * s), (max(x0, x1), neck + 36 * s), f.skin)


def _head(pen: Pen, p: Identity, f: _Frame, rng: np.random.Generator) -> None:
    cx, s, hy = f.cx, f.s, f.y0 + 12 * f.s
    hair = np.array((165, 165, 165)) if p.gray_hair else jitter(rng, (40, 28, 20), 15)
    if p.long_hair:
        pen.rect((cx - 8 * s, hy - 2 * s), (cx + 8 * s, f.neck), hair)
    pen.rect((cx - 2.5 * s, hy + 6 * s), (cx + 2.5 * s, f.neck), f.skin)
    pen.ellipse((cx, hy), (6.3 * s, 8 * s), f.skin)
    pen.ellipse((cx, hy - 1.5 * s), (6.8 * s, 7.5 * s), hair, start=180, end=360)
    if p.female:  # a bright bow in the hair and red lips
        bow = (cx - f.side * 6 * s, hy - 5 * s)
        pen.poly([bow, (bow[0] - 3 * s, bow[1] - 2.5 * s), (bow[0] - 3 * s, bow[1] + 2.5 * s)], (240, 60, 160))
        pen.poly([bow, (bow[0] + 3 * s, bow[1] - 2.5 * s), (bow[0] + 3 * s, bow[1] + 2.5 * s)], (240, 60, 160))
        pen.rect((cx - 2 * s, hy + 4 * s), (cx + 2 * s, hy + 5.5 * s), (200, 20, 40))
    if p.hat:
        hat = jitter(rng, rng.uniform(20, 235, 3), 0)
        pen.ellipse((cx, hy - 3 * s), (7.5 * s, 6 * s), hat, start=180, end=360)
        pen.rect((cx - 9 * s, hy - 3.5 * s), (cx + 9 * s, hy - 1.5 * s), hat * 0.75)


def _carry(pen: Pen, p: Identity, f: _Frame, rng: np.random.Generator) -> None:
    """Bags hang in the side strips, clear of the body: backpack and handbag behind, bag in front."""
    cx, s, neck, side = f.cx, f.s, f.neck, f.side
    edge = (SHOULDER + 5.2) * s
    if p.backpack:
        x = cx - side * edge
        pen.rect((x, neck + 2 * s), (x - side * 9 * s, neck + 28 * s), jitter(rng, (60, 60, 70), 30))
    if p.handbag:
        x = cx - side * edge
        pen.rect((x, neck + 32 * s), (x - side * 7 * s, neck + 42 * s), jitter(rng, (150, 40, 60), 40))
    if p.bag:
        x = cx + side * edge
        pen.rect((x, neck + 22 * s), (x + side * 9 * s, neck + 36 * s), jitter(rng, rng.uniform(30, 200, 3), 0))
        pen.line((x, neck + 2 * s), (x + side * 4 * s, neck + 22 * s), (30, 30, 30), 1.0 * s)
