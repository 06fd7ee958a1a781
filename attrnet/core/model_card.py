"""The model card: what a trained or exported model says about itself, in one typed value.

A card holds the schema (attributes and output columns), the input spec, one
decision threshold per output column (None for categorical columns, which
use argmax), the Topology the weights were trained with, and the output
activation (sigmoid per binary column, softmax within each categorical group).
It is written as JSON into checkpoints (safetensors header), ONNX metadata
(``metadata_props["attrnet"]``) and engine sidecars, and read back by every
consumer through `ModelCard.from_metadata`; fields it does not model (method,
weighting, metrics, train, export, version) travel along in `extra`.

This is the one place for default thresholds and for logits -> probabilities.
Importing it does not import torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.schema import Schema
from attrnet.core.topology import Topology

if TYPE_CHECKING:
    import torch

__all__ = ["FORMAT_VERSION", "META_KEY", "ModelCard", "default_thresholds", "output_runs",
           "parse_metadata_json", "probabilities", "validate_thresholds"]

FORMAT_VERSION = 1
META_KEY = "attrnet"  # the metadata key in safetensors headers and ONNX metadata_props
_MODELLED = ("format_version", "schema", "topology", "arch", "input", "thresholds")


def default_thresholds(schema: Schema) -> list[float | None]:
    """0.5 per binary column, None per categorical column (no validation split to choose on)."""
    return [0.5 if b else None for b in schema.binary_columns]


def validate_thresholds(values: Sequence[float | None], schema: Schema) -> list[float | None]:
    """Thresholds checked against the schema: one per column, binary ones in [0, 1] (a missing one is 0.5),
    None for categorical columns. ValueError otherwise."""
    vals = list(values)
    if len(vals) != schema.num_columns:
        raise ValueError(f"{len(vals)} thresholds for {schema.num_columns} output columns")
    out: list[float | None] = []
    for v, is_binary, col in zip(vals, schema.binary_columns, schema.columns):
        if not is_binary:
            out.append(None)
            continue
        t = 0.5 if v is None else float(v)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"threshold of column {col!r} is not a probability: {t}")
        out.append(t)
    return out


def output_runs(schema: Schema) -> list[tuple[str, int, int]]:
    """The output activation as runs ``(kind, start, stop)`` over the columns: consecutive binary
    columns form one ``binary`` run (sigmoid), each categorical attribute one ``categorical`` run (softmax)."""
    runs: list[tuple[str, int, int]] = []
    for attr, sl in zip(schema.attributes, schema.slices):
        if attr.kind == "binary" and runs and runs[-1][0] == "binary" and runs[-1][2] == sl.start:
            runs[-1] = ("binary", runs[-1][1], sl.stop)
        else:
            runs.append((attr.kind, sl.start, sl.stop))
    return runs


def probabilities(logits: "torch.Tensor", schema: Schema | Sequence[tuple[str, int, int]]) -> "torch.Tensor":
    """Logits ``[N, C]`` -> probabilities: sigmoid on binary columns, softmax within each categorical
    group. `schema` may also be its `output_runs`, computed once.

    Written as slices and one concatenation, so it traces into ONNX as it is.
    """
    import torch

    runs = output_runs(schema) if isinstance(schema, Schema) else schema
    parts = [torch.sigmoid(logits[:, a:b]) if kind == "binary" else torch.softmax(logits[:, a:b], dim=1)
             for kind, a, b in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def parse_metadata_json(text: str | bytes, path: str | Path | None = None) -> dict[str, Any]:
    """Metadata JSON (an ONNX ``attrnet`` entry or an engine sidecar) -> dict; InputError naming `path`."""
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"model metadata is not valid JSON: {exc}", path) from None
    if isinstance(meta, dict) and "schema" not in meta and isinstance(meta.get(META_KEY), (dict, str)):
        inner = meta[META_KEY]
        meta = inner if isinstance(inner, dict) else parse_metadata_json(inner, path)
    if not isinstance(meta, dict):
        raise InputError("model metadata must be a JSON object", path)
    return meta


@dataclass(frozen=True)
class ModelCard:
    """Schema, input spec, thresholds and topology of a model, plus the metadata it does not model."""

    schema: Schema
    input_spec: InputSpec
    thresholds: tuple[float | None, ...]
    topology: Topology | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def create(cls, schema: Schema, input_spec: InputSpec, topology: Topology | None = None,
               thresholds: Sequence[float | None] | None = None, **extra: Any) -> "ModelCard":
        """A new card; thresholds default to `default_thresholds`."""
        values = default_thresholds(schema) if thresholds is None else validate_thresholds(thresholds, schema)
        return cls(schema, input_spec, tuple(values), topology, dict(extra))

    # ------------------------------------------------------------ metadata round trip
    @classmethod
    def from_metadata(cls, meta: dict[str, Any], path: str | Path | None = None) -> "ModelCard":
        """Validate a metadata dict; InputError naming `path` for anything malformed."""
        if not isinstance(meta, dict):
            raise InputError("model metadata must be a JSON object", path)
        try:
            schema = Schema.from_dict(meta["schema"])
            spec = InputSpec.from_dict(meta["input"])
            topology = Topology.from_dict(meta["topology"]) if meta.get("topology") is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"model metadata is invalid ({type(exc).__name__}: {exc})", path) from None
        if spec.resize not in ("stretch", "letterbox"):
            raise InputError(f"unknown resize mode {spec.resize!r} in model metadata", path)
        raw = meta.get("thresholds")
        if raw is None:
            raw = default_thresholds(schema)
        if not isinstance(raw, list):
            raise InputError(f"model metadata has no thresholds list for {schema.num_columns} output columns", path)
        try:
            thresholds = validate_thresholds(raw, schema)
        except (TypeError, ValueError) as exc:
            raise InputError(f"model metadata: {exc}", path) from None
        if topology is not None:
            try:
                topology.validate(schema.names)
            except ValueError as exc:
                raise InputError(f"model metadata: the topology does not fit the schema: {exc}", path) from None
        extra = {k: v for k, v in meta.items() if k not in _MODELLED}
        return cls(schema, spec, tuple(thresholds), topology, extra)

    def to_metadata(self) -> dict[str, Any]:
        """The metadata dict written into checkpoints and exported models."""
        meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "schema": self.schema.to_dict()}
        if self.topology is not None:
            meta["topology"] = self.topology.to_dict()
            meta["arch"] = self.topology.arch
        meta["input"] = self.input_spec.to_dict()
        meta["thresholds"] = list(self.thresholds)
        meta.update(self.extra)
        return meta

    def with_extra(self, **extra: Any) -> "ModelCard":
        """The same card with `extra` fields added or replaced."""
        return ModelCard(self.schema, self.input_spec, self.thresholds, self.topology, {**self.extra, **extra})

    # ------------------------------------------------------------ outputs
    @property
    def columns(self) -> list[str]:
        return self.schema.columns

    @property
    def threshold_array(self) -> np.ndarray:
        """float32 ``[C]``: the binary thresholds, NaN for categorical columns."""
        return np.array([np.nan if t is None else t for t in self.thresholds], dtype=np.float32)

    @property
    def runs(self) -> list[tuple[str, int, int]]:
        """The output activation as column runs (see `output_runs`)."""
        return output_runs(self.schema)

    def probabilities(self, logits: "torch.Tensor") -> "torch.Tensor":
        """This model's logits ``[N, C]`` -> probabilities."""
        return probabilities(logits, self.runs)

    def labels(self, probs: np.ndarray) -> list[dict[str, int | str]]:
        """Labels by attribute for each row of ``probs [N, C]``: 0/1 by threshold, class name by argmax."""
        probs = np.asarray(probs, dtype=np.float32)
        thresholds = self.threshold_array
        per_attr: list[list[int | str]] = []
        for attr, sl in zip(self.schema.attributes, self.schema.slices):
            block = probs[:, sl]
            if attr.kind == "binary":
                per_attr.append((block[:, 0] >= thresholds[sl.start]).astype(int).tolist())
            else:
                per_attr.append([attr.classes[i] for i in block.argmax(axis=1).tolist()])
        names = self.schema.names
        return [dict(zip(names, row)) for row in zip(*per_attr)] if per_attr else []
