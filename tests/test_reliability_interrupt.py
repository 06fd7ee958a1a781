"""Interruption: SIGKILL during training, predict and export; SIGINT during predict."""
from __future__ import annotations

import csv
import os
import random
import signal
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reliability_helpers import DEFAULT_ONNX, PYTHON, ROOT, rgb

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _attrnet(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "attrnet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, **kw)


def _tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


# --- training ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attrnet.data.synth import generate

    root = tmp_path_factory.mktemp("train") / "celeba"
    generate("celeba", root, num=48, seed=0, size=(16, 16))
    return root


def _train_args(data: Path, out: Path, epochs: int) -> list[str]:
    return ["train", "--data", f"celeba:{data}", "--out", str(out), "--arch", "tiny", "--epochs", str(epochs),
            "--batch-size", "8", "--img-size", "16", "--workers", "0", "--device", "cpu", "--threads", "1",
            "--seed", "0", "--log-every", "1"]


PROGRESS = re.compile(r"^epoch (\d+)/\d+ step (\d+)/\d+ ")


class Watched:
    """One training process whose progress the test follows: the last (epoch, step) of its progress lines
    (``--log-every 1``) and the epochs its last.safetensors holds."""

    def __init__(self, args: list[str], out: Path, limit: float = 120):
        self.proc, self.out = _attrnet(args), out
        self.seen = (0, 0)
        self.stderr: list[str] = []
        self.watchdog = threading.Timer(limit, self.proc.kill)  # a hang ends as a failure, not a stuck test
        self.watchdog.start()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            m = PROGRESS.match(line)
            if m:
                self.seen = (int(m[1]), int(m[2]))

    def checkpoints(self) -> int:
        from attrnet.train.checkpoint import read_metadata

        last = self.out / "last.safetensors"
        return read_metadata(last)["resume"]["epoch"] if last.exists() else 0

    def reached(self, point: tuple) -> bool:
        kind, *where = point
        return self.checkpoints() >= where[0] if kind == "checkpoint" else self.seen >= tuple(where)

    def kill_at(self, point: tuple | None) -> bool:
        """SIGKILL the run once it reaches `point`; None: let it finish. True when it ran to the end."""
        try:
            while self.proc.poll() is None:
                if point is not None and self.reached(point):
                    self.proc.send_signal(signal.SIGKILL)
                    self.proc.wait()
                    return False
                time.sleep(0.002)
        finally:
            self.watchdog.cancel()
            self.proc.stdout.close()
        assert self.proc.returncode == 0, "".join(self.stderr)[-2000:]
        assert point is None, f"the run ended before it reached {point}"
        return True


def _kill_points(rng: random.Random, epochs: int, kills: int) -> list[tuple]:
    """Where each kill lands, moving forward through the run: alternately mid-epoch, after step 1 or 2 of an epoch
    (``("step", epoch, step)``), and just after the Nth epoch's checkpoint is on disk (``("checkpoint", N)``).
    Never after the last checkpoint: the run must still be going when its point comes."""
    points: list[tuple] = []
    on_disk = 0  # epochs in last.safetensors when the next attempt starts
    for i in range(kills):
        if i % 2 == 0:
            epoch = rng.randint(on_disk + 1, min(on_disk + 2, epochs))
            points.append(("step", epoch, rng.randint(1, 2)))
            on_disk = epoch - 1
        else:
            on_disk = rng.randint(on_disk + 1, epochs - 1)
            points.append(("checkpoint", on_disk))
    return points


def _kill_resume_loop(data: Path, tmp_path: Path, epochs: int, kills: int, seed: int) -> None:
    ref = tmp_path / "ref"
    assert Watched(_train_args(data, ref, epochs), ref).kill_at(None)
    run = tmp_path / "run"
    points = _kill_points(random.Random(seed), epochs, kills)
    for point in points:
        assert not Watched(_train_args(data, run, epochs) + ["--resume"], run).kill_at(point)
        last = run / "last.safetensors"
        if last.exists():  # whatever moment it was killed at, the checkpoint on disk loads
            from attrnet.train.checkpoint import load_checkpoint

            tensors, meta = load_checkpoint(last)
            assert tensors and "resume" in meta
            if point[0] == "checkpoint":
                assert meta["resume"]["epoch"] == point[1]
    assert Watched(_train_args(data, run, epochs) + ["--resume"], run).kill_at(None)
    _assert_same_run(ref, run)
    np.testing.assert_array_equal(_tensors(run / "best.safetensors")["head.weight"],
                                  _tensors(ref / "best.safetensors")["head.weight"])


def _assert_same_run(ref: Path, run: Path) -> None:
    want, got = _tensors(ref / "last.safetensors"), _tensors(run / "last.safetensors")
    assert sorted(want) == sorted(got)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_training_killed_after_its_first_checkpoint_resumes_to_the_same_weights(train_data: Path,
                                                                                tmp_path: Path) -> None:
    """Fast version: one SIGKILL as soon as the first epoch's checkpoint is on disk, resumed in-process."""
    from attrnet.train.checkpoint import load_checkpoint
    from attrnet.cli import main

    run = tmp_path / "run"
    proc = _attrnet(_train_args(train_data, run, 2))
    deadline = time.monotonic() + 120
    while not (run / "last.safetensors").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    tensors, meta = load_checkpoint(run / "last.safetensors")
    assert meta["resume"]["epoch"] >= 1
    torch_threads = __import__("torch").get_num_threads()
    try:
        assert main(_train_args(train_data, run, 2) + ["--resume"]) == 0
        assert main(_train_args(train_data, tmp_path / "ref", 2)) == 0
    finally:
        __import__("torch").set_num_threads(torch_threads)
    _assert_same_run(tmp_path / "ref", run)


@pytest.mark.slow
def test_training_killed_once_at_random_resumes_to_the_same_weights(train_data: Path, tmp_path: Path) -> None:
    _kill_resume_loop(train_data, tmp_path, epochs=2, kills=1, seed=1)


@pytest.mark.slow
def test_training_killed_three_times_resumes_to_the_same_weights(train_data: Path, tmp_path: Path) -> None:
    _kill_resume_loop(train_data, tmp_path, epochs=6, kills=3, seed=2)


# --- predict -----------------------------------------------------------------------------------------

N_IMAGES = 1500


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    root = tmp_path_factory.mktemp("many")
    for i in range(N_IMAGES):
        cv2.imwrite(str(root / f"{i:05d}.jpg"), rgb(128, 128, seed=i))
    return root


def _predict(images: Path, out: Path, *extra: str) -> subprocess.Popen:
    return _attrnet(["predict", str(images), "--model", str(DEFAULT_ONNX), "--out", str(out), "--threads", "1",
                     "--workers", "1", "--batch-size", "4", *extra])


def _wait_rows(proc: subprocess.Popen, out: Path, rows: int, limit: float = 60) -> None:
    """Wait until `out` holds at least `rows` lines (the run must still be going)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") > rows:
            assert proc.poll() is None, "predict finished before it could be interrupted"
            return
        time.sleep(0.01)
    raise AssertionError("predict wrote no rows in time")


def _rows(out: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = out.read_text(encoding="utf-8")
    reader = csv.reader(text.splitlines())
    header = next(reader)
    return header, [dict(zip(header, r)) for r in reader]


def test_predict_sigkill_then_resume_has_every_row_once(many_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    proc = _predict(many_images, out)
    _wait_rows(proc, out, 100)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].decode().splitlines()
    header = complete[0].split(",")
    assert all(len(next(csv.reader([ln]))) == len(header) for ln in complete[1:])  # whole rows up to the tail
    proc = _predict(many_images, out, "--resume")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    header2, rows = _rows(out)
    assert header2 == header
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == N_IMAGES
    assert all(r["error"] == "" and len(r) == len(header) for r in rows)


def test_predict_sigint_stops_promptly_and_flushes(many_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    proc = _predict(many_images, out)
    _wait_rows(proc, out, 100)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=15)  # a hang fails here
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    data = out.read_bytes()
    assert data.endswith(b"\n")  # flushed, no partial row
    header, rows = _rows(out)
    assert 100 <= len(rows) < N_IMAGES
    assert all(len(r) == len(header) for r in rows)


# --- export ------------------------------------------------------------------------------------------

def test_export_killed_at_any_moment_leaves_no_partial_file(tmp_path: Path) -> None:
    import onnx

    src = ROOT / "weights" / "default.safetensors"
    rng = random.Random(3)
    for attempt in range(2):
        out = tmp_path / f"m{attempt}.onnx"
        proc = _attrnet(["export", str(src), "--out", str(out)])
        try:
            proc.communicate(timeout=rng.uniform(1.0, 6.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
        if out.exists():  # finished before the kill: a whole, loadable model
            onnx.checker.check_model(onnx.load(str(out)))
        visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
        assert all(name.startswith("m") and (tmp_path / name).exists() for name in visible)
        for name in visible:
            onnx.checker.check_model(onnx.load(str(tmp_path / name)))


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    """An export whose --out cannot be written (its folder is a file) fails with one line and writes nothing."""
    src = ROOT / "weights" / "default.safetensors"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([PYTHON, "-m", "attrnet", "export", str(src), "--out", str(blocker / "m.onnx")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"attrnet: error: {blocker / 'm.onnx'}: cannot write here")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert "folding" not in proc.stderr  # refused before any folding or parity work


# --- atomic writes -----------------------------------------------------------------------------------

def test_atomic_write_keeps_old_file_on_failure_and_normal_permissions(tmp_path: Path) -> None:
    from attrnet.core.fileio import atomic_path, atomic_write_text

    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """A `kill -9` mid-write leaves ``.NAME.PID.*.tmp``; the next write of NAME removes it unless PID still runs."""
    from attrnet.core.fileio import atomic_write_text

    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()  # its pid is now free (reuse by the time of the write is possible but vanishingly rare)
    orphan = tmp_path / f".out.txt.{dead.pid}.abc123.tmp"
    alive = tmp_path / f".out.txt.{os.getppid()}.def456.tmp"  # the test runner's parent still runs
    other = tmp_path / f".other.txt.{dead.pid}.ghi789.tmp"  # another file's temp is not touched
    for p in (orphan, alive, other):
        p.write_text("half")
    atomic_write_text(tmp_path / "out.txt", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.txt", alive.name, other.name])
