"""Fast parsing of the whitespace tables the benchmarks ship (name then small integers).

CelebA's 202,599 x 40 attribute file and DeepFashion's 289,222 x 1000 one are
parsed with numpy over the bytes instead of a Python loop over tokens.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from attrnet.core.errors import InputError

__all__ = ["assign_splits", "check_files_exist", "check_inside", "check_unique", "read_count", "read_table",
           "split_name_rows", "table_body"]

_CHUNK_BYTES = 4 << 20


def split_name_rows(lines: Sequence[str], first_line: int, path: Path) -> tuple[list[str], list[str]]:
    """Split each line into (first token, rest); `first_line` is the 1-based file line of lines[0]."""
    names, rests = [], []
    for k, line in enumerate(lines):
        parts = line.split(None, 1)
        if not parts:
            raise InputError("blank line inside the table", path, first_line + k)
        names.append(parts[0])
        rests.append(parts[1] if len(parts) > 1 else "")
    return names, rests


def read_table(path: Path, ncols: int, allowed: Sequence[int]) -> tuple[str, list[str], np.ndarray]:
    """Read a benchmark table: line 1 the image count, line 2 a header, then ``<name> <ncols values>`` rows.

    Returns (header line, names, int8 values ``[n, ncols]``). The file is
    memory-mapped and parsed in chunks, so memory stays near the size of the
    result. Values are single digits with an optional sign, each in `allowed`.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise InputError("empty file", path)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos = 3 if mm[:3] == b"\xef\xbb\xbf" else 0
            head: list[str] = []
            while len(head) < 2 and pos < size:
                nl = mm.find(b"\n", pos)
                nl = size if nl < 0 else nl
                head.append(_decode(mm[pos:nl], path, len(head) + 1).rstrip())
                pos = nl + 1
            count = read_count(head, path)
            if len(head) < 2:
                raise InputError("missing the header line", path, 2)
            names, chunks = [], []
            line, blank_at = 3, None
            while pos < size:
                end = min(pos + _CHUNK_BYTES, size)
                if end < size:
                    nl = mm.rfind(b"\n", pos, end)
                    nl = nl if nl >= 0 else mm.find(b"\n", end)
                    end = size if nl < 0 else nl + 1
                lines = [ln.rstrip() for ln in _decode(mm[pos:end], path, line).splitlines()]
                pos = end
                rows = []
                for k, text in enumerate(lines):
                    if not text:
                        blank_at = blank_at or line + k
                    elif blank_at is not None:
                        raise InputError("blank line inside the table", path, blank_at)
                    else:
                        rows.append(text)
                chunk_names, rests = split_name_rows(rows, line, path)
                if rests:
                    chunks.append(_parse_chunk(rests, ncols, allowed, line, path))
                names += chunk_names
                line += len(lines)
    if len(names) != count:
        raise InputError(f"first line says {count} images but the file has {len(names)} rows", path, 1)
    values = np.concatenate(chunks) if chunks else np.zeros((0, ncols), np.int8)
    return head[1], names, values


def _decode(data: bytes, path: Path, first_line: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not valid UTF-8 text", path, first_line + data[: exc.start].count(b"\n")) from None


def _parse_chunk(rests: Sequence[str], ncols: int, allowed: Sequence[int], first_line: int, path: Path) -> np.ndarray:
    blob = ("\n".join(rests) + "\n").encode("utf-8")
    b = np.frombuffer(blob, np.uint8)
    newlines = np.flatnonzero(b == 10)
    space = b <= 32  # blank, tab, CR, LF
    digit = (b >= 48) & (b <= 57)
    next_digit = np.append(digit[1:], False)
    prev_space = np.insert(space[:-1], 0, True)
    sign = ((b == 45) | (b == 43)) & next_digit & prev_space
    # a well-formed token is one digit with an optional sign: anything else is a bad byte
    bad = ~space & ~sign & ~(digit & (prev_space | np.insert(sign[:-1], 0, False)) & ~next_digit)
    positions = np.flatnonzero(digit)
    counts = np.diff(np.searchsorted(positions, newlines), prepend=0)
    if bad.any():
        _raise_bad_token(blob, int(np.flatnonzero(bad)[0]), newlines, allowed, first_line, path)
    wrong = np.flatnonzero(counts != ncols)
    if wrong.size:
        r = int(wrong[0])
        raise InputError(f"expected {ncols} values, found {int(counts[r])}", path, first_line + r)
    value = b[positions].astype(np.int8) - 48
    value[b[positions - 1] == 45] *= -1  # at position 0, index -1 reads the final newline
    table = np.zeros(19, bool)
    table[np.asarray(allowed) + 9] = True
    ok = table[value.astype(np.int16) + 9]
    if not ok.all():
        _raise_bad_token(blob, int(positions[np.flatnonzero(~ok)[0]]), newlines, allowed, first_line, path)
    return value.reshape(len(rests), ncols)


def _raise_bad_token(blob: bytes, pos: int, newlines: np.ndarray, allowed: Sequence[int], first_line: int, path: Path) -> None:
    lo = pos
    while lo > 0 and blob[lo - 1] > 32:
        lo -= 1
    hi = pos
    while hi < len(blob) and blob[hi] > 32:
        hi += 1
    row = int(np.searchsorted(newlines, pos))
    allowed_text = ", ".join(str(a) for a in allowed)
    token = blob[lo:hi].decode("utf-8", "replace")
    raise InputError(f"unknown value {token!r} (expected one of {allowed_text})", path, first_line + row)


def read_count(lines: Sequence[str], path: Path) -> int:
    """The image count on a benchmark file's first line."""
    if not lines:
        raise InputError("empty file", path)
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise InputError(f"expected the number of images on the first line, got {lines[0].strip()[:40]!r}", path, 1) from None
    if count < 0:
        raise InputError("negative image count", path, 1)
    return count


def table_body(lines: Sequence[str], first: int, count: int, path: Path) -> list[str]:
    """Lines ``first..`` (0-based) without trailing blank lines; their number must equal `count`."""
    end = len(lines)
    while end > first and not lines[end - 1].strip():
        end -= 1
    body = list(lines[first:end])
    if len(body) != count:
        raise InputError(f"first line says {count} images but the file has {len(body)} rows", path, 1)
    return body


def assign_splits(names: Sequence[str], partition: dict[str, str], first_line: int, listing: Path,
                  partition_file: str) -> np.ndarray:
    """The split of every image from a partition mapping; an image it misses names its line in `listing`."""
    splits = np.empty(len(names), dtype=object)
    for k, name in enumerate(names):
        split = partition.get(name)
        if split is None:
            raise InputError(f"{name} is not listed in {partition_file}", listing, first_line + k)
        splits[k] = split
    return splits.astype(str)


def check_files_exist(paths: Sequence[Path], lines: Sequence[int], listing: Path) -> None:
    """Every path must exist; a missing one is reported at its line of the listing file."""
    dirs: dict[Path, set[str]] = {}
    for p, line in zip(paths, lines):
        names = dirs.get(p.parent)
        if names is None:
            try:
                names = set(os.listdir(p.parent))
            except OSError:
                names = set()
            dirs[p.parent] = names
        if p.name not in names:
            raise InputError(f"image not found: {p}", listing, line)



def check_unique(names: Sequence[str], lines: Sequence[int], listing: Path) -> None:
    """No image may be listed twice; the second listing is reported at its line."""
    first: dict[str, int] = {}
    for name, line in zip(names, lines):
        seen = first.setdefault(name, line)
        if seen != line:
            raise InputError(f"image {name!r} listed twice (first on line {seen})", listing, line)


def check_inside(root: Path, paths: Sequence[Path], lines: Sequence[int | None], listing: Path, allow_outside: bool) -> None:
    """Reject a path that leaves `root` (``..``, absolute, or a symlink out of the tree) unless `allow_outside`.

    Symlinked folders are resolved once per folder; a file is resolved only when it is itself a symlink.
    """
    if allow_outside:
        return
    top = os.path.realpath(root)
    parents: dict[Path, bool] = {}
    for p, line in zip(paths, lines):
        inside = parents.get(p.parent)
        if inside is None:
            inside = parents[p.parent] = _within(os.path.realpath(p.parent), top)
        if inside and os.path.islink(p):
            inside = _within(os.path.realpath(p), top)
        if not inside:
            raise InputError(f"image {str(p)!r} is outside the dataset folder {str(root)!r} "
                             "(allow it with --allow-outside / allow_outside=True)", listing, line)


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)
