"""Procedural faces with CelebA's 40 attributes, each drawn visibly (64 x 64 by default)."""
from __future__ import annotations

import numpy as np

from attrnet.data.synth.common import (
    Pen, Spec, add_label_noise, blend, exclusive, finish, jitter, sample_binary, sample_latents,
)
from attrnet.core.schema import CELEBA_ATTRIBUTES

# name, planted group, positive rate, loading on the group latent, label noise
SPECS = [
    Spec("Bald", "hair", 0.05, -1.2), Spec("Bangs", "hair", 0.16, 0.8), Spec("Black_Hair", "hair", 0.26, -0.5),
    Spec("Blond_Hair", "hair", 0.16, 1.0), Spec("Brown_Hair", "hair", 0.22, 0.3), Spec("Gray_Hair", "hair", 0.07, -1.0),
    Spec("Receding_Hairline", "hair", 0.09, -1.0), Spec("Straight_Hair", "hair", 0.22, 0.4), Spec("Wavy_Hair", "hair", 0.32, 0.9),
    Spec("Arched_Eyebrows", "eyes", 0.27, 1.0), Spec("Bags_Under_Eyes", "eyes", 0.2, -0.6, 0.05),
    Spec("Bushy_Eyebrows", "eyes", 0.14, -0.8), Spec("Eyeglasses", "eyes", 0.08, -0.9), Spec("Narrow_Eyes", "eyes", 0.12, -0.5, 0.03),
    Spec("Big_Lips", "mouth", 0.24, 0.7, 0.05), Spec("Mouth_Slightly_Open", "mouth", 0.48, 0.9),
    Spec("Smiling", "mouth", 0.48, 1.2), Spec("Wearing_Lipstick", "mouth", 0.47, 0.8), Spec("High_Cheekbones", "mouth", 0.45, 1.0, 0.08),
    Spec("5_o_Clock_Shadow", "beard", 0.11, 1.0, 0.03), Spec("Goatee", "beard", 0.07, 1.2), Spec("Mustache", "beard", 0.05, 1.2),
    Spec("Sideburns", "beard", 0.06, 1.0), Spec("No_Beard", "beard", 0.83, -1.2),
    Spec("Chubby", "face", 0.06, 1.0), Spec("Double_Chin", "face", 0.05, 1.1), Spec("Oval_Face", "face", 0.28, -0.6, 0.05),
    Spec("Pale_Skin", "face", 0.05, 0.3), Spec("Rosy_Cheeks", "face", 0.08, 0.4), Spec("Big_Nose", "face", 0.24, 0.6),
    Spec("Pointy_Nose", "face", 0.28, -0.6, 0.05),
    Spec("Wearing_Earrings", "accessories", 0.19, 0.7), Spec("Wearing_Hat", "accessories", 0.05, 0.7),
    Spec("Wearing_Necklace", "accessories", 0.12, 0.7), Spec("Wearing_Necktie", "accessories", 0.07, 0.7),
    Spec("Male", "person", 0.42, 1.0), Spec("Young", "person", 0.77, -0.5),
    Spec("Attractive", "person", 0.51, -0.6, 0.12), Spec("Heavy_Makeup", "person", 0.38, -1.2),
    Spec("Blurry", "image", 0.05, 0.0),
]
assert sorted(s.name for s in SPECS) == sorted(CELEBA_ATTRIBUTES)

HAIR_COLORS = {"Black_Hair": (25, 20, 18), "Blond_Hair": (225, 190, 110), "Brown_Hair": (110, 65, 35),
               "Gray_Hair": (170, 170, 170), "other": (160, 70, 40)}
SKIN_TONES = [(224, 180, 150), (200, 150, 115), (170, 120, 90), (120, 80, 55)]


def sample_labels(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(true attributes drawn in the image, annotated labels with noise) as bool arrays."""
    latents = sample_latents(rng, sorted({s.group for s in SPECS}), n)
    s = sample_binary(rng, SPECS, latents)
    exclusive(s, ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"])
    exclusive(s, ["Straight_Hair", "Wavy_Hair"])
    truth = {k: v > 0 for k, v in s.items()}
    bald = truth["Bald"]
    for k in ("Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Straight_Hair", "Wavy_Hair", "Receding_Hairline"):
        truth[k] = truth[k] & ~bald
    truth["Bangs"] &= ~truth["Receding_Hairline"]
    truth["No_Beard"] = ~(truth["Goatee"] | truth["Mustache"] | truth["Sideburns"])  # derived: its Spec only names its group
    truth["Mouth_Slightly_Open"] |= truth["Smiling"] & (s["Mouth_Slightly_Open"] > -0.8)
    return truth, add_label_noise(rng, truth, SPECS)


def render(a: dict[str, bool], rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One face as RGB uint8 with the true attributes `a`."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = jitter(rng, rng.uniform(40, 215, 3), 0)
    pen = Pen(img)
    cx, cy = 32 + rng.uniform(-2.5, 2.5), 31 + rng.uniform(-2, 2)
    k = rng.uniform(0.93, 1.05)
    fw = 13.0 * k * (1.18 if a["Chubby"] else 1.0) * (0.9 if a["Oval_Face"] else 1.0)
    fh = 17.0 * k * (1.08 if a["Oval_Face"] else 1.0)
    skin = jitter(rng, (242, 228, 218) if a["Pale_Skin"] else SKIN_TONES[rng.integers(len(SKIN_TONES))], 8)
    dark_skin = skin * 0.72
    hair = jitter(rng, HAIR_COLORS[next((c for c in HAIR_COLORS if c != "other" and a[c]), "other")], 10)

    # clothes, neck, necktie, necklace
    shirt = jitter(rng, rng.uniform(30, 230, 3), 0)
    pen.ellipse((cx, 66), (27 if a["Male"] else 21, 14), shirt)
    pen.rect((cx - 5, cy + fh - 5), (cx + 5, cy + fh + 7), skin * 0.92)
    if a["Wearing_Necktie"]:
        tie = jitter(rng, (150, 20, 30), 25)
        pen.poly([(cx - 2.5, cy + fh + 5), (cx + 2.5, cy + fh + 5), (cx + 3, 64), (cx - 3, 64)], tie)
    if a["Wearing_Necklace"]:
        pen.ellipse((cx, cy + fh + 3), (6, 4), (235, 200, 60), start=0, end=180, thickness=1)

    # hair behind the head
    if not a["Bald"] and not a["Wearing_Hat"]:
        if a["Wavy_Hair"]:
            for side in (-1, 1):
                pts = [(cx + side * (fw + 2 + 1.6 * np.sin(t * 1.3)), cy - 4 + t * 2.2) for t in range(12)]
                pen.poly(pts, hair, closed=False, fill=False, thickness=3)
        elif a["Straight_Hair"]:
            for side in (-1, 1):
                pen.rect((cx + side * (fw + 0.5), cy - 6), (cx + side * (fw + 4), cy + fh + 2), hair)

    # face, jaw, chin
    pen.ellipse((cx, cy), (fw, fh), skin)
    if a["Male"]:
        pen.rect((cx - fw * 0.78, cy + 2), (cx + fw * 0.78, cy + fh * 0.82), skin)
    if a["Double_Chin"]:
        pen.ellipse((cx, cy + fh - 1), (6, 3), dark_skin, start=10, end=170, thickness=1)
    if a["Rosy_Cheeks"]:
        layer = img.copy()
        Pen(layer).circle((cx - fw * 0.6, cy + 5), 3.5, (235, 80, 100))
        Pen(layer).circle((cx + fw * 0.6, cy + 5), 3.5, (235, 80, 100))
        blend(img, layer, 0.35)
    if a["High_Cheekbones"]:
        for side in (-1, 1):
            pen.line((cx + side * fw * 0.45, cy + 2), (cx + side * fw * 0.8, cy), np.minimum(skin * 1.18, 255), 1)
    if a["5_o_Clock_Shadow"]:
        layer = img.copy()
        Pen(layer).ellipse((cx, cy + 8), (fw * 0.85, fh * 0.55), (60, 55, 50), start=0, end=180)
        blend(img, layer, 0.22)

    # hair on top
    if a["Bald"]:
        pen.ellipse((cx - 3, cy - fh + 4), (4, 2), np.minimum(skin * 1.2, 255))
    elif not a["Wearing_Hat"]:
        top = cy - fh * (0.35 if a["Receding_Hairline"] else 0.55)
        pen.ellipse((cx, cy - 2), (fw + 1.5, fh + 1.5), hair, start=180, end=360)
        pen.ellipse((cx, top + 3), (fw * (0.55 if a["Receding_Hairline"] else 0.8), 4), skin, start=0, end=180)
        if a["Bangs"]:
            pen.rect((cx - fw * 0.85, cy - fh * 0.7), (cx + fw * 0.85, cy - 6.5), hair)
    if not a["Young"]:
        for dy in (-10.5, -8.5):
            pen.line((cx - 5, cy + dy), (cx + 5, cy + dy), dark_skin, 0.6)

    # eyebrows, eyes, glasses
    ey = cy - 3
    brow = hair * 0.7
    for side in (-1, 1):
        ex = cx + side * 5.5
        if a["Heavy_Makeup"]:
            pen.ellipse((ex, ey - 1.5), (3, 1.6), (120, 60, 150))
        if a["Arched_Eyebrows"]:
            pen.ellipse((ex, ey - 2), (3.5, 2.5), brow, start=200, end=340, thickness=1.6 if a["Bushy_Eyebrows"] else 0.8)
        else:
            pen.line((ex - 3.5, ey - 3.8), (ex + 3.5, ey - 3.8), brow, 1.6 if a["Bushy_Eyebrows"] else 0.8)
        pen.ellipse((ex, ey), (2.6, 0.8 if a["Narrow_Eyes"] else 1.7), (245, 245, 245))
        pen.circle((ex, ey), 0.9, (30, 30, 40))
        if a["Bags_Under_Eyes"]:
            pen.ellipse((ex, ey + 2), (2.5, 1), dark_skin * 0.95, start=0, end=180, thickness=0.6)
        if a["Eyeglasses"]:
            pen.rect((ex - 3.8, ey - 2.6), (ex + 3.8, ey + 2.6), (20, 20, 20), thickness=0.8)
    if a["Eyeglasses"]:
        pen.line((cx - 1.7, ey), (cx + 1.7, ey), (20, 20, 20), 0.8)

    # nose
    nw, nl = (2.6, 5.5) if a["Big_Nose"] else (1.5, 4.0)
    if a["Pointy_Nose"]:
        nw, nl = nw * 0.6, nl * 1.25
    pen.poly([(cx, ey + 1.5), (cx - nw, ey + 1.5 + nl), (cx + nw, ey + 1.5 + nl)], dark_skin, fill=False, thickness=0.8)

    # mouth, lips, facial hair
    my = cy + 9
    lips = jitter(rng, (200, 30, 50), 15) if a["Wearing_Lipstick"] else dark_skin * 0.9
    lip_t = 1.8 if a["Big_Lips"] else 0.9
    if a["Mouth_Slightly_Open"]:
        pen.ellipse((cx, my + 0.5), (3.2, 1.5), (60, 20, 25))
    if a["Smiling"]:
        pen.ellipse((cx, my - 1.5), (5, 3), lips, start=15, end=165, thickness=lip_t)
    else:
        pen.line((cx - 4, my), (cx + 4, my), lips, lip_t)
    beard = hair * 0.8
    if a["Mustache"]:
        pen.rect((cx - 4.5, my - 3), (cx + 4.5, my - 1.8), beard)
    if a["Goatee"]:
        pen.ellipse((cx, my + 5), (3.2, 2.6), beard)
    if a["Sideburns"]:
        for side in (-1, 1):
            pen.rect((cx + side * (fw - 2.5), cy - 5), (cx + side * (fw - 0.2), cy + 5), beard)

    # accessories
    if a["Wearing_Earrings"]:
        for side in (-1, 1):
            pen.circle((cx + side * (fw + 0.5), cy + 3), 1.1, (250, 215, 40))
    if a["Wearing_Hat"]:
        hat = jitter(rng, rng.uniform(20, 235, 3), 0)
        pen.ellipse((cx, cy - fh * 0.45), (fw + 1, fh * 0.62), hat, start=180, end=360)
        pen.rect((cx - fw - 5, cy - fh * 0.45 - 1), (cx + fw + 5, cy - fh * 0.45 + 1.5), hat * 0.8)
    return finish(img, rng, noise=4.0, blur_sigma=1.3 * pen.sx if a["Blurry"] else 0.0)
