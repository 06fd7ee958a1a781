"""ONNX files from a folded model: fp32 and fp16, one self-contained file, metadata inside.

The exporter is torch's TorchScript exporter (``dynamo=False``), chosen
deliberately: the folded module is plain conv/gemm/activation code that it
traces exactly, it needs no onnxscript, and it behaves the same on torch 2.11
and 2.14 (where the dynamo exporter is the default; the TorchScript one warns
that it is deprecated, which is silenced here). Opset 17 is read by ONNX
Runtime and by TensorRT 10/11.

Contract (docs/architecture.md, Exported models): input ``images`` uint8
``[N, H, W, 3]`` RGB with N dynamic; output ``probs`` float32 ``[N, C]`` (and
``logits`` on request); metadata_props key ``attrnet`` = checkpoint metadata
JSON plus ``source_sha256``; no external data; written atomically.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from attrnet.core.errors import AttrnetError, InputError
from attrnet.core.fileio import atomic_path

if TYPE_CHECKING:
    from torch import nn

__all__ = ["INPUT", "META_KEY", "OPSET", "check", "constants_to_initializers", "file_sha256", "onnx_metadata",
           "op_counts", "read_metadata", "save", "set_metadata", "trace_to_onnx"]

OPSET = 17
META_KEY = "attrnet"
INPUT = "images"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_metadata(metadata: dict[str, Any], source_sha256: str, **extra: Any) -> dict[str, Any]:
    """The JSON stored under the `attrnet` key: checkpoint metadata + source hash (+ `extra`)."""
    meta = dict(metadata)
    meta["source_sha256"] = source_sha256
    meta.update(extra)
    return meta


def trace_to_onnx(module: "nn.Module", height: int, width: int, *, half: bool = False,
                  opset: int = OPSET) -> onnx.ModelProto:
    """Export a FoldedNet (uint8 NHWC in) with the TorchScript exporter; fp16 compute with `half`."""
    import torch

    module = copy.deepcopy(module).eval()
    if half:
        module = module.half()
    outputs = ["probs", "logits"] if getattr(module, "with_logits", False) else ["probs"]
    dummy = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (dummy,), buf, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=[INPUT], output_names=outputs,
            dynamic_axes={name: {0: "N"} for name in [INPUT] + outputs},
        )
    return constants_to_initializers(onnx.load_from_string(buf.getvalue()))


def constants_to_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Turn Constant nodes into initializers, so the graph holds only compute nodes."""
    keep = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def set_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> onnx.ModelProto:
    """Store `meta` as JSON under metadata_props `attrnet` (replacing an old value)."""
    keep = [p for p in model.metadata_props if p.key != META_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in keep}, META_KEY: json.dumps(meta)})
    model.producer_name = "attrnet"
    return model


def read_metadata(model: onnx.ModelProto | str | Path) -> dict[str, Any]:
    """The `attrnet` metadata of an ONNX model (or file)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    for p in model.metadata_props:
        if p.key == META_KEY:
            return json.loads(p.value)
    raise InputError("ONNX model has no attrnet metadata")


def check(model: onnx.ModelProto) -> None:
    """onnx.checker (full check) and the I/O contract; AttrnetError when either fails."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise AttrnetError(f"exported ONNX model fails onnx.checker: {str(exc).splitlines()[0]}") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if [i.name for i in inputs] != [INPUT] or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        raise AttrnetError("exported ONNX model does not take uint8 `images`")
    outs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    if outs.get("probs") != onnx.TensorProto.FLOAT:
        raise AttrnetError("exported ONNX model has no float32 `probs` output")


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write `model` as one self-contained file, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)
    return path


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type of the main graph."""
    return dict(Counter(n.op_type for n in model.graph.node))
