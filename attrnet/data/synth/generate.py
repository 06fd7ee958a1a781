"""`attrnet data synth`: procedural attribute datasets written in the real benchmark formats.

Faces (celeba), pedestrians (market, duke) and garments (deepfashion), with
visible attributes in planted, internally correlated groups of different
difficulty. The grouping is saved as ``synth_groups.json`` (groups-file
format). Output is deterministic for a given seed: labels come from one
generator seeded with `seed`, image i from one seeded with ``(seed, i)``.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.fileio import atomic_write_bytes, atomic_write_text
from attrnet.core.schema import CELEBA_ATTRIBUTES, write_groups
from attrnet.data.synth.common import flip_labels, groups_of
from attrnet.data.synth.visibility import Difficulty, difficulty_of, sample_visibility

__all__ = ["DEFAULT_SIZE", "GROUPS_FILE", "PRESETS", "VISIBILITY_FILE", "generate", "preset_groups",
           "read_visibility"]

PRESETS = ("celeba", "market", "duke", "deepfashion")
DEFAULT_SIZE = {"celeba": (64, 64), "market": (128, 64), "duke": (128, 64), "deepfashion": (64, 64)}
GROUPS_FILE = "synth_groups.json"
VISIBILITY_FILE = "synth_visibility.csv"
DEFAULT_LABEL_NOISE = 0.3
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Options:
    """What every writer needs besides the preset's own sizes."""

    seed: int
    height: int
    width: int
    level: Difficulty
    noisy_group: str | None
    label_noise: float
    progress: Progress


def generate(
    preset: str,
    out: str | Path,
    num: int = 2000,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    progress: Progress | None = None,
    difficulty: str = "default",
    noisy_group: str | None = None,
    label_noise: float | None = None,
) -> dict:
    """Write a synthetic dataset of about `num` images to `out`; returns a summary dict.

    `difficulty` names a visibility level (see `visibility.LEVELS`). With `noisy_group`, a
    `label_noise` share (default 0.3) of that planted group's training and validation annotations
    is flipped; the test split keeps the true labels.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if num < 1:
        raise InputError(f"--num must be at least 1, got {num}")
    if seed < 0:
        raise InputError(f"--seed must be non-negative, got {seed}")
    level = difficulty_of(difficulty)
    noise = _check_noise(preset, noisy_group, label_noise)
    out = Path(out)
    _prepare(out)
    height, width = size or DEFAULT_SIZE[preset]
    start = time.perf_counter()
    opts = _Options(seed, height, width, level, noisy_group, noise, progress or (lambda done, total: None))
    groups, names, visibility = _WRITERS[preset](preset, out, num, opts)
    write_groups(out / GROUPS_FILE, groups)
    _write_visibility(out / VISIBILITY_FILE, names, visibility)
    seconds = time.perf_counter() - start
    images = len(names)
    return {"preset": preset, "out": str(out), "images": images, "height": height, "width": width,
            "seed": seed, "difficulty": difficulty, "noisy_group": noisy_group, "label_noise": noise,
            "seconds": round(seconds, 3), "images_per_second": round(images / max(seconds, 1e-9), 1)}


def preset_groups(preset: str) -> list[str]:
    """The planted groups of a preset, as written to synth_groups.json."""
    if preset == "celeba":
        from attrnet.data.synth import faces
        return list(groups_of(faces.SPECS))
    if preset == "deepfashion":
        from attrnet.data.synth import garments
        return list(garments.TYPES)
    from attrnet.data.synth import people
    return list(people.MARKET_GROUPS if preset == "market" else people.DUKE_GROUPS)


def _check_noise(preset: str, noisy_group: str | None, label_noise: float | None) -> float:
    if noisy_group is None:
        if label_noise is not None:
            raise InputError("--label-noise needs --noisy-group (the planted group whose labels get noisy)")
        return 0.0
    choices = preset_groups(preset)
    if noisy_group not in choices:
        raise InputError(f"unknown --noisy-group {noisy_group!r} for {preset} (choose from {', '.join(choices)})")
    noise = DEFAULT_LABEL_NOISE if label_noise is None else label_noise
    if not 0.0 <= noise <= 0.5:
        raise InputError(f"--label-noise must be between 0 and 0.5, got {noise}")
    return noise


def _write_visibility(path: Path, names: list[str], visibility: dict[str, np.ndarray]) -> None:
    """One row per image: its path inside the dataset and each group's visibility (1: clean)."""
    groups = list(visibility)
    rows = [",".join(["image"] + groups)]
    rows += [",".join([name] + [f"{visibility[g][i]:.3f}" for g in groups]) for i, name in enumerate(names)]
    atomic_write_text(path, "\n".join(rows) + "\n")


def read_visibility(path: str | Path) -> dict[str, dict[str, float]]:
    """A `synth_visibility.csv`: {image path inside the dataset: {group: visibility}}."""
    rows = Path(path).read_text().splitlines()
    groups = rows[0].split(",")[1:]
    return {cells[0]: dict(zip(groups, map(float, cells[1:]))) for cells in (row.split(",") for row in rows[1:])}


# everything a synth run writes: removed before a new run into the same folder
_OUTPUTS = ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt", "bounding_box_train",
            "bounding_box_test", "market_attribute.mat", "duke_attribute.mat", "img", "Anno", "Eval", GROUPS_FILE,
            VISIBILITY_FILE)


def _prepare(out: Path) -> None:
    """`out` must be absent, empty, or an earlier synthetic dataset (whose files are replaced)."""
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a folder", out)
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / GROUPS_FILE).is_file():
        raise InputError(f"output folder is not empty and holds no {GROUPS_FILE} (not a synthetic dataset); choose another --out", out)
    for name in _OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _image_rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng((seed, i))


def _noise_rng(seed: int) -> np.random.Generator:
    """The noisy-group flips have their own stream: the variant's images and other labels equal the clean set's."""
    return np.random.default_rng((seed, 0, 1))


def _write_celeba(preset, out: Path, num, opts: _Options) -> tuple[dict, list[str], dict]:
    from attrnet.data import celeba
    from attrnet.data.synth import faces
    from attrnet.data.synth.common import encode_jpeg

    rng = np.random.default_rng(opts.seed)
    truth, labels = faces.sample_labels(rng, num)
    groups = groups_of(faces.SPECS)
    parts = _split_codes(num, (0.8, 0.1, 0.1))
    if opts.noisy_group:
        flip_labels(_noise_rng(opts.seed), labels, groups[opts.noisy_group], opts.label_noise,
                    np.array(parts) != TEST_CODE)
    visibility = sample_visibility(rng, list(faces.REGIONS), num, opts.level)
    names = [f"{i + 1:06d}.jpg" for i in range(num)]
    image_dir = out / celeba.IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        a = {k: bool(v[i]) for k, v in truth.items()}
        vis = {g: float(v[i]) for g, v in visibility.items()}
        img = faces.render(a, vis, _image_rng(opts.seed, i), opts.height, opts.width)
        atomic_write_bytes(image_dir / name, encode_jpeg(img))
        opts.progress(i + 1, num)
    matrix = np.stack([np.where(labels[a], 1, -1) for a in CELEBA_ATTRIBUTES], axis=1)
    rows = [f"{num}", " ".join(CELEBA_ATTRIBUTES) + " "]
    rows += [name + "".join(f"{v:>3d}" for v in matrix[i]) for i, name in enumerate(names)]
    atomic_write_text(out / celeba.ATTR_FILE, "\n".join(rows) + "\n")
    atomic_write_text(out / celeba.PARTITION_FILE, "".join(f"{n} {p}\n" for n, p in zip(names, parts)))
    return groups, [f"{celeba.IMAGE_DIR}/{n}" for n in names], visibility


TEST_CODE = 2  # _split_codes: 0 train, 1 val, 2 test


def _split_codes(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Contiguous train/val/test ranges (0/1/2), like CelebA's partition."""
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    if n >= 3:
        n_train, n_val = max(1, min(n_train, n - 2)), max(1, n_val)
    return [0 if i < n_train else 1 if i < n_train + n_val else 2 for i in range(n)]


# Field order in the published files: Market's train and test structs differ; Duke's agree.
MARKET_TEST_ORDER = (
    "age backpack bag handbag clothes down up hair hat gender upblack upwhite upred uppurple upyellow upgray "
    "upblue upgreen downblack downwhite downpink downpurple downyellow downgray downblue downgreen downbrown"
).split()
MARKET_TRAIN_ORDER = (
    "age backpack bag handbag downblack downblue downbrown downgray downgreen downpink downpurple downwhite "
    "downyellow upblack upblue upgreen upgray uppurple upred upwhite upyellow clothes down up hair hat gender"
).split()
DUKE_ORDER = (
    "backpack bag handbag boots gender hat shoes top downblack downwhite downred downgray downblue downgreen "
    "downbrown upblack upwhite upred uppurple upgray upblue upgreen upbrown"
).split()
VIEWS_PER_IDENTITY = 4


def _write_pedestrians(preset, out: Path, num, opts: _Options) -> tuple[dict, list[str], dict]:
    from attrnet.data import pedestrian
    from attrnet.data.synth import people as synth_people
    from attrnet.data.synth.common import encode_jpeg

    rng = np.random.default_rng(opts.seed)
    n_ids = max(2, -(-num // VIEWS_PER_IDENTITY))
    sample = synth_people.sample_market if preset == "market" else synth_people.sample_duke
    people, fields = sample(rng, n_ids)
    n_train = n_ids // 2
    if opts.noisy_group:  # the training identities only: the test split keeps its true labels
        synth_people.noisy_fields(_noise_rng(opts.seed), fields, preset, opts.noisy_group, opts.label_noise,
                                  np.arange(n_ids) < n_train)
    views = [num // n_ids + (j < num % n_ids) for j in range(n_ids)]
    split_ids = {"train": range(0, n_train), "test": range(n_train, n_ids)}
    pid = [2 * j + 1 if j < n_train else 2 * (j - n_train) + 2 for j in range(n_ids)]
    jobs: list[tuple[Path, synth_people.Identity]] = []
    for split, members in split_ids.items():
        folder = out / pedestrian.SPLIT_DIRS[split]
        for j in members:
            for v in range(views[j]):
                cam = 1 + (j + v) % (6 if preset == "market" else 8)
                frame = 25 * (j * 10 + v) + 1
                name = (f"{pid[j]:04d}_c{cam}s1_{frame:06d}_01.jpg" if preset == "market"
                        else f"{pid[j]:04d}_c{cam}_f{frame:07d}.jpg")
                jobs.append((folder / name, people[j]))
    if preset == "market":  # junk (-1) and distractor (0000) boxes, as in the real gallery
        folder = out / pedestrian.SPLIT_DIRS["test"]
        strangers = synth_people.sample_market(rng, max(2, num // 50))[0]
        for k, stranger in enumerate(strangers):
            jobs.append((folder / f"{'-1' if k % 2 else '0000'}_c{1 + k % 6}s1_{100 * k + 1:06d}_0{1 + k % 3}.jpg", stranger))
    for folder in {path.parent for path, _ in jobs} | {out / d for d in pedestrian.SPLIT_DIRS.values()}:
        folder.mkdir(parents=True, exist_ok=True)
    groups = synth_people.MARKET_GROUPS if preset == "market" else synth_people.DUKE_GROUPS
    visibility = sample_visibility(rng, list(groups), len(jobs), opts.level)
    for i, (path, person) in enumerate(jobs):
        vis = {g: float(v[i]) for g, v in visibility.items()}
        img = synth_people.render(person, vis, _image_rng(opts.seed, i), opts.height, opts.width)
        atomic_write_bytes(path, encode_jpeg(img))
        opts.progress(i + 1, len(jobs))

    def struct(members: range, order: list[str]) -> dict:
        d = {k: fields[k][list(members)].astype(np.float64).reshape(1, -1) for k in order}
        d["image_index"] = np.array([f"{pid[j]:04d}" for j in members], dtype=object).reshape(1, -1)
        return d

    if preset == "market":
        doc = {"test": struct(split_ids["test"], MARKET_TEST_ORDER), "train": struct(split_ids["train"], MARKET_TRAIN_ORDER)}
    else:
        doc = {"train": struct(split_ids["train"], DUKE_ORDER), "test": struct(split_ids["test"], DUKE_ORDER)}
    atomic_write_bytes(out / pedestrian.mat_name(preset), _mat_bytes({f"{preset}_attribute": doc}))
    return groups, [path.relative_to(out).as_posix() for path, _ in jobs], visibility


MAT_HEADER_TEXT_BYTES = 116  # MAT-file v5: descriptive text before the version and endian fields


def _mat_bytes(variables: dict) -> bytes:
    """A MAT-file v5 with a fixed header text, so the same seed writes the same bytes.

    scipy stamps the header with the wall-clock time of writing.
    """
    import io

    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    text = b"MATLAB 5.0 MAT-file, written by attrnet data synth".ljust(MAT_HEADER_TEXT_BYTES)
    return text + buffer.getvalue()[MAT_HEADER_TEXT_BYTES:]


IMAGES_PER_ITEM = 25
UNKNOWN_RATE = 0.01  # DeepFashion: share of attribute annotations written as 0 (unknown)


def _write_deepfashion(preset, out: Path, num, opts: _Options) -> tuple[dict, list[str], dict]:
    from attrnet.data import deepfashion
    from attrnet.data.synth import garments
    from attrnet.data.synth.common import encode_jpeg

    rng = np.random.default_rng(opts.seed)
    truth, labels, category = garments.sample_labels(rng, num)
    groups = groups_of(garments.SPECS)
    visibility = sample_visibility(rng, list(garments.TYPES), num, opts.level)
    names = [s.name for s in garments.SPECS]
    images = []
    for i in range(num):
        kind = garments.CATEGORIES[category[i]][0]
        images.append(f"img/Synthetic_{kind}_{i // IMAGES_PER_ITEM:05d}/img_{i % IMAGES_PER_ITEM + 1:08d}.jpg")
    for i, rel in enumerate(images):
        a = {k: bool(v[i]) for k, v in truth.items()}
        vis = {g: float(v[i]) for g, v in visibility.items()}
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = garments.render(a, bool(category[i]), vis, _image_rng(opts.seed, i), opts.height, opts.width)
        atomic_write_bytes(path, encode_jpeg(img))
        opts.progress(i + 1, num)
    unknown = rng.random((num, len(names))) < UNKNOWN_RATE
    codes = np.array(_split_codes(num, (0.7, 0.15, 0.15)))[rng.permutation(num)]
    if opts.noisy_group:
        flip_labels(_noise_rng(opts.seed), labels, groups[opts.noisy_group], opts.label_noise, codes != TEST_CODE)
    values = np.stack([np.where(labels[n], 1, -1) for n in names], axis=1)
    values[unknown] = 0
    types = {s.name: garments.TYPES[s.group] for s in garments.SPECS}
    cloth = [f"{len(names)}", "attribute_name  attribute_type"] + [f"{n:<29}{types[n]}" for n in names]
    atomic_write_text(out / deepfashion.CLOTH_FILE, "\r\n".join(cloth) + "\r\n")
    rows = [f"{num}", "image_name  attribute_labels"]
    rows += [f"{rel:<60}" + " ".join(f"{v:>2d}" for v in values[i]) for i, rel in enumerate(images)]
    atomic_write_text(out / deepfashion.ATTR_FILE, "\r\n".join(rows) + "\r\n")
    cats = [f"{len(garments.CATEGORIES)}", "category_name  category_type"]
    cats += [f"{c:<29}{t}" for c, t in garments.CATEGORIES]
    atomic_write_text(out / "Anno/list_category_cloth.txt", "\r\n".join(cats) + "\r\n")
    cat_rows = [f"{num}", "image_name  category_label"] + [f"{rel:<60}{category[i] + 1}" for i, rel in enumerate(images)]
    atomic_write_text(out / "Anno/list_category_img.txt", "\r\n".join(cat_rows) + "\r\n")
    part = [f"{num}", "image_name  evaluation_status"]
    part += [f"{rel:<60}{('train', 'val', 'test')[c]}" for rel, c in zip(images, codes)]
    atomic_write_text(out / deepfashion.PARTITION_FILE, "\r\n".join(part) + "\r\n")
    return groups, images, visibility


_WRITERS = {"celeba": _write_celeba, "market": _write_pedestrians, "duke": _write_pedestrians,
            "deepfashion": _write_deepfashion}
