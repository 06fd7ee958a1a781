"""What a model file says about itself: schema, input spec, thresholds; and turning probabilities into labels.

Torch-free: used by every backend, including ONNX Runtime and TensorRT.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attrnet.errors import InputError
from attrnet.input_spec import InputSpec
from attrnet.schema import Schema


@dataclass(frozen=True)
class ModelInfo:
    """The parts of a model's metadata that serving needs."""

    schema: Schema
    input_spec: InputSpec
    thresholds: np.ndarray  # float32 [C]; NaN for categorical columns

    @property
    def columns(self) -> list[str]:
        return self.schema.columns

    def labels(self, probs: np.ndarray) -> list[dict[str, int | str]]:
        """Labels by attribute for each row of ``probs [N, C]``: 0/1 by threshold, class name by argmax."""
        probs = np.asarray(probs, dtype=np.float32)
        per_attr: list[list[int | str]] = []
        for attr, sl in zip(self.schema.attributes, self.schema.slices):
            block = probs[:, sl]
            if attr.kind == "binary":
                per_attr.append((block[:, 0] >= self.thresholds[sl.start]).astype(int).tolist())
            else:
                per_attr.append([attr.classes[i] for i in block.argmax(axis=1).tolist()])
        names = self.schema.names
        return [dict(zip(names, row)) for row in zip(*per_attr)] if per_attr else []


# ONNX Runtime graph optimizers an export may measure to be slower for its file on the CPU provider
# and list under ``export.ort_cpu_disabled_optimizers``; any other name there is ignored.
TUNABLE_ORT_OPTIMIZERS = ("QDQPropagationTransformer",)


def cpu_disabled_optimizers(metadata: dict[str, Any]) -> list[str]:
    """The ONNX Runtime optimizers to skip for this file on the CPU provider (as measured at export)."""
    export = metadata.get("export")
    names = export.get("ort_cpu_disabled_optimizers") if isinstance(export, dict) else None
    return [n for n in names if n in TUNABLE_ORT_OPTIMIZERS] if isinstance(names, list) else []


def parse_metadata_json(text: str | bytes, path: str | Path | None = None) -> dict[str, Any]:
    """Metadata JSON (as stored in ONNX metadata_props or an engine sidecar) -> dict."""
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"model metadata is not valid JSON: {exc}", path) from None
    if isinstance(meta, dict) and "schema" not in meta and isinstance(meta.get("attrnet"), (dict, str)):
        inner = meta["attrnet"]
        meta = inner if isinstance(inner, dict) else parse_metadata_json(inner, path)
    if not isinstance(meta, dict):
        raise InputError("model metadata must be a JSON object", path)
    return meta


def model_info(meta: dict[str, Any], path: str | Path | None = None) -> ModelInfo:
    """Validate the metadata and extract schema, input spec and thresholds."""
    try:
        schema = Schema.from_dict(meta["schema"])
        spec = InputSpec.from_dict(meta["input"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"model metadata is invalid ({type(exc).__name__}: {exc})", path) from None
    raw = meta.get("thresholds")
    if raw is None:
        raw = [0.5 if b else None for b in schema.binary_columns]
    if not isinstance(raw, list) or len(raw) != schema.num_columns:
        raise InputError(f"model metadata has {len(raw) if isinstance(raw, list) else 'no'} thresholds "
                         f"for {schema.num_columns} output columns", path)
    thresholds = np.array([np.nan if t is None else float(t) for t in raw], dtype=np.float32)
    for is_binary, t, col in zip(schema.binary_columns, thresholds, schema.columns):
        if is_binary and not 0.0 <= float(t) <= 1.0:
            raise InputError(f"threshold of column {col!r} is not a probability: {t}", path)
    if spec.resize not in ("stretch", "letterbox"):
        raise InputError(f"unknown resize mode {spec.resize!r} in model metadata", path)
    return ModelInfo(schema, spec, thresholds)
