"""TensorRT option handling and sidecar (no GPU needed), engine build (needs TensorRT), Triton config text."""
import pytest

from attrnet.core.errors import InputError, NotAvailableError
from attrnet.export import trt_engine
from attrnet.export import triton

NO_TRT = "TensorRT is not installed (pip install attrnet[trt] on a machine with an NVIDIA GPU)"


@pytest.mark.parametrize("text,expected", [("1:16:64", (1, 16, 64)), ("8", (1, 8, 8)), (" 4:4:4 ", (4, 4, 4))])
def test_parse_batch(text, expected):
    p = trt_engine.parse_batch(text)
    assert (p.min, p.opt, p.max) == expected
    assert p.shapes(32, 24)[2] == (expected[2], 32, 24, 3)


@pytest.mark.parametrize("text", ["0:1:2", "4:2:8", "1:2", "a:b:c", "", "1:2:3:4"])
def test_parse_batch_rejects(text):
    with pytest.raises(InputError):
        trt_engine.parse_batch(text)


def test_sidecar_content():
    meta = {"schema": {"attributes": []}, "source_sha256": "ab"}
    side = trt_engine.sidecar(meta, "fp16", trt_engine.parse_batch("1:8:32"), 64, 48, 30, ["probs"], "cd", "10.9.0")
    assert side["attrnet"] is meta
    eng = side["engine"]
    assert eng["precision"] == "fp16" and eng["tensorrt_version"] == "10.9.0" and eng["onnx_sha256"] == "cd"
    assert eng["batch"] == {"min": 1, "opt": 8, "max": 32}
    assert eng["inputs"]["images"] == {"dtype": "uint8", "min": [1, 64, 48, 3], "opt": [8, 64, 48, 3],
                                       "max": [32, 64, 48, 3]}
    assert eng["outputs"] == {"probs": {"dtype": "float32", "shape": [-1, 30]}}


def test_sidecar_is_read_by_the_serving_metadata_parser():
    import json

    from attrnet.core.model_card import parse_metadata_json

    meta = {"schema": {"attributes": []}, "input": {"height": 8, "width": 8}}
    side = trt_engine.sidecar(meta, "fp32", trt_engine.parse_batch("4"), 8, 8, 1, ["probs"], "x", None)
    assert parse_metadata_json(json.dumps(side)) == meta


@pytest.mark.skipif(trt_engine.available(), reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_raises_clearly():
    with pytest.raises(NotAvailableError, match="TensorRT is not installed"):
        trt_engine.build_engine(b"", trt_engine.parse_batch("1"), 8, 8)


@pytest.mark.skipif(not trt_engine.available(), reason=NO_TRT)
def test_build_engine_from_onnx(tmp_path):
    import torch

    from attrnet.export import onnx_graph
    from attrnet.export.fold import fold_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.schema import market_schema

    from export_helpers import randomise, uneven_tree

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    schema = market_schema()
    folded, _ = fold_model(randomise(MultiTaskNet(uneven_tree(schema), schema)), InputSpec(32, 32), mode="flops")
    graph = onnx_graph.trace_to_onnx(folded, 32, 32, half=True)
    cache = tmp_path / "cache.bin"
    plan = trt_engine.build_engine(graph.SerializeToString(), trt_engine.parse_batch("1:4:8"), 32, 32,
                                   timing_cache=cache)
    assert len(plan) > 1000 and cache.stat().st_size > 0


def test_triton_config_text_onnx_and_plan():
    text = triton.config_text("onnx", 128, 64, 30, 64, [16, 64, 128])
    assert text.splitlines()[:3] == ['name: "attrnet"', 'platform: "onnxruntime_onnx"', "max_batch_size: 64"]
    assert 'name: "images"\n    data_type: TYPE_UINT8\n    dims: [ 128, 64, 3 ]' in text
    assert 'name: "probs"\n    data_type: TYPE_FP32\n    dims: [ 30 ]' in text
    assert "preferred_batch_size: [ 16, 64 ]" in text  # sizes above max_batch_size are dropped
    assert "max_queue_delay_microseconds: 2000" in text and "kind: KIND_GPU" in text
    plan = triton.config_text("plan", 32, 32, 5, 8, [4], logits=True, instance="cpu", instances=2)
    assert 'platform: "tensorrt_plan"' in plan and 'name: "logits"' in plan
    assert "count: 2" in plan and "kind: KIND_CPU" in plan


def test_triton_repository_replaces_a_stale_model_file(tmp_path):
    triton.write_repository(tmp_path, "plan", b"plan", "cfg1")
    paths = triton.write_repository(tmp_path, "onnx", b"onnx", "cfg2")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["attrnet/config.pbtxt", "attrnet/1/model.onnx"]
    assert not (tmp_path / "attrnet" / "1" / "model.plan").exists()
    assert (tmp_path / "attrnet" / "config.pbtxt").read_text() == "cfg2"


@pytest.mark.skipif(not trt_engine.available(), reason=NO_TRT)
def test_export_engine_end_to_end(tmp_path, capsys):
    import json

    import torch

    from attrnet.cli import main

    from export_helpers import save_checkpoint

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    ckpt = save_checkpoint(tmp_path / "best.safetensors")
    assert main(["export", str(ckpt), "--trt", "--precision", "fp16", "--batch", "1:4:8",
                 "--fold-mode", "flops", "--parity-images", "16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    engine = tmp_path / "best.fp16.engine"
    assert doc["outputs"] == [str(engine), str(engine) + ".json"]
    assert [r["name"] for r in doc["parity"]["runners"]] == ["folded", "onnxruntime", "tensorrt"]
    side = json.loads((tmp_path / "best.fp16.engine.json").read_text())
    assert side["engine"]["batch"] == {"min": 1, "opt": 4, "max": 8}
    assert (tmp_path / "best.fp16.engine.timing.cache").stat().st_size > 0  # one cache per output
