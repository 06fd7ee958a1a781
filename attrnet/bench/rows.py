"""Benchmark result rows: one per backend x precision x batch size x mode.

JSON contract (`attrnet benchmark --json`): every row has `backend`,
`precision`, `batch_size`, `mode` (``model-only`` | ``end-to-end``),
`images_per_s`, `p50_ms`, `p99_ms` (null when it did not run), `device`, and
`reason` (could not run here: missing backend, device or precision) or
`error` (it was tried and failed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from attrnet.bench.stats import percentile

__all__ = ["failed", "measured", "MODES", "Row", "skipped"]

MODES = ("model-only", "end-to-end")


@dataclass(frozen=True)
class Row:
    backend: str
    precision: str
    batch_size: int
    mode: str
    images_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    device: str | None = None
    reason: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")

    @property
    def ran(self) -> bool:
        return self.images_per_s is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "backend": self.backend, "precision": self.precision, "batch_size": self.batch_size,
            "mode": self.mode, "images_per_s": _round(self.images_per_s), "p50_ms": _round(self.p50_ms),
            "p99_ms": _round(self.p99_ms), "device": self.device,
        }
        if self.reason is not None:
            d["reason"] = self.reason
        if self.error is not None:
            d["error"] = self.error
        return d


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def measured(backend: str, precision: str, batch_size: int, mode: str, latencies_s: Sequence[float],
             images: int | None = None, total_s: float | None = None, device: str | None = None) -> Row:
    """A row from per-batch latencies (seconds).

    Throughput is `images` over `total_s` when given (a pipelined run, where
    batches overlap), else batch_size x count over the summed latencies.
    """
    if not latencies_s:
        raise ValueError("no latencies measured")
    if images is None or total_s is None:
        images, total_s = batch_size * len(latencies_s), float(sum(latencies_s))
    rate = images / total_s if total_s > 0 else float("inf")
    return Row(backend, precision, batch_size, mode, rate,
               percentile(latencies_s, 50) * 1e3, percentile(latencies_s, 99) * 1e3, device)


def skipped(backend: str, precision: str, batch_sizes: Sequence[int], reason: str,
            modes: Sequence[str] = MODES, device: str | None = None) -> list[Row]:
    """Rows for a combination that cannot run here, each saying why."""
    return [Row(backend, precision, b, m, device=device, reason=reason) for m in modes for b in batch_sizes]


def failed(backend: str, precision: str, batch_size: int, mode: str, error: str, device: str | None = None) -> Row:
    return Row(backend, precision, batch_size, mode, device=device, error=error)
