"""Triton Inference Server model repositories.

Layout (docs/architecture.md, Exported models): ``<repo>/attrnet/config.pbtxt`` and
``<repo>/attrnet/1/model.onnx`` (platform ``onnxruntime_onnx``) or
``<repo>/attrnet/1/model.plan`` (platform ``tensorrt_plan``). Dims leave the
batch dimension out (Triton adds it, up to ``max_batch_size``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from attrnet.core.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["MODEL_NAME", "PLATFORMS", "config_text", "write_repository"]

MODEL_NAME = "attrnet"
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "plan": ("tensorrt_plan", "model.plan")}


def config_text(kind: str, height: int, width: int, columns: int, max_batch: int,
                preferred: Sequence[int], *, logits: bool = False, queue_delay_us: int = 2000,
                instance: str = "gpu", instances: int = 1, name: str = MODEL_NAME) -> str:
    """config.pbtxt for a model file of `kind` "onnx" or "plan"."""
    platform = PLATFORMS[kind][0]
    sizes = sorted({int(b) for b in preferred if 1 <= int(b) <= max_batch}) or [max_batch]
    outputs = ["probs"] + (["logits"] if logits else [])
    out_text = ",\n".join(
        f'  {{\n    name: "{o}"\n    data_type: TYPE_FP32\n    dims: [ {columns} ]\n  }}' for o in outputs)
    return (
        f'name: "{name}"\n'
        f'platform: "{platform}"\n'
        f"max_batch_size: {max_batch}\n"
        "input [\n"
        "  {\n"
        '    name: "images"\n'
        "    data_type: TYPE_UINT8\n"
        f"    dims: [ {height}, {width}, 3 ]\n"
        "  }\n"
        "]\n"
        f"output [\n{out_text}\n]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(str(s) for s in sizes)} ]\n"
        f"  max_queue_delay_microseconds: {queue_delay_us}\n"
        "}\n"
        "instance_group [\n"
        "  {\n"
        f"    count: {instances}\n"
        f"    kind: {'KIND_GPU' if instance == 'gpu' else 'KIND_CPU'}\n"
        "  }\n"
        "]\n"
    )


def write_repository(repo: str | Path, kind: str, model_bytes: bytes, config: str,
                     name: str = MODEL_NAME) -> list[Path]:
    """Write ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/1/<model file>`` atomically."""
    root = Path(repo) / name
    model_path = root / "1" / PLATFORMS[kind][1]
    atomic_write_bytes(model_path, model_bytes)
    other = root / "1" / PLATFORMS["plan" if kind == "onnx" else "onnx"][1]
    if other.exists():  # one model file per version: a stale one of the other kind would confuse Triton
        other.unlink()
    atomic_write_text(root / "config.pbtxt", config)
    return [root / "config.pbtxt", model_path]
