"""The TensorRT builder and runner against stand-in `tensorrt` / `cuda.bindings.runtime` modules (issue 17).

Profile minimum (short chunks padded, refused shapes reported), TF32 off for fp32 builds, and a
timing cache that survives being rejected and belongs to one output.
"""
import json

import numpy as np
import pytest

from attrnet.core.errors import AttrnetError, InputError
from attrnet.export import trt_engine
from attrnet.export import pipeline
from attrnet.export.pipeline import ExportOptions, export_checkpoint

from trt_stand_ins import FOREIGN_CACHE, expected_probs, install, plan_bytes


@pytest.fixture()
def fakes(monkeypatch):
    return install(monkeypatch)


def _images(n, h=2, w=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_chunks_shorter_than_the_profile_minimum_are_padded(fakes):
    from attrnet.export.trt_runner import EngineRunner

    runner = EngineRunner(plan_bytes(4, 6, 8, 2, 2))
    assert (runner.min_batch, runner.max_batch) == (4, 8)
    for n in (1, 3, 8, 11):  # 11 = a full chunk of 8 and a short one of 3
        x = _images(n, seed=n)
        np.testing.assert_allclose(runner.run(x), expected_probs(x), rtol=1e-6)
    asked = fakes.engines[0].contexts[0].shapes_asked
    assert all(4 <= s[0] <= 8 for s in asked) and len(asked) == 5


def test_a_shape_the_engine_refuses_is_one_clear_error(fakes):
    from attrnet.export.trt_runner import EngineRunner

    runner = EngineRunner(plan_bytes(1, 4, 8, 2, 2))
    with pytest.raises(AttrnetError, match=r"TensorRT refused input shape \(3, 5, 5, 3\) .*batch 1\.\.8 of 2x2"):
        runner.run(_images(3, 5, 5))


def test_the_serving_backend_runs_short_batches_of_a_min_4_engine(fakes, tmp_path):
    from attrnet.serve.tensorrt_backend import TensorRTBackend

    meta = {"schema": {"attributes": [{"name": f"a{i}", "kind": "binary"} for i in range(3)]},
            "input": {"height": 2, "width": 2}}
    engine = tmp_path / "m.fp16.engine"
    engine.write_bytes(plan_bytes(4, 8, 16, 2, 2))
    side = trt_engine.sidecar(meta, "fp16", trt_engine.parse_batch("4:8:16"), 2, 2, 3, ["probs"], "x", "10.9.0")
    (tmp_path / "m.fp16.engine.json").write_text(json.dumps(side))
    backend = TensorRTBackend(engine, "cuda")
    x = _images(2)
    np.testing.assert_allclose(backend.run(x), expected_probs(x), rtol=1e-6)


def _build(**kw):
    return trt_engine.build_engine(b"onnx", trt_engine.parse_batch("1:4:8"), 2, 2, **kw)


def test_fp32_builds_clear_tf32_and_lower_precisions_keep_it(fakes):
    _build()
    _build(tf32=True)
    assert [c.get_flag("TF32") for c in fakes.configs] == [False, True]


def test_a_rejected_timing_cache_is_replaced_by_a_fresh_one(fakes, tmp_path):
    cache = tmp_path / "m.engine.timing.cache"
    cache.write_bytes(FOREIGN_CACHE)
    notes: list[str] = []
    plan = _build(timing_cache=cache, log=notes.append)
    assert json.loads(plan)["max"] == 8
    assert cache.read_bytes() == b"CACHE:1"  # the fresh cache, with what this build timed
    assert len(notes) == 1 and "another GPU or TensorRT version" in notes[0] and str(cache) in notes[0]
    _build(timing_cache=cache)  # and the next build starts from it
    assert fakes.configs[-1].caches_created == [b"CACHE:1"] and cache.read_bytes() == b"CACHE:2"


def test_each_export_has_its_own_timing_cache_and_tf32_follows_the_precision(tmp_path, monkeypatch):
    from export_helpers import save_checkpoint

    class Built(Exception):
        pass

    calls = []

    def build(onnx_bytes, profile, height, width, **kw):
        calls.append(kw)
        raise Built

    monkeypatch.setattr(trt_engine, "available", lambda: True)
    monkeypatch.setattr(trt_engine, "build_engine", build)
    ckpt = save_checkpoint(tmp_path / "best.safetensors")
    for precision in ("fp32", "fp16"):
        with pytest.raises(Built):
            export_checkpoint(ckpt, ExportOptions(format="engine", precision=precision, mode="flops",
                                                  parity_images=4))
    assert [c["tf32"] for c in calls] == [False, True]
    assert [c["timing_cache"] for c in calls] == [tmp_path / "best.fp32.engine.timing.cache",
                                                  tmp_path / "best.fp16.engine.timing.cache"]
    assert pipeline.default_timing_cache(tmp_path / "triton") == tmp_path / "triton.timing.cache"


def test_a_triton_plan_needs_a_profile_from_batch_1(tmp_path):
    with pytest.raises(InputError, match="--format triton --trt needs --batch MIN 1"):
        export_checkpoint(tmp_path / "never-read.safetensors",
                          ExportOptions(format="triton", trt=True, batch="4:8:16"))
