"""Prediction output files: CSV or JSONL, one row per image, appended and flushed as results arrive.

CSV columns: ``path``, ``error``, one probability column per output column,
then ``label:<attr>`` per attribute. JSONL rows: ``{"path", "error",
"probs": {column: p}, "labels": {attr: value}}``. A killed run leaves only
complete rows (a partial last line is cut off on `--resume`), and resuming
skips the paths already written.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import IO, Iterable

from attrnet.core.errors import InputError
from attrnet.serve.predictor import Result

__all__ = ["DIGITS", "FORMATS", "Sink", "sink_format"]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DIGITS = 6


def sink_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError("output file must end in .csv or .jsonl", path)
    return FORMATS[suffix]


class Sink:
    """Append rows for `Result`s to a CSV or JSONL file; `done` holds the paths already in it."""

    def __init__(self, path: str | Path, columns: list[str], attributes: list[str], resume: bool = False):
        self.path = Path(path)
        self.format = sink_format(self.path)
        self.columns, self.attributes = list(columns), list(attributes)
        self.done: set[str] = set()
        self.written = 0
        if resume and self.path.is_file():
            self._load_existing()
        self._append = resume and self.path.is_file() and self.path.stat().st_size > 0
        self._file: IO[str] | None = None  # opened at the first row, so a run that cannot start writes nothing

    @property
    def header(self) -> list[str]:
        return ["path", "error", *self.columns, *(f"label:{a}" for a in self.attributes)]

    def write(self, result: Result) -> None:
        if self.format == "csv":
            probs = [f"{result.probs[c]:.{DIGITS}f}" if result.probs else "" for c in self.columns]
            labels = [str(result.labels[a]) if result.labels else "" for a in self.attributes]
            line = _csv_line([result.source, result.error or "", *probs, *labels])
        else:
            line = json.dumps({"path": result.source, "error": result.error,
                               "probs": {c: round(p, DIGITS) for c, p in result.probs.items()},
                               "labels": result.labels}, ensure_ascii=False) + "\n"
        self._write_line(line)
        self.done.add(result.source)
        self.written += 1

    def write_all(self, results: Iterable[Result]) -> None:
        for r in results:
            self.write(r)

    def finish(self) -> None:
        """Close the file, creating it (CSV: with its header) if no row was written."""
        self._open()
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> IO[str]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if self._append else "w", encoding="utf-8", newline="")
            if self.format == "csv" and not self._append:
                self._write_line(_csv_line(self.header))
            self._append = True
        return self._file

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_line(self, line: str) -> None:
        f = self._open()
        f.write(line)
        f.flush()

    def _load_existing(self) -> None:
        """Read the paths already written; cut off a partial last line left by a killed run."""
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            with self.path.open("r+b") as f:
                f.truncate(end)
        try:
            text = raw[:end].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("cannot resume: the file is not UTF-8 text", self.path) from None
        if self.format == "csv":
            self._load_csv(text)
        else:
            self._load_jsonl(text)

    def _load_csv(self, text: str) -> None:
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows, None)
        if header is None:  # empty, or only a partial header (cut off above): the header is rewritten
            return
        if header != self.header:
            raise InputError("cannot resume: its columns differ from this model's output "
                             "(another model wrote it?)", self.path, 1)
        self.done.update(row[0] for row in rows if row)

    def _load_jsonl(self, text: str) -> None:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                path = row["path"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError("cannot resume: not a prediction row", self.path, lineno) from None
            if row.get("probs") and list(row["probs"]) != self.columns:
                raise InputError("cannot resume: its columns differ from this model's output "
                                 "(another model wrote it?)", self.path, lineno)
            self.done.add(path)


def _csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()
