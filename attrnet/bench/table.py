"""Rendering benchmark rows as a rich table (terminal) or markdown (RESULTS.md).

Rows that did not run are collapsed: one line per backend x precision x
reason, listing the batch sizes and modes it covers.
"""
from __future__ import annotations

from typing import Sequence

from rich.markup import escape
from rich.table import Table

from attrnet.bench.rows import MODES, Row

__all__ = ["display_rows", "HEADERS", "markdown_table", "rich_table", "rows_markdown"]

HEADERS = ("backend", "precision", "device", "mode", "batch", "images/s", "p50 ms", "p99 ms", "note")
_NUMERIC = ("batch", "images/s", "p50 ms", "p99 ms")


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}" if x < 1e5 else f"{x:,.0f}"


def _note(row: Row) -> str:
    return row.reason or (f"error: {row.error}" if row.error else "")


def display_rows(rows: Sequence[Row]) -> list[tuple[list[str], bool]]:
    """(cells, ran) per displayed line; rows that did not run are merged by backend, precision and note."""
    out: list[tuple[list[str], bool]] = []
    merged: dict[tuple[str, str, str], tuple[int, list[str], list[str]]] = {}
    for r in rows:
        if r.ran:
            out.append(([r.backend, r.precision, r.device or "-", r.mode, str(r.batch_size), _fmt(r.images_per_s),
                         _fmt(r.p50_ms, 2), _fmt(r.p99_ms, 2), ""], True))
            continue
        key = (r.backend, r.precision, _note(r))
        if key not in merged:
            merged[key] = (len(out), [], [])
            out.append(([], False))
        _, modes, batches = merged[key]
        if r.mode not in modes:
            modes.append(r.mode)
        if str(r.batch_size) not in batches:
            batches.append(str(r.batch_size))
    for (backend, precision, note), (i, modes, batches) in merged.items():
        first = next(r for r in rows if not r.ran and (r.backend, r.precision, _note(r)) == (backend, precision, note))
        mode = "all" if set(modes) == set(MODES) else ",".join(modes)
        out[i] = ([backend, precision, first.device or "-", mode, ",".join(batches), "-", "-", "-", note], False)
    return out


def rich_table(rows: Sequence[Row], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for h in HEADERS:
        table.add_column(h, justify="right" if h in _NUMERIC else "left", overflow="fold",
                         no_wrap=h not in ("note",))
    for cells, ran in display_rows(rows):
        table.add_row(*(escape(c) for c in cells), style=None if ran else ("red" if cells[-1].startswith("error") else "dim"))
    return table


def markdown_table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    out = [line(headers), "|" + "|".join("---" for _ in headers) + "|"]
    out += [line(r) for r in body]
    return "\n".join(out)


def rows_markdown(rows: Sequence[Row]) -> str:
    return markdown_table(HEADERS, [cells for cells, _ in display_rows(rows)])
