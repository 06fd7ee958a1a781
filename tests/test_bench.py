"""Benchmark helpers: percentiles, timing loops, rows, table rendering, model files per precision."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from attrnet.bench import models, stats
from attrnet.bench.jpegs import write_jpegs
from attrnet.bench.rows import MODES, Row, failed, measured, skipped
from attrnet.bench.runner import cycle_files, model_path_for, time_end_to_end
from attrnet.bench.table import display_rows, markdown_table, rich_table, rows_markdown
from attrnet.core.errors import NotAvailableError


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_matches_numpy(values, q):
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


def test_percentile_edges():
    assert stats.percentile([5.0], 99) == 5.0
    assert stats.percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert stats.percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert stats.percentile([0.0, 10.0], 50) == 5.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_time_calls_times_only_after_warmup_and_syncs():
    ticks = iter(range(100))
    calls, syncs = [], []
    lat = stats.time_calls(lambda: calls.append(1), iters=4, warmup=2, sync=lambda: syncs.append(1),
                           clock=lambda: float(next(ticks)))
    assert len(calls) == 6 and len(syncs) == 6
    assert lat == [1.0, 1.0, 1.0, 1.0]  # one clock tick between start and stop of each timed call
    with pytest.raises(ValueError):
        stats.time_calls(lambda: None, iters=0)


def test_pipeline_ceiling_and_efficiency():
    assert stats.pipeline_ceiling(100.0, 100.0) == pytest.approx(50.0)
    assert stats.pipeline_ceiling(300.0, 600.0) == pytest.approx(200.0)
    assert stats.pipeline_efficiency(180.0, 300.0, 600.0) == pytest.approx(0.9)
    assert stats.throughput(64, 2.0) == 32.0


def test_measured_row_from_latencies():
    row = measured("onnxruntime", "fp32", 8, "model-only", [0.010, 0.020, 0.030, 0.040], device="cpu")
    assert row.images_per_s == pytest.approx(32 / 0.1)
    assert row.p50_ms == pytest.approx(25.0)
    assert row.p99_ms == pytest.approx(39.7)
    assert row.ran
    piped = measured("torch", "fp32", 4, "end-to-end", [0.5, 0.5], images=100, total_s=2.0)
    assert piped.images_per_s == pytest.approx(50.0)


def test_row_json_contract():
    keys = {"backend", "precision", "batch_size", "images_per_s", "p50_ms", "p99_ms", "mode", "device"}
    ran = measured("torch", "fp32", 1, "model-only", [0.001]).to_dict()
    assert set(ran) == keys
    skip = skipped("tensorrt", "fp16", [1, 2], "TensorRT is not installed")
    assert len(skip) == 4 and {r.mode for r in skip} == set(MODES)
    d = skip[0].to_dict()
    assert set(d) == keys | {"reason"} and d["images_per_s"] is None and d["reason"]
    bad = failed("onnxruntime", "int8", 8, "end-to-end", "boom").to_dict()
    assert bad["error"] == "boom" and "reason" not in bad
    with pytest.raises(ValueError):
        Row("torch", "fp32", 1, "sideways")


def _render(rows):
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(rich_table(rows, title="t"))
    return console.file.getvalue()


def test_table_collapses_rows_that_did_not_run():
    rows = [measured("torch", "fp32", b, m, [0.01]) for m in MODES for b in (1, 2)]
    rows += skipped("tensorrt", "fp16", [1, 2], "TensorRT is not installed (pip install 'attrnet[trt]')")
    rows.append(failed("onnxruntime", "int8", 2, "model-only", "kaput"))
    shown = display_rows(rows)
    assert len(shown) == 6
    trt = [c for c, ran in shown if c[0] == "tensorrt"]
    assert trt == [["tensorrt", "fp16", "-", "all", "1,2", "-", "-", "-",
                    "TensorRT is not installed (pip install 'attrnet[trt]')"]]
    text = _render(rows)
    assert text.count("TensorRT is not installed") == 1
    assert "attrnet[trt]" in text  # not eaten as rich markup
    assert "error: kaput" in text and "100.0" in text


def test_markdown_table_escapes_pipes():
    md = markdown_table(["a", "b"], [["x|y", "1"]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
    assert rows_markdown([measured("torch", "fp32", 1, "model-only", [0.5])]).count("\n") == 2


def test_model_names_per_precision(tmp_path: Path):
    assert models.model_stem(Path("/r/best.fp16.onnx")) == (Path("/r"), "best")
    assert models.model_stem(Path("/r/best.int8.engine")) == (Path("/r"), "best")
    assert models.model_stem(Path("/r/best.safetensors")) == (Path("/r"), "best")
    assert models.precision_of(Path("best.int8.onnx")) == "int8"
    assert models.precision_of(Path("best.onnx")) == "fp32"
    (tmp_path / "best.safetensors").write_bytes(b"x")
    (tmp_path / "best.int8.onnx").write_bytes(b"x")
    assert models.checkpoint_for(tmp_path / "best.onnx") == tmp_path / "best.safetensors"
    assert models.onnx_for(tmp_path / "best.safetensors", "int8", tmp_path / "w") == tmp_path / "best.int8.onnx"
    assert models.onnx_for(tmp_path / "best.int8.onnx", "int8", tmp_path / "w") == tmp_path / "best.int8.onnx"
    with pytest.raises(NotAvailableError):
        models.onnx_for(tmp_path / "x.onnx", "fp16", tmp_path / "w")  # no checkpoint to export from


def test_unavailable_combinations_say_why(tmp_path: Path):
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"x")
    cases = [("torch", "int8", "cpu", "int8"), ("torch", "fp16", "cpu", "CUDA"),
             ("onnxruntime", "fp16", "cpu", "GPU execution provider"), ("onnxruntime", "bf16", "cpu", "bf16")]
    for backend, precision, device, words in cases:
        with pytest.raises(NotAvailableError, match=words):
            model_path_for(backend, precision, ckpt, device, tmp_path)
    with pytest.raises(NotAvailableError):
        model_path_for("tensorrt", "fp16", ckpt, "cpu", tmp_path)  # no TensorRT here, or no CUDA
    assert model_path_for("torch", "fp32", ckpt, "cpu", tmp_path) == ckpt


def test_end_to_end_timing_counts_batches():
    def predict(paths):
        yield from paths

    files = cycle_files([Path("a"), Path("b"), Path("c")], 10)
    assert [p.name for p in files[:4]] == ["a", "b", "c", "a"] and len(files) == 10
    intervals, total = time_end_to_end(predict, files, batch=4)
    assert len(intervals) == 3  # 4 + 4 + 2 results
    assert total >= sum(intervals) - 1e-9


def test_generated_jpegs_decode(tmp_path: Path):
    from attrnet.core.imageio import decode_image

    paths = write_jpegs(tmp_path / "j", 5, height=48, width=64, distinct=2)
    assert len(paths) == 5 and all(p.suffix == ".jpg" for p in paths)
    img = decode_image(paths[3])
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.std() > 5
    assert paths[0].read_bytes() == paths[2].read_bytes() != paths[1].read_bytes()


def test_child_peak_memory_is_per_child():
    import sys

    from attrnet.bench.proc import run_child

    small = run_child([sys.executable, "-c", "print('ok')"])
    big = run_child([sys.executable, "-c", "b = b'x' * (300 * 2**20); print('ok')"])
    assert small.max_rss_mb < 60  # not inflated by this (large) test process
    again = run_child([sys.executable, "-c", "print('ok')"])
    assert small.returncode == big.returncode == 0 and big.stdout.strip() == "ok"
    assert big.max_rss_mb > small.max_rss_mb + 250
    assert again.max_rss_mb < big.max_rss_mb - 250  # not the running max over all children
    failed_child = run_child([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert failed_child.returncode == 3
    slow = run_child([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert slow.returncode == -9 and slow.wall_s < 10


def test_training_step_speed_harness():
    from attrnet.bench.train_speed import build, measure

    model, schema = build({"arch": "tiny", "method": "cross-stitch", "columns": "per-attribute"})
    assert model.topology.num_leaves == len(schema.attributes) == 40
    grouped, _ = build({"arch": "tiny", "method": "cross-stitch", "columns": "groups"})
    assert 2 <= grouped.topology.num_leaves < 40
    r = measure({"img_size": 32, "batch_size": 4, "steps": 1, "warmup": 1, "weighting": "awmt", "threads": 1})
    assert r["images_per_s"] > 0 and 0 < r["params"] < model.num_parameters()
    assert r["columns_k"] == 1 and r["weighting"] == "awmt" and r["peak_gpu_mb"] is None


def test_eager_baseline_matches_folded_model():
    import torch

    from attrnet.bench.eager import EagerUInt8
    from attrnet.export.fold import fold_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import shared
    from attrnet.core.schema import Schema, binary, categorical

    schema = Schema((binary("a"), categorical("c", ["x", "y", "z"])))
    torch.manual_seed(0)
    net = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema).eval()
    spec = InputSpec(32, 32)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    with torch.inference_mode():
        eager = EagerUInt8(net, spec)(x)
        folded = fold_model(net, spec, mode="flops")[0](x)
    assert eager.shape == (3, 4)
    assert torch.allclose(eager[:, 1:].sum(1), torch.ones(3))  # softmax over the categorical group
    assert torch.allclose(eager, folded, atol=1e-4)
