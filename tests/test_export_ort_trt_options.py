"""ONNX Runtime's TensorRT and CUDA execution provider options (issue 17 item 4), without a GPU."""
from pathlib import Path

import numpy as np
import onnx
import pytest

from attrnet.export import ort_session
from attrnet.export.ort_session import TensorrtSettings, default_trt_cache, is_qdq, ort_provider_options

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_tensorrt_provider_options_for_a_qdq_file():
    trt = TensorrtSettings(64, 48, qdq=True, cache_dir=Path("/m/best.int8.onnx.trt-cache/0123"))
    assert ort_provider_options([TRT, CUDA, CPU], 1, trt) == [
        (TRT, {"device_id": 1,
               "trt_int8_enable": True,
               "trt_engine_cache_enable": True,
               "trt_engine_cache_path": "/m/best.int8.onnx.trt-cache/0123",
               "trt_timing_cache_enable": True,
               "trt_timing_cache_path": "/m/best.int8.onnx.trt-cache/0123",
               "trt_profile_min_shapes": "images:1x64x48x3",
               "trt_profile_opt_shapes": "images:32x64x48x3",
               "trt_profile_max_shapes": "images:256x64x48x3"}),
        (CUDA, {"device_id": 1}),
        CPU,
    ]


def test_float_files_leave_int8_off_and_small_profiles_optimise_for_their_maximum():
    trt = TensorrtSettings(32, 32, qdq=False, cache_dir=Path("c"), max_batch=8)
    ((_, options),) = ort_provider_options([TRT], 0, trt)
    assert options["trt_int8_enable"] is False
    assert (options["trt_profile_opt_shapes"], options["trt_profile_max_shapes"]) == ("images:8x32x32x3",) * 2
    assert ort_provider_options([CUDA, CPU], 2) == [(CUDA, {"device_id": 2}), CPU]
    assert ort_provider_options([CPU], 0) == [CPU]


def test_qdq_files_are_recognised():
    node = onnx.helper.make_node("QuantizeLinear", ["x", "s"], ["y"])
    assert is_qdq(onnx.helper.make_model(onnx.helper.make_graph([node], "g", [], [])))
    relu = onnx.helper.make_node("Relu", ["x"], ["y"])
    assert not is_qdq(onnx.helper.make_model(onnx.helper.make_graph([relu], "g", [], [])))


def test_the_engine_cache_lives_beside_the_model_and_follows_its_content(tmp_path, monkeypatch):
    model = tmp_path / "best.onnx"
    assert default_trt_cache(model, "ab" * 32) == tmp_path / "best.onnx.trt-cache" / ("ab" * 8)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(ort_session.os, "access", lambda path, mode: False)  # a read-only model folder
    assert default_trt_cache(model, "cd" * 32) == tmp_path / "xdg" / "attrnet" / "trt-cache" / f"best.onnx-{'cd' * 8}"


def test_the_ort_backend_gives_the_tensorrt_provider_its_options_and_splits_large_batches(tmp_path, monkeypatch):
    import hashlib

    import onnxruntime as ort

    from serve_helpers import make_model_files

    from attrnet.serve.ort_backend import OrtBackend

    _, onnx_path = make_model_files(tmp_path, size=16)
    asked: list = []
    batches: list[int] = []

    class Session(ort.InferenceSession):  # records what it is asked, runs on the CPU provider
        def __init__(self, path, opts=None, providers=None, **kw):
            asked.append(providers)
            self._names = [p if isinstance(p, str) else p[0] for p in providers]
            super().__init__(path, opts, providers=[CPU], **kw)

        def get_providers(self):
            return self._names

        def run(self, outputs, feed, *args):
            batches.append(len(feed["images"]))
            return super().run(outputs, feed, *args)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    backend = OrtBackend(onnx_path, "cuda:0")
    (trt_name, trt_options), cuda, cpu = asked[0]
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    cache = onnx_path.parent / "m.onnx.trt-cache" / digest
    assert trt_name == TRT and cuda == (CUDA, {"device_id": 0}) and cpu == CPU
    assert trt_options["trt_engine_cache_path"] == str(cache) and cache.is_dir()
    assert trt_options["trt_int8_enable"] is False and trt_options["trt_profile_min_shapes"] == "images:1x16x16x3"
    x = np.random.default_rng(0).integers(0, 256, (300, 16, 16, 3), dtype=np.uint8)
    probs = backend.run(x)
    assert batches == [256, 44] and probs.shape == (300, len(backend.columns))
    np.testing.assert_allclose(probs[255:257], backend.run(x[255:257]), atol=1e-6)


@pytest.mark.parametrize("payload", [b"not an onnx file", None])
def test_the_tensorrt_settings_of_a_bad_file_are_a_load_error(tmp_path, monkeypatch, payload):
    import onnxruntime as ort

    from attrnet.core.errors import InputError
    from attrnet.serve.ort_backend import OrtBackend

    path = tmp_path / "bad.onnx"
    if payload is None:  # a valid ONNX file without the `images` input
        x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
        relu = onnx.helper.make_node("Relu", ["x"], ["y"])
        y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
        onnx.save(onnx.helper.make_model(onnx.helper.make_graph([relu], "g", [x], [y])), str(path))
    else:
        path.write_bytes(payload)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    with pytest.raises(InputError, match="cannot load ONNX model"):
        OrtBackend(path, "cuda")
