"""Fast parsing of the whitespace tables the benchmarks ship (name then small integers).

CelebA's 202,599 x 40 attribute file and DeepFashion's 289,222 x 1000 one are
parsed with numpy over the bytes instead of a Python loop over tokens.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from attrnet.errors import InputError

_CHUNK_BYTES = 32 << 20


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


def parse_int_rows(
    rests: Sequence[str], ncols: int, allowed: Sequence[int], first_line: int, path: Path
) -> np.ndarray:
    """Parse rows of `ncols` single-digit integers (optionally signed) into int8 ``[n, ncols]``.

    Wrong counts and values outside `allowed` raise `InputError` with the file line.
    """
    out = np.empty((len(rests), ncols), np.int8)
    start = 0
    while start < len(rests):
        stop, size = start, 0
        while stop < len(rests) and (size < _CHUNK_BYTES or stop == start):
            size += len(rests[stop]) + 1
            stop += 1
        out[start:stop] = _parse_chunk(rests[start:stop], ncols, allowed, first_line + start, path)
        start = stop
    return out


def _parse_chunk(rests: Sequence[str], ncols: int, allowed: Sequence[int], first_line: int, path: Path) -> np.ndarray:
    n = len(rests)
    blob = ("\n".join(rests) + "\n").encode("utf-8")
    b = np.frombuffer(blob, np.uint8)
    newline = b == 10
    space = newline | (b == 32) | (b == 9) | (b == 13)
    prev_space = np.concatenate(([True], space[:-1]))
    next_space = np.concatenate((space[1:], [True]))
    starts = np.flatnonzero(~space & prev_space)
    ends = np.flatnonzero(~space & next_space)
    row_of_byte = np.cumsum(newline) - newline  # row index of every byte
    rows = row_of_byte[starts]
    counts = np.bincount(rows, minlength=n)
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        r = int(bad[0])
        raise InputError(f"expected {ncols} values, found {int(counts[r])}", path, first_line + r)
    length = ends - starts + 1
    c0 = b[starts].astype(np.int16)
    c1 = b[np.minimum(starts + 1, len(b) - 1)].astype(np.int16)
    digit0 = (c0 >= 48) & (c0 <= 57)
    digit1 = (c1 >= 48) & (c1 <= 57)
    one = (length == 1) & digit0
    signed = (length == 2) & ((c0 == 45) | (c0 == 43)) & digit1
    value = np.where(one, c0 - 48, np.where(c0 == 45, -(c1 - 48), c1 - 48))
    ok = (one | signed) & np.isin(value, np.asarray(allowed))
    if not ok.all():
        t = int(np.flatnonzero(~ok)[0])
        token = blob[starts[t]:ends[t] + 1].decode("utf-8", "replace")
        allowed_text = ", ".join(str(a) for a in allowed)
        raise InputError(f"unknown value {token!r} (expected one of {allowed_text})", path, first_line + int(rows[t]))
    return value.astype(np.int8).reshape(n, ncols)


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

