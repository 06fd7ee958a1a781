"""Helpers for the serving tests: small model files (checkpoint + ONNX) and odd image files."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

SIZE = 32


def make_model_files(folder: Path, preset: str = "celeba", size: int = SIZE, seed: int = 0) -> tuple[Path, Path]:
    """A random `tiny` model as `<folder>/m.safetensors` and an ONNX file following the contract."""
    import onnx
    import torch

    from attrnet import checkpoint as ckpt
    from attrnet.input_spec import InputSpec
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.models.topology import shared
    from attrnet.schema import preset as schema_preset
    from attrnet.serve.torch_backend import UInt8Model

    folder.mkdir(parents=True, exist_ok=True)
    schema = schema_preset(preset)
    torch.manual_seed(seed)
    net = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema).eval()
    with torch.no_grad():  # make the outputs depend visibly on the image
        net.head.weight.normal_(0, 1.0)
    spec = InputSpec(size, size)
    meta = ckpt.model_metadata(net, spec.to_dict())
    meta["thresholds"] = [0.5 if b else None for b in schema.binary_columns]
    st = folder / "m.safetensors"
    ckpt.save_model(st, net, meta)
    module = UInt8Model(net, list(spec.mean), list(spec.std)).eval()
    onnx_path = folder / "m.onnx"
    x = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(onnx_path), dynamo=False, input_names=["images"],
                          output_names=["probs"], dynamic_axes={"images": {0: "N"}, "probs": {0: "N"}},
                          opset_version=17)
    proto = onnx.load(str(onnx_path))
    onnx.helper.set_model_props(proto, {"attrnet": json.dumps(meta)})
    onnx.save(proto, str(onnx_path))
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
