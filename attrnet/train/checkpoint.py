"""Checkpoints: one safetensors file, the metadata as JSON in its header.

``__metadata__["attrnet"]`` holds: format_version, schema, topology, arch,
input, thresholds, method, weighting, metrics, version. Writes are atomic
(temp file in the same directory, then ``os.replace``). Nothing is unpickled.
Reading the metadata does not import torch.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrnet.core.errors import InputError
from attrnet.core.fileio import atomic_path, atomic_write_text
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import FORMAT_VERSION, META_KEY, ModelCard

if TYPE_CHECKING:
    import torch
    from attrnet.models.net import MultiTaskNet

__all__ = ["FORMAT_VERSION", "build_from_metadata", "load_checkpoint", "load_model", "model_metadata",
           "read_metadata", "save_checkpoint", "save_model", "write_json_copy"]

_MAX_HEADER = 100 * 1024 * 1024


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The attrnet metadata of a checkpoint, read from the safetensors header only."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError("not a safetensors checkpoint (file too short)", path)
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > _MAX_HEADER:
                raise InputError("not a safetensors checkpoint (bad header length)", path)
            raw = f.read(n)
            if len(raw) < n:
                raise InputError("truncated safetensors checkpoint (header cut short)", path)
            size = path.stat().st_size
    except FileNotFoundError:
        raise InputError("checkpoint not found", path) from None
    except IsADirectoryError:
        raise InputError("expected a checkpoint file, got a directory", path) from None
    try:
        header = json.loads(raw)
        meta = json.loads(header.get("__metadata__", {})[META_KEY])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise InputError("not an attrnet checkpoint (no attrnet metadata in the safetensors header)", path) from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise InputError(f"truncated checkpoint: {size} bytes, tensors need {8 + n + end}", path)
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(f"unsupported checkpoint format_version {version!r} (this attrnet reads <= {FORMAT_VERSION})", path)
    return meta


def save_checkpoint(path: str | Path, tensors: dict[str, "torch.Tensor"], metadata: dict[str, Any]) -> None:
    """Write tensors + metadata atomically (and, for best checkpoints, a JSON copy for people)."""
    from safetensors.torch import save_file

    meta = dict(metadata)
    meta.setdefault("format_version", FORMAT_VERSION)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})


def write_json_copy(path: str | Path, metadata: dict[str, Any]) -> None:
    """`best.json` beside the checkpoint: a copy for people, never read back."""
    atomic_write_text(Path(path).with_suffix(".json"), json.dumps(metadata, indent=2) + "\n")


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Tensors and metadata of a checkpoint; a clear InputError for anything malformed."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"corrupt checkpoint: {exc}", path) from None
    return tensors, meta


def model_metadata(model: "MultiTaskNet", input_spec: dict[str, Any] | InputSpec,
                   thresholds: list[float | None] | None = None, **fields: Any) -> dict[str, Any]:
    """The model card of a trained model as metadata: schema, topology, arch, input, thresholds and `fields`
    (method and weighting default to shared / equal)."""
    from attrnet.core.version import __version__

    spec = input_spec if isinstance(input_spec, InputSpec) else InputSpec.from_dict(input_spec)
    extra = {"method": "shared", "weighting": "equal", "metrics": {}, "version": __version__, **fields}
    return ModelCard.create(model.schema, spec, model.topology, thresholds, **extra).to_metadata()


def save_model(path: str | Path, model: "MultiTaskNet", metadata: dict[str, Any]) -> None:
    save_checkpoint(path, model.state_dict(), metadata)


def build_from_metadata(meta: dict[str, Any], path: str | Path | None = None) -> "MultiTaskNet":
    """An untrained MultiTaskNet shaped as the metadata's model card says."""
    from attrnet.models.net import MultiTaskNet

    card = ModelCard.from_metadata(meta, path)
    if card.topology is None:
        raise InputError("checkpoint metadata has no topology", path)
    try:
        return MultiTaskNet(card.topology, card.schema)
    except ValueError as exc:
        raise InputError(f"checkpoint metadata is invalid: {exc}", path) from None


def load_model(path: str | Path, device: str = "cpu") -> tuple["MultiTaskNet", dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    tensors, meta = load_checkpoint(path, device="cpu")
    model = build_from_metadata(meta, path)
    expected = model.state_dict()
    weights = {k: v for k, v in tensors.items() if k in expected}
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise InputError(f"checkpoint tensors do not match its metadata: missing {', '.join(missing[:3])}"
                         + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""), path)
    bad = [k for k, v in weights.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise InputError(f"checkpoint tensor {k} has shape {tuple(weights[k].shape)}, "
                         f"its metadata implies {tuple(expected[k].shape)}", path)
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), meta
