"""Backends: selection by suffix, torch and ONNX Runtime agreement, labels, torch-free ONNX loading."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from attrnet.core.errors import InputError, NotAvailableError
from attrnet.core.model_card import ModelCard
from attrnet.export.ort_session import ort_providers
from attrnet.serve.backend import read_sidecar
from attrnet.serve.backends import backend_for_suffix, open_backend
from attrnet.weights import default_checkpoint, default_onnx
from serve_helpers import make_model_files, random_images

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def files():
    return default_checkpoint(), default_onnx()  # the shipped model: 40 columns, 64x64 input


@pytest.mark.parametrize("name,kind", [("a.safetensors", "torch"), ("a.onnx", "onnxruntime"),
                                       ("a.fp16.engine", "tensorrt"), ("b.PLAN", "tensorrt")])
def test_backend_follows_suffix(name, kind):
    assert backend_for_suffix(name) == kind


def test_unknown_suffix_and_missing_file_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown model file type '.pt'"):
        backend_for_suffix("model.pt")
    with pytest.raises(InputError, match="model file not found"):
        open_backend(tmp_path / "nope.onnx")


def test_torch_and_onnxruntime_agree(files):
    st, onnx_path = files
    torch_b, ort_b = open_backend(st, device="cpu"), open_backend(onnx_path, device="cpu")
    assert (torch_b.name, ort_b.name) == ("torch", "onnxruntime")
    assert torch_b.columns == ort_b.columns and len(ort_b.columns) == 40
    x = np.stack(random_images(6, 64, 64))
    p_t, p_o = torch_b.run(x), ort_b.run(x)
    assert p_o.dtype == np.float32 and p_o.shape == (6, 40)
    np.testing.assert_allclose(p_t, p_o, atol=1e-5)
    assert p_o.std(axis=0).max() > 1e-3  # outputs depend on the image
    assert ort_b.card.labels(p_o) == torch_b.card.labels(p_t)


def test_bad_batches_are_refused(files):
    b = open_backend(files[1], device="cpu")
    assert b.run(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 40)
    with pytest.raises(InputError, match=r"uint8 \[N, 64, 64, 3\]"):
        b.run(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(InputError, match=r"uint8 \[N, 64, 64, 3\]"):
        b.run(np.zeros((1, 32, 32, 3), np.uint8))


def test_onnx_without_attrnet_metadata_is_rejected(files, tmp_path):
    import onnx

    proto = onnx.load(str(files[1]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(InputError, match="bare.onnx: not an attrnet model"):
        open_backend(bare)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.onnx: cannot load ONNX model"):
        open_backend(junk)


def test_onnx_runtime_cpu_skips_only_the_optimizers_attrnet_tunes(files, tmp_path):
    """``export.ort_cpu_disabled_optimizers`` in the metadata is honoured on the CPU provider for known
    names only (a file cannot switch off arbitrary graph optimizations), and results are unchanged."""
    import onnx

    from attrnet.export.ort_session import cpu_disabled_optimizers

    proto = onnx.load(str(files[1]))
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == "attrnet"))
    meta["export"] = {**meta.get("export", {}),
                      "ort_cpu_disabled_optimizers": ["QDQPropagationTransformer", "ConstantFolding"]}
    next(p for p in proto.metadata_props if p.key == "attrnet").value = json.dumps(meta)
    tuned = tmp_path / "tuned.onnx"
    onnx.save(proto, str(tuned))
    a, b = open_backend(files[1], "cpu"), open_backend(tuned, "cpu")
    assert a.disabled_optimizers == [] and b.disabled_optimizers == ["QDQPropagationTransformer"]
    x = np.stack(random_images(4, 64, 64))
    np.testing.assert_allclose(a.run(x), b.run(x), atol=1e-6)
    assert cpu_disabled_optimizers({"export": {"ort_cpu_disabled_optimizers": "QDQPropagationTransformer"}}) == []
    assert cpu_disabled_optimizers({"export": None}) == [] and cpu_disabled_optimizers({}) == []


def test_loading_onnx_does_not_import_torch(files):
    code = (
        "import sys, numpy as np\n"
        "from attrnet.serve.backends import open_backend\n"
        f"b = open_backend({str(files[1])!r})\n"
        "p = b.run(np.zeros((2, 64, 64, 3), np.uint8))\n"
        "assert p.shape == (2, 40), p.shape\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_provider_order():
    avail = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert ort_providers("auto", avail) == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert ort_providers("cpu", avail) == ["CPUExecutionProvider"]
    assert ort_providers("cuda:1", avail[:2]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(NotAvailableError, match="onnxruntime-gpu"):
        ort_providers("cuda", ["CPUExecutionProvider"])


def test_categorical_labels_are_class_names():
    from attrnet.core.schema import market_schema

    s = market_schema()
    info = ModelCard.from_metadata({"schema": s.to_dict(), "input": {"height": 32, "width": 32},
                                     "thresholds": [0.7 if b else None for b in s.binary_columns]})
    probs = np.zeros((2, s.num_columns), np.float32)
    probs[0, 0], probs[1, 0] = 0.69, 0.71  # backpack, threshold 0.7
    age = s.slices[s.index("age")]
    probs[0, age.start + 2] = probs[1, age.start + 3] = 0.9
    rows = info.labels(probs)
    assert rows[0]["backpack"] == 0 and rows[1]["backpack"] == 1
    assert rows[0]["age"] == "adult" and rows[1]["age"] == "old"


def test_categorical_model_end_to_end(tmp_path):
    from attrnet.serve.predictor import Predictor
    from attrnet.serve.sinks import Sink

    st, onnx_path = make_model_files(tmp_path, "market")
    images = random_images(5, 40, 30)
    torch_rows = list(Predictor(st, device="cpu", workers=1).predict(images))
    pred = Predictor(onnx_path, workers=1)
    rows = list(pred.predict(images))
    assert [r.labels for r in rows] == [r.labels for r in torch_rows]
    assert {r.labels["age"] for r in rows} <= {"young", "teenager", "adult", "old"}
    for r in rows:  # softmax within each categorical group
        assert sum(v for k, v in r.probs.items() if k.startswith("upcolor=")) == pytest.approx(1, abs=1e-5)
    with Sink(tmp_path / "p.csv", pred.columns, pred.attributes) as sink:
        sink.write_all(rows)
    header, first = (tmp_path / "p.csv").read_text().splitlines()[:2]
    assert "age=young" in header.split(",") and header.endswith("label:upcolor,label:downcolor")
    assert first.split(",")[-3] == rows[0].labels["age"]


def test_bad_metadata_is_an_input_error():
    with pytest.raises(InputError, match="thresholds"):
        ModelCard.from_metadata({"schema": {"attributes": [{"name": "a"}]}, "input": {"height": 8, "width": 8},
                    "thresholds": [0.5, 0.5]}, "m.onnx")
    with pytest.raises(InputError, match="m.onnx: model metadata is invalid"):
        ModelCard.from_metadata({"input": {"height": 8, "width": 8}}, "m.onnx")


def test_engine_sidecar(tmp_path, files):
    from attrnet.train.checkpoint import read_metadata

    engine = tmp_path / "best.fp16.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(InputError, match="best.fp16.engine.json not found"):
        read_sidecar(engine)
    meta = read_metadata(files[0])
    (tmp_path / "best.fp16.engine.json").write_text(json.dumps(meta))
    assert read_sidecar(engine)["schema"] == meta["schema"]
    # the exporter's sidecar: the metadata under "attrnet", build details under "engine"
    (tmp_path / "best.fp16.engine.json").write_text(json.dumps({"attrnet": meta, "engine": {"precision": "fp16"}}))
    assert read_sidecar(engine)["thresholds"] == meta["thresholds"]
    with pytest.raises(InputError, match="needs a CUDA device"):
        open_backend(engine, device="cpu")


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when TensorRT is absent")
def test_engine_without_tensorrt_says_so(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(NotAvailableError, match="TensorRT is not installed"):
        open_backend(engine)
