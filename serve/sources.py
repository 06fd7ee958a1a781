"""Turn what the user passes to `predict` into a lazy stream of items to decode.

A source is a file, a directory (recursive), a glob, a text file of paths
(one per line, relative to the list file's folder), a video (frames through
OpenCV with a stride), a numpy array (one image ``HxW[xC]`` or a batch
``NxHxWxC``), a PIL image, encoded image bytes, or an iterable of these.
Nothing is read ahead: a directory of millions of images streams.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.imageio import IMAGE_SUFFIXES

__all__ = ["Item", "iter_directory", "iter_items", "iter_list_file", "iter_video", "LIST_SUFFIXES",
           "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
_GLOB_CHARS = frozenset("*?[")


@dataclass
class Item:
    """One image to predict: a file to decode, or an in-memory image; `error` if already known bad."""

    source: str
    path: Path | None = None
    data: Any = None
    error: str | None = None


def iter_items(source: Any, *, stride: int = 1, allow_outside: bool = False) -> Iterator[Item]:
    """Expand `source` lazily into items (see the module docstring for what a source may be).

    Raises `InputError` when a named path does not exist or a directory or glob holds no images.
    """
    if stride < 1:
        raise InputError(f"video stride must be >= 1, got {stride}")
    yield from _expand(source, stride, allow_outside, count())


def _expand(source: Any, stride: int, allow_outside: bool, counter: Iterator[int]) -> Iterator[Item]:
    if isinstance(source, (str, os.PathLike)):
        yield from _expand_path(str(source), stride, allow_outside)
    elif isinstance(source, np.ndarray):
        if source.ndim == 4:
            for img in source:
                yield Item(f"<array {next(counter)}>", data=img)
        else:
            yield Item(f"<array {next(counter)}>", data=source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield Item(f"<bytes {next(counter)}>", data=bytes(source))
    elif _is_pil(source):
        name = getattr(source, "filename", "") or f"<image {next(counter)}>"
        yield Item(name, data=source)
    elif isinstance(source, Iterable):
        for element in source:
            if isinstance(element, (str, os.PathLike)) and not Path(element).exists():
                yield _file_item(Path(element))  # inside a list, a missing file is an error row
            else:
                yield from _expand(element, stride, allow_outside, counter)
    else:
        raise InputError(f"cannot predict on a {type(source).__name__}: pass a path, a glob, a numpy array, "
                         "a PIL image, image bytes or an iterable of these")


def _is_pil(obj: Any) -> bool:
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def _expand_path(text: str, stride: int, allow_outside: bool) -> Iterator[Item]:
    path = Path(text)
    if path.is_dir():
        yield from _require_some(iter_directory(path), "no images found (searched recursively)", path)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            yield from iter_video(path, stride)
        elif suffix in LIST_SUFFIXES:
            yield from _require_some(iter_list_file(path, allow_outside), "list file names no images", path)
        else:
            yield _file_item(path)
    elif _GLOB_CHARS & set(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise InputError("no files match this pattern", text)
        for m in matches:
            mp = Path(m)
            if mp.is_dir():
                yield from iter_directory(mp)
            elif mp.suffix.lower() in VIDEO_SUFFIXES:
                yield from iter_video(mp, stride)
            else:
                yield _file_item(mp)
    else:
        raise InputError("no such file or directory", path)


def _require_some(items: Iterator[Item], message: str, where: Path) -> Iterator[Item]:
    seen = False
    for item in items:
        seen = True
        yield item
    if not seen:
        raise InputError(message, where)


def _file_item(path: Path) -> Item:
    return Item(str(path), path=path)


def iter_directory(folder: Path) -> Iterator[Item]:
    """Image files under `folder`, recursively, in sorted order; hidden files and folders skipped."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield _file_item(Path(root) / name)


def iter_list_file(list_path: Path, allow_outside: bool = False) -> Iterator[Item]:
    """Paths listed one per line (blank lines and ``#`` comments skipped), relative to the list's folder.

    A path that resolves outside the list file's folder becomes an error item unless `allow_outside`.
    """
    base = list_path.parent
    base_resolved = Path(os.path.realpath(base))
    try:
        f = list_path.open(encoding="utf-8-sig", newline=None)
    except OSError as exc:
        raise InputError(f"cannot read list file: {exc.strerror or exc}", list_path) from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                path = base / entry
                # realpath, not Path.resolve(): a symlink loop must become an error row (resolve raises
                # RuntimeError on Python < 3.13)
                if not allow_outside and not _inside(Path(os.path.realpath(path)), base_resolved):
                    yield Item(str(path), path=None,
                               error=f"{list_path}:{lineno}: path is outside the list file's folder "
                                     "(pass --allow-outside / allow_outside=True to permit it)")
                    continue
                yield _file_item(path)
        except UnicodeDecodeError:
            raise InputError("list file is not valid UTF-8 text", list_path) from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def iter_video(path: Path, stride: int = 1) -> Iterator[Item]:
    """Every `stride`-th frame of a video as an RGB item named ``<path>#frame=<n>``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            yield Item(str(path), error="cannot open video (unsupported codec or corrupt file)")
            return
        index = 0
        while True:
            if index % stride == 0:
                ok, frame = cap.read()
                if not ok:
                    break
                yield Item(f"{path}#frame={index}", data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            elif not cap.grab():
                break
            index += 1
        if index == 0:
            yield Item(str(path), error="video has no readable frames")
    finally:
        cap.release()
