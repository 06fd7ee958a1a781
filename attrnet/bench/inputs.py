"""What a benchmark runs on: the model file (the shipped one by default, resized on request) and JPEG files."""
from __future__ import annotations

from pathlib import Path

from attrnet.core.errors import InputError
from attrnet.core.imageio import JPEG_SUFFIXES

__all__ = ["GENERATED_JPEGS", "benchmark_model", "jpeg_files", "resized_checkpoint"]

GENERATED_JPEGS = 64  # 640x480 files written for end-to-end rows when no folder is given


def benchmark_model(model: str | Path | None) -> Path:
    """`model`, or the shipped model when None; InputError when the file does not exist."""
    from attrnet.weights import default_checkpoint

    path = default_checkpoint() if model is None else Path(model)
    if not path.exists():
        raise InputError("model file not found", path)
    return path


def jpeg_files(folder: str | Path) -> list[Path]:
    """JPEG files under `folder` (recursive, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("--images must be a directory of JPEG files", folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
    if not files:
        raise InputError("no .jpg/.jpeg files in --images directory", folder)
    return files


def resized_checkpoint(model: Path, size: tuple[int, int], workdir: Path) -> Path:
    """A copy of checkpoint `model` whose metadata input size is `size` (same tensors), in `workdir`."""
    from attrnet.train.checkpoint import load_checkpoint, save_checkpoint

    if model.suffix != ".safetensors":
        raise InputError("--img-size needs a .safetensors checkpoint (an ONNX or engine file has a fixed size)", model)
    tensors, meta = load_checkpoint(model)
    meta = dict(meta)
    meta["input"] = dict(meta.get("input") or {}, height=size[0], width=size[1])
    out = workdir / f"{model.stem}_{size[0]}x{size[1]}.safetensors"
    save_checkpoint(out, tensors, meta)
    return out
