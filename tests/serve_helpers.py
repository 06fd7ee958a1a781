"""Helpers for the serving tests: small model files (checkpoint + ONNX) and odd image files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32


def make_model_files(folder: Path, preset: str = "celeba", size: int = SIZE, seed: int = 0) -> tuple[Path, Path]:
    """A random `tiny` model as `<folder>/m.safetensors` and its ONNX export `<folder>/m.onnx`."""
    import torch

    from attrnet.train import checkpoint as ckpt
    from attrnet.export import onnx_graph as export_onnx
    from attrnet.export.fold import fold_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import shared
    from attrnet.core.schema import preset as schema_preset

    folder.mkdir(parents=True, exist_ok=True)
    schema = schema_preset(preset)
    torch.manual_seed(seed)
    net = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema).eval()
    with torch.no_grad():  # make the outputs depend visibly on the image
        net.head.weight.normal_(0, 1.0)
    spec = InputSpec(size, size)
    meta = ckpt.model_metadata(net, spec.to_dict())
    st = folder / "m.safetensors"
    ckpt.save_model(st, net, meta)
    folded, _ = fold_model(net, spec, mode="flops")
    proto = export_onnx.trace_to_onnx(folded, size, size)
    onnx_path = export_onnx.save(export_onnx.set_metadata(proto, export_onnx.onnx_metadata(
        meta, export_onnx.file_sha256(st))), folder / "m.onnx")
    return st, onnx_path


def random_images(n: int, h: int = 48, w: int = 40, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def write_jpegs(folder: Path, n: int, h: int = 48, w: int = 40, seed: int = 0, prefix: str = "img") -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(random_images(n, h, w, seed)):
        p = folder / f"{prefix}{i:03d}.jpg"
        cv2.imwrite(str(p), img[:, :, ::-1])
        paths.append(p)
    return paths
