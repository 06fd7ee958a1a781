"""`attrnet benchmark` end to end on a tiny untrained model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from attrnet.cli import main

KEYS = {"backend", "precision", "batch_size", "images_per_s", "p50_ms", "p99_ms", "mode"}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from attrnet.train.checkpoint import model_metadata, save_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import shared
    from attrnet.core.schema import binary, categorical, Schema

    schema = Schema((binary("smile"), binary("hat"), categorical("color", ["red", "blue", "green"])))
    net = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema).eval()
    path = tmp_path_factory.mktemp("bench") / "best.safetensors"
    save_model(path, net, model_metadata(net, InputSpec(32, 32).to_dict()))
    return path


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory) -> Path:
    from attrnet.bench.jpegs import write_jpegs

    folder = tmp_path_factory.mktemp("jpegs")
    write_jpegs(folder, 6, height=60, width=80, distinct=3)
    return folder


def _json(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_benchmark_json_rows(tiny_ckpt, jpeg_dir, capsys):
    rows = _json(capsys, ["benchmark", "--model", str(tiny_ckpt), "--batch-sizes", "1,2", "--iters", "2",
                          "--warmup", "1", "--precision", "fp32,fp16", "--device", "cpu",
                          "--images", str(jpeg_dir), "--json"])
    assert all(KEYS <= set(r) for r in rows)
    # 3 backends x 2 precisions x 2 batch sizes x 2 modes
    assert len(rows) == 24
    ran = {(r["backend"], r["precision"], r["batch_size"], r["mode"]) for r in rows if r["images_per_s"] is not None}
    for backend in ("torch", "onnxruntime"):
        for b in (1, 2):
            for mode in ("model-only", "end-to-end"):
                assert (backend, "fp32", b, mode) in ran
    for r in rows:
        if r["images_per_s"] is None:
            assert r.get("reason") and r["p50_ms"] is None
        else:
            assert r["images_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
            assert "reason" not in r and "error" not in r
    reasons = {r["backend"]: r["reason"] for r in rows if r["precision"] == "fp16"}
    assert "CUDA" in reasons["torch"] and "GPU" in reasons["onnxruntime"]
    assert reasons["tensorrt"]


def test_benchmark_img_size_and_table(tiny_ckpt, capsys):
    code = main(["benchmark", "--model", str(tiny_ckpt), "--backends", "torch,tensorrt", "--precision", "fp32",
                 "--batch-sizes", "2", "--iters", "1", "--warmup", "0", "--mode", "model-only",
                 "--img-size", "40x48", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "attrnet benchmark" in out and "model-only" in out and "tensorrt" in out
    assert "end-to-end" not in out


def test_resized_checkpoint_keeps_tensors(tiny_ckpt, tmp_path):
    from attrnet.train.checkpoint import load_checkpoint
    from attrnet.bench.inputs import resized_checkpoint

    out = resized_checkpoint(tiny_ckpt, (40, 48), tmp_path)
    tensors, meta = load_checkpoint(out)
    orig, _ = load_checkpoint(tiny_ckpt)
    assert (meta["input"]["height"], meta["input"]["width"]) == (40, 48)
    assert set(tensors) == set(orig)


@pytest.mark.parametrize("args", [["--batch-sizes", "0"], ["--batch-sizes", "a,b"], ["--precision", "fp8"],
                                  ["--backends", "tvm"], ["--img-size", "3"], ["--mode", "fast"]])
def test_benchmark_bad_flags_exit_2(tiny_ckpt, capsys, args):
    assert main(["benchmark", "--model", str(tiny_ckpt), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attrnet: error:") and len(err.strip().splitlines()) == 1


def test_benchmark_missing_model_and_empty_images(tmp_path, capsys):
    assert main(["benchmark", "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["benchmark", "--model", str(tmp_path / "x.onnx"), "--images", str(tmp_path / "empty")]) == 2
    assert "no .jpg" in capsys.readouterr().err
