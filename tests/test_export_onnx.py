"""ONNX export: contract (uint8 images, probs, metadata, single file), checker, ORT parity per precision."""

import numpy as np
import onnx
import pytest
import torch

from attrnet.train.checkpoint import read_metadata as read_ckpt_metadata
from attrnet.export import onnx_graph
from attrnet.export import ort_session
from attrnet.export.fold import fold_model
from attrnet.export.parity import decisions
from attrnet.export.pipeline import ExportOptions, export_checkpoint
from attrnet.core.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet
from attrnet.core.schema import market_schema

from export_helpers import (SIZE, images, randomise, reference_probs, save_checkpoint, uneven_tree,
                            write_image_folder)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.safetensors")


def _opts(**kw):
    return ExportOptions(mode="flops", parity_images=24, **kw)


def test_fp32_file_follows_the_contract(ckpt, tmp_path):
    out = tmp_path / "m.onnx"
    result = export_checkpoint(ckpt, _opts(out=out))
    assert result["outputs"] == [str(out)]
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == onnx_graph.OPSET
    (inp,) = model.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    assert [o.name for o in model.graph.output] == ["probs"]
    # uint8 is only cast (TensorRT accepts uint8 at inputs and in Cast layers, nowhere else)
    assert [n.op_type for n in model.graph.node if "images" in n.input] == ["Cast"]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    meta = onnx_graph.read_metadata(model)
    ckpt_meta = read_ckpt_metadata(ckpt)
    assert meta["source_sha256"] == onnx_graph.file_sha256(ckpt)
    for key in ("schema", "topology", "input", "thresholds", "arch"):
        assert meta[key] == ckpt_meta[key]
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file
    # dynamic batch, same probabilities as the trained model
    from attrnet.train.checkpoint import load_model

    net, _ = load_model(ckpt)
    sess = ort_session.session(out)
    for n in (1, 5):
        imgs = images(n, seed=n)
        got = sess.run(["probs"], {"images": imgs.numpy()})[0]
        assert got.shape == (n, 30) and got.dtype == np.float32
        ref = reference_probs(net, InputSpec(SIZE, SIZE), imgs).numpy()
        assert np.abs(got - ref).max() < 1e-4
    fold = result["fold"]
    assert fold["ops_after"] < fold["ops_before"]
    assert fold["flops_after"] > 0 and fold["params_after"] > 0
    assert result["parity"]["runners"][1]["name"] == "onnxruntime"
    assert result["parity"]["runners"][1]["max_abs"] < 1e-4


def test_default_paths_beside_the_checkpoint(ckpt):
    from attrnet.export.pipeline import default_output

    d = ckpt.parent
    assert default_output(ckpt, ExportOptions()) == d / "best.onnx"
    assert default_output(ckpt, ExportOptions(precision="fp16")) == d / "best.fp16.onnx"
    assert default_output(ckpt, ExportOptions(precision="int8")) == d / "best.int8.onnx"
    assert default_output(ckpt, ExportOptions(format="engine", precision="fp16")) == d / "best.fp16.engine"
    assert default_output(ckpt, ExportOptions(format="triton")) == d / "triton"


def test_fp16_keeps_uint8_in_and_fp32_out(ckpt, tmp_path):
    out = tmp_path / "m.fp16.onnx"
    result = export_checkpoint(ckpt, _opts(out=out, precision="fp16"))
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    conv_w = [t for t in model.graph.initializer if t.dims and len(t.dims) == 4]
    assert conv_w and all(t.data_type == onnx.TensorProto.FLOAT16 for t in conv_w)
    ort = result["parity"]["runners"][1]
    assert 0 < ort["max_abs"] <= 1e-2 and ort["agreement"] >= 0.995


def test_int8_qdq_calibrated_on_a_folder(ckpt, tmp_path):
    calib = write_image_folder(tmp_path / "calib")
    out = tmp_path / "m.int8.onnx"
    result = export_checkpoint(ckpt, _opts(out=out, precision="int8", calib=calib))
    model = onnx.load(str(out))
    ops = onnx_graph.op_counts(model)
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    # symmetric activations and weights: every zero point is 0 (int8)
    inits = {t.name: t for t in model.graph.initializer}
    zps = [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in model.graph.node
           if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    assert onnx_graph.read_metadata(model)["export"]["precision"] == "int8"
    # the first conv and the heads' Gemm stay in float: no input of theirs comes from a DequantizeLinear
    produced_by = {o: n.op_type for n in model.graph.node for o in n.output}
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    head = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    for node in (first_conv, head):
        assert all(produced_by.get(i) != "DequantizeLinear" for i in node.input)
    others = [n for n in model.graph.node if n.op_type == "Conv" and n is not first_conv]
    assert others and all(any(produced_by.get(i) == "DequantizeLinear" for i in n.input) for n in others)
    assert result["parity"]["runners"][1]["agreement"] >= 0.98
    # the export measured QDQ propagation on ORT's CPU provider, recorded the choice, and serving follows it
    from attrnet.serve.backends import open_backend

    chosen = onnx_graph.read_metadata(model)["export"]["ort_cpu_disabled_optimizers"]
    assert chosen in ([], ["QDQPropagationTransformer"])
    backend = open_backend(out, "cpu")
    assert backend.disabled_optimizers == chosen
    # ...and both compute what the QDQ nodes say: ORT's fused int8 kernels against the unfused graph (float
    # Q/DQ). Without session.x64quantprecision, x86-64 CPUs without VNNI saturate (max |dp| 0.049 on AVX2).
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = images(16, seed=1).numpy()
    qdq = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"]).run(["probs"], {"images": x})[0]
    assert np.abs(ort_session.run_probs(ort_session.session(out), x) - qdq).max() < 1e-3
    assert np.abs(backend.run(x) - qdq).max() < 1e-3


def test_qdq_propagation_choice_follows_the_measured_gain(ckpt):
    from attrnet.export.quantize import measure_qdq_propagation, quantize

    folded, _ = fold_model(randomise(MultiTaskNet(uneven_tree(market_schema()), market_schema())),
                           InputSpec(SIZE, SIZE), mode="flops")
    model = quantize(onnx_graph.trace_to_onnx(folded, SIZE, SIZE), images(8).numpy(), "int8")
    x = images(8).numpy()
    off, speed = measure_qdq_propagation(model, x, runs=2, min_gain=0.0)
    assert off == ["QDQPropagationTransformer"] and set(speed) == {"propagation on", "propagation off"}
    assert all(v > 0 for v in speed.values())
    assert measure_qdq_propagation(model, x, runs=2, min_gain=float("inf"))[0] == []


def test_int8_cpu_layout_uses_uint8_activations(ckpt, tmp_path):
    from attrnet.export.quantize import quantize

    torch.manual_seed(0)
    schema = market_schema()
    folded, _ = fold_model(randomise(MultiTaskNet(uneven_tree(schema), schema)), InputSpec(SIZE, SIZE), mode="flops")
    model = quantize(onnx_graph.trace_to_onnx(folded, SIZE, SIZE), images(8).numpy(), "int8-cpu")
    inits = {t.name: t for t in model.graph.initializer}
    zps = [onnx.numpy_helper.to_array(inits[n.input[2]]).dtype for n in model.graph.node
           if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert np.dtype(np.uint8) in zps


def test_logits_on_request(tmp_path):
    torch.manual_seed(0)
    schema = market_schema()
    model = randomise(MultiTaskNet(uneven_tree(schema), schema))
    folded, _ = fold_model(model, InputSpec(SIZE, SIZE), mode="flops", with_logits=True)
    graph = onnx_graph.trace_to_onnx(folded, SIZE, SIZE)
    assert [o.name for o in graph.graph.output] == ["probs", "logits"]
    probs, logits = ort_session.session(graph).run(None, {"images": images(3).numpy()})
    assert np.allclose(probs[:, 0], 1 / (1 + np.exp(-logits[:, 0])), atol=1e-6)


def test_set_metadata_replaces_and_check_rejects_float_input():
    torch.manual_seed(0)
    schema = market_schema()
    model = randomise(MultiTaskNet(uneven_tree(schema), schema))
    folded, _ = fold_model(model, InputSpec(SIZE, SIZE), mode="flops")
    graph = onnx_graph.trace_to_onnx(folded, SIZE, SIZE)
    onnx_graph.set_metadata(graph, {"a": 1})
    onnx_graph.set_metadata(graph, {"a": 2})
    assert [p.key for p in graph.metadata_props] == ["attrnet"] and onnx_graph.read_metadata(graph) == {"a": 2}
    onnx_graph.check(graph)
    graph.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    from attrnet.core.errors import AttrnetError

    with pytest.raises(AttrnetError):
        onnx_graph.check(graph)


def test_decisions_threshold_and_argmax():
    schema = market_schema()
    probs = np.zeros((2, schema.num_columns), np.float32)
    probs[0, 0] = 0.7
    age = schema.slices[schema.index("age")]
    probs[1, age.start + 2] = 0.9
    thr = [0.8 if b else None for b in schema.binary_columns]
    dec = decisions(probs, schema, thr)
    assert dec[0, 0] == 0 and dec[1, schema.index("age")] == 2


def test_branched_vgg_with_fc_stages_runs_in_onnxruntime():
    from attrnet.models.backbones import backbone
    from attrnet.core.topology import split

    torch.manual_seed(0)
    schema = market_schema()
    groups = {"a": schema.names[:5], "b": schema.names[5:]}
    model = randomise(MultiTaskNet(split("vgg16-thin", backbone("vgg16-thin").widths, groups, 12), schema))
    spec = InputSpec(SIZE, SIZE)
    folded, _ = fold_model(model, spec, mode="flops")
    graph = onnx_graph.trace_to_onnx(folded, SIZE, SIZE)
    ops = onnx_graph.op_counts(graph)
    assert "AveragePool" not in ops and "GlobalAveragePool" not in ops  # the 1x1 -> 7x7 pool is in the fc weight
    imgs = images(4)
    got = ort_session.run_probs(ort_session.session(graph), imgs.numpy())
    assert np.abs(got - reference_probs(model, spec, imgs).numpy()).max() < 1e-4


def test_label_decisions_and_accuracy_skip_missing_labels():
    from attrnet.export.parity import label_decisions, mean_accuracy

    schema = market_schema()
    labels = np.full((3, schema.num_columns), np.nan, np.float32)
    age = schema.slices[schema.index("age")]
    labels[0, 0], labels[1, 0] = 1, 0          # backpack: two labelled images, one missing
    labels[0, age] = [0, 0, 1, 0]              # age: adult for image 0, missing for the rest
    truth = label_decisions(labels, schema)
    assert truth[0, 0] == 1 and truth[1, 0] == 0 and np.isnan(truth[2, 0])
    assert truth[0, schema.index("age")] == 2 and np.isnan(truth[1, schema.index("age")])
    dec = np.zeros_like(truth, dtype=np.int64)  # predicts 0 / class 0 everywhere
    # backpack 1/2 right, age 0/1 right, other attributes unlabelled (ignored)
    assert mean_accuracy(dec, truth) == pytest.approx((0.5 + 0.0) / 2)


def test_quantize_and_tune_records_the_measured_choice_for_the_exporter_and_the_benchmarks(ckpt, tmp_path,
                                                                                           monkeypatch):
    from attrnet.bench.models import export_onnx
    from attrnet.export import quantize

    speeds = {"propagation on": 100.0, "propagation off": 250.0}
    monkeypatch.setattr(quantize, "measure_qdq_propagation",
                        lambda model, imgs: (["QDQPropagationTransformer"], speeds))
    folded, _ = fold_model(randomise(MultiTaskNet(uneven_tree(market_schema()), market_schema())),
                           InputSpec(SIZE, SIZE), mode="flops")
    export_meta: dict = {"precision": "int8"}
    lines: list[str] = []
    graph, off = quantize.quantize_and_tune(onnx_graph.trace_to_onnx(folded, SIZE, SIZE), images(8).numpy(),
                                            "int8", export_meta, lines.append)
    assert off == export_meta["ort_cpu_disabled_optimizers"] == ["QDQPropagationTransformer"]
    assert onnx_graph.op_counts(graph).get("QuantizeLinear", 0) > 0
    assert lines == ["ONNX Runtime CPU, one thread: 100 img/s with QDQ propagation, 250 without -> off"]
    out = tmp_path / "best.int8.onnx"  # the benchmarks' exporter records it through the same function
    export_onnx(ckpt, "int8", out, calib_images=8)
    assert onnx_graph.read_metadata(out)["export"]["ort_cpu_disabled_optimizers"] == ["QDQPropagationTransformer"]
