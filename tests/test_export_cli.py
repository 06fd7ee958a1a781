"""`attrnet export`: outputs, JSON summary, Triton repository, clean failures with no file left behind."""
import json

import cv2
import numpy as np
import pytest

from attrnet.cli import main
from attrnet.export import trt_engine

from export_helpers import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def ckpt(tmp_path):
    return save_checkpoint(tmp_path / "run" / "best.safetensors")


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_export_writes_best_onnx_and_prints_json(ckpt, capsys):
    assert main(["export", str(ckpt), "--fold-mode", "flops", "--parity-images", "16", "--json"]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["outputs"] == [str(ckpt.parent / "best.onnx")]
    assert (ckpt.parent / "best.onnx").is_file()
    assert doc["parity"]["source"] == "generated" and "generated" in doc["parity"]["note"]
    stages = doc["fold"]["choices"]["stages"]
    assert [s["branches"] for s in stages] == [2, 3, 4, 5]
    assert "folding best.safetensors" in cap.err and "parity on 16 images" in cap.err
    assert cap.err.count("no --data given: parity measured on generated images") == 1  # each note once


def test_triton_repository(ckpt, tmp_path, capsys):
    repo = tmp_path / "repo"
    args = ["export", str(ckpt), "--format", "triton", "--out", str(repo), "--batch", "1:8:32",
            "--fold-mode", "flops", "--parity-images", "8", "--instance", "cpu"]
    assert main(args) == 0
    assert _files(repo) == ["config.pbtxt", "model.onnx"]
    text = (repo / "attrnet" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "max_batch_size: 32" in text
    assert "dims: [ 32, 32, 3 ]" in text and "TYPE_UINT8" in text and "dims: [ 30 ]" in text
    assert "preferred_batch_size: [ 8, 32 ]" in text and "kind: KIND_CPU" in text
    assert (repo / "attrnet" / "1" / "model.onnx").stat().st_size > 1000


def test_corrupt_checkpoint_is_one_line_exit_2_and_no_file(tmp_path, capsys):
    bad = tmp_path / "best.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert main(["export", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]
    assert _files(tmp_path) == ["best.safetensors"]


def test_forced_parity_mismatch_fails_and_writes_nothing(ckpt, monkeypatch, capsys):
    import torch

    from attrnet.export import pipeline

    real = pipeline.fold_model

    def broken(*args, **kwargs):
        folded, report = real(*args, **kwargs)
        with torch.no_grad():
            folded.head.bias.add_(0.05)
        return folded, report

    monkeypatch.setattr(pipeline, "fold_model", broken)
    before = _files(ckpt.parent)
    assert main(["export", str(ckpt), "--fold-mode", "flops", "--parity-images", "8"]) == 1
    err = capsys.readouterr().err
    assert "attrnet: error: folded (fp32) differs from the trained model" in err and "no file written" in err
    assert _files(ckpt.parent) == before


def test_int8_without_calibration_images_is_an_input_error(ckpt, capsys):
    assert main(["export", str(ckpt), "--precision", "int8"]) == 2
    assert "--calib DIR or --data SPEC" in capsys.readouterr().err


def test_int8_cpu_layout_exports_for_onnx_runtime_only(ckpt, tmp_path, capsys):
    import onnx

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(calib / f"{i}.png"), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    # 24 parity images (288 decisions): with 8, one flip of a decision 0.001 from its threshold was 1.04%
    assert main(["export", str(ckpt), "--precision", "int8-cpu", "--calib", str(calib),
                 "--fold-mode", "flops", "--parity-images", "24"]) == 0
    out = ckpt.parent / "best.int8-cpu.onnx"
    graph = onnx.load(str(out))
    zero_points = [t for t in graph.graph.initializer if t.name.endswith("zero_point")]
    assert any(t.data_type == onnx.TensorProto.UINT8 for t in zero_points)  # asymmetric uint8 activations
    capsys.readouterr()
    assert main(["export", str(ckpt), "--trt", "--precision", "int8-cpu", "--calib", str(calib)]) == 2
    assert "TensorRT takes --precision int8" in capsys.readouterr().err


def test_bad_batch_and_size_are_input_errors(ckpt, capsys):
    assert main(["export", str(ckpt), "--batch", "8:4:16"]) == 2
    assert main(["export", str(ckpt), "--img-size", "abc"]) == 2


@pytest.mark.skipif(trt_engine.available(), reason="TensorRT is installed here")
def test_engine_without_tensorrt_says_how_to_get_it(ckpt, capsys):
    assert main(["export", str(ckpt), "--trt", "--precision", "fp16"]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err
    assert not list(ckpt.parent.glob("*.engine*"))


def test_img_size_override_and_data_splits_for_parity_and_calibration(tmp_path, capsys):
    from attrnet.data.synth import generate

    data = tmp_path / "market"
    generate("market", data, num=40, seed=1, size=(32, 32))
    ckpt = save_checkpoint(tmp_path / "best.safetensors", size=32)
    out = tmp_path / "m.onnx"
    args = ["export", str(ckpt), "--img-size", "40x32", "--data", f"market:{data}", "--out", str(out),
            "--precision", "int8", "--fold-mode", "flops", "--parity-images", "16", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input"]["height"] == 40 and doc["input"]["width"] == 32
    assert doc["parity"]["source"].startswith(f"data:market:{data}")
    assert doc["parity"]["reference_accuracy"] is not None
    assert all(r["accuracy"] is not None for r in doc["parity"]["runners"])
    assert doc["precision"] == "int8" and out.is_file()  # calibrated on the train split of --data


def test_stdout_stays_clean_when_the_unfolded_model_cannot_be_exported(capfd):
    from attrnet.export.pipeline import unfolded_ops
    from attrnet.core.input_spec import InputSpec
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import shared
    from attrnet.core.schema import market_schema

    # vgg16-thin at 32x32: the trained model's adaptive pool 1x1 -> 7x7 has no ONNX export (the folded one
    # has no pool left); the exporter's C++ logger would dump the graph on stdout and break --json
    schema = market_schema()
    model = MultiTaskNet(shared("vgg16-thin", backbone("vgg16-thin").widths, schema.names), schema).eval()
    assert unfolded_ops(model, InputSpec(32, 32)) is None
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""


def test_out_must_match_the_format(ckpt, tmp_path, capsys):
    assert main(["export", str(ckpt), "--out", str(tmp_path)]) == 2
    assert "--out is a folder" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--format", "triton", "--out", str(ckpt)]) == 2
    assert "repository folder" in capsys.readouterr().err
