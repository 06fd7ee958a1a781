"""Numerics: loss weightings stay finite on degenerate losses; a NaN/Inf loss stops training."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attrnet.train.weighting import AWMT, DWA, awmt_update, dwa_weights

LOSS = st.one_of(st.floats(0, 1e30, allow_subnormal=True), st.just(0.0), st.just(float("nan")),
                 st.just(float("inf")), st.just(1e-45))
VECTORS = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(LOSS, min_size=n, max_size=n),
                                                        st.lists(LOSS, min_size=n, max_size=n)))


def _check_weights(w: torch.Tensor | None, n: int) -> None:
    if w is None:
        return
    assert w.shape == (n,) and torch.isfinite(w).all() and (w >= 0).all(), w
    assert abs(float(w.double().mean()) - 1.0) < 1e-4, w


@settings(max_examples=100, deadline=None, derandomize=True)
@given(VECTORS)
def test_awmt_update_finite_for_any_window_means(pair: tuple[list[float], list[float]]) -> None:
    pre, cur = (torch.tensor(v, dtype=torch.float32) for v in pair)
    _check_weights(awmt_update(pre, cur), len(pair[0]))


@pytest.mark.parametrize("losses", [0.0, 0.7, 1e-45, 3e38], ids=["zero", "equal", "subnormal", "huge"])
def test_awmt_constant_validation_losses_keep_weights_finite(losses: float) -> None:
    awmt = AWMT(4, k=3)
    for _ in range(12):
        awmt.observe_val(torch.full((4,), losses))
        w = awmt.weights()
        assert torch.isfinite(w).all() and abs(float(w.mean()) - 1) < 1e-5, w
    task = torch.tensor([0.5, 0.1, 0.0, 2.0])
    assert torch.isfinite(awmt.combine(task))


def test_awmt_zero_losses_on_some_tasks_only() -> None:
    awmt = AWMT(3, k=2)
    for step in range(10):
        awmt.observe_val(torch.tensor([0.0, 1.0 / (step + 1), float("nan")]))
        assert torch.isfinite(awmt.weights()).all()


PLAIN_LOSS = st.one_of(st.floats(0.05, 20.0), st.just(0.0), st.just(float("nan")), st.just(float("inf")))
PLAIN_VECTORS = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(PLAIN_LOSS, min_size=n, max_size=n),
                                                              st.lists(PLAIN_LOSS, min_size=n, max_size=n)))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(PLAIN_VECTORS)
def test_dwa_weights_finite_for_ordinary_epoch_losses(pair: tuple[list[float], list[float]]) -> None:
    l2, l1 = (torch.tensor(v, dtype=torch.float32) for v in pair)
    _check_weights(dwa_weights(l2, l1), len(pair[0]))


@pytest.mark.parametrize("l2,l1", [([1e-3, 1.0], [5.0, 1.0]), ([1e-45, 1.0], [1.0, 1.0])])
def test_dwa_weights_finite_when_a_task_diverges(l2: list[float], l1: list[float]) -> None:
    _check_weights(dwa_weights(torch.tensor(l2), torch.tensor(l1)), 2)


def test_dwa_over_epochs_with_zero_and_equal_losses() -> None:
    dwa = DWA(3)
    for losses in ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]):
        dwa.end_epoch(torch.tensor(losses))
        assert torch.isfinite(dwa.weights()).all()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attrnet.data.synth import generate

    root = tmp_path_factory.mktemp("nan") / "celeba"
    generate("celeba", root, num=24, seed=0, size=(16, 16))
    return root


def test_nan_loss_stops_training_and_keeps_good_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from attrnet.cli import main

    out = tmp_path / "run"
    err = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stderr(err):
            code = main(["train", "--data", f"celeba:{tiny_data}", "--out", str(out), "--arch", "tiny",
                         "--epochs", "2", "--batch-size", "8", "--img-size", "16", "--workers", "0",
                         "--device", "cpu", "--threads", "1", "--lr", "1e30", "--optimizer", "sgd",
                         "--warmup-epochs", "0"])
    finally:
        torch.set_num_threads(threads)
    assert code == 1, err.getvalue()
    assert "nan" in err.getvalue().lower() or "finite" in err.getvalue().lower()
    for ckpt in out.glob("*.safetensors"):  # whatever is on disk is usable
        assert all(np.isfinite(v).all() for v in load_file(str(ckpt)).values() if v.dtype.kind == "f"), ckpt
