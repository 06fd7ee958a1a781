"""Resources: predict memory stays flat with the number of images; queues stay bounded for a slow consumer."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from reliability_helpers import DEFAULT_ONNX, PYTHON, encode, rgb

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
RSS_SLACK_MB = 40.0  # allowed growth of peak RSS between the small and the large run


def write_small_jpegs(folder: Path, n: int, start: int = 0) -> None:
    """`n` distinct 24x24 JPEGs in sub-folders of 1000 (one cached encode, a varied pixel per file)."""
    base = rgb(24, 24)
    for i in range(start, start + n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0 or i == start:
            sub.mkdir(parents=True, exist_ok=True)
        img = base.copy()
        img[0, 0] = (i % 256, (i // 256) % 256, 7)
        (sub / f"{i:06d}.jpg").write_bytes(encode(img, "JPEG"))


def peak_rss_mb(images: Path, out: Path) -> float:
    """Peak RSS (MiB) of one `attrnet predict` process over `images`, writing CSV rows to `out`."""
    proc = subprocess.Popen([PYTHON, "-m", "attrnet", "predict", str(images), "--model", str(DEFAULT_ONNX),
                             "--out", str(out), "--threads", "1", "--workers", "2", "--batch-size", "32"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, stderr[-2000:]
    return usage.ru_maxrss / 1024.0


def _rows(out: Path) -> int:
    return out.read_bytes().count(b"\n") - 1


def _flat(tmp_path: Path, small: int, large: int) -> tuple[float, float]:
    folder = tmp_path / "imgs"
    write_small_jpegs(folder, small)
    a = peak_rss_mb(folder, tmp_path / "a.csv")
    assert _rows(tmp_path / "a.csv") == small
    write_small_jpegs(folder, large - small, start=small)
    b = peak_rss_mb(folder, tmp_path / "b.csv")
    assert _rows(tmp_path / "b.csv") == large
    print(f"peak RSS: {small} images {a:.1f} MiB, {large} images {b:.1f} MiB")
    return a, b


def test_predict_memory_flat_2k_vs_6k(tmp_path: Path) -> None:
    a, b = _flat(tmp_path, 2000, 6000)
    assert b - a < RSS_SLACK_MB, (a, b)


@pytest.mark.slow
def test_predict_memory_flat_10k_vs_100k(tmp_path: Path) -> None:
    a, b = _flat(tmp_path, 10_000, 100_000)
    assert b - a < RSS_SLACK_MB, (a, b)


def test_slow_consumer_keeps_the_pipeline_bounded(tmp_path: Path) -> None:
    """Items are pulled from the source only a bounded distance ahead of what the consumer has taken."""
    from attrnet.serve.predictor import Predictor

    write_small_jpegs(tmp_path, 400)
    paths = sorted(str(p) for p in tmp_path.rglob("*.jpg"))
    pulled = 0

    def source():
        nonlocal pulled
        for p in paths:
            pulled += 1
            yield p

    batch = 8
    predictor = Predictor(DEFAULT_ONNX, batch_size=batch, workers=2, threads=1)
    ahead = []
    for k, result in enumerate(predictor.predict(source()), 1):
        assert result.ok
        if k % 25 == 0:
            time.sleep(0.05)  # a slow consumer: the producer must wait, not buffer everything
            ahead.append(pulled - k)
    assert k == len(paths)
    print(f"source items pulled ahead of the consumer: max {max(ahead)}")
    assert max(ahead) <= 8 * batch, ahead
