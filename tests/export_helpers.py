"""Helpers for the export tests: hand-built models with randomised BatchNorm, alphas and heads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attrnet.train.checkpoint import model_metadata, save_model
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import probabilities
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Branch, Topology
from attrnet.core.schema import Schema, market_schema

SIZE = 32


def randomise(model: MultiTaskNet, seed: int = 0) -> MultiTaskNet:
    """Non-trivial BatchNorm statistics and affine terms, alphas and head weights (so folding is tested)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) * 1.5 + 0.5)
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.2)
        for unit in model.mixes.values():
            unit.alpha.copy_(torch.rand(unit.alpha.shape, generator=g))
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.5)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=g) * 0.5)
    return model.eval()


def uneven_tree(schema: Schema, arch: str = "tiny") -> Topology:
    """A FAFS-style tree for `tiny`: splits at several depths, uneven fan-out, a gather at every stage."""
    from attrnet.models.backbones import backbone

    w = backbone(arch).widths
    stages = [[Branch(0, w[0]), Branch(0, w[0])],
              [Branch(0, w[1]), Branch(1, w[1]), Branch(1, w[1])],
              [Branch(0, w[2]), Branch(1, w[2]), Branch(2, w[2]), Branch(2, w[2])],
              [Branch(0, w[3]), Branch(0, w[3]), Branch(1, w[3]), Branch(2, w[3]), Branch(3, w[3])]]
    tasks = {name: i % 5 for i, name in enumerate(schema.names)}
    return Topology(arch, stages, tasks).validate(schema.names)


def images(n: int = 6, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def reference_probs(model: MultiTaskNet, spec: InputSpec, imgs: torch.Tensor) -> torch.Tensor:
    x = imgs.permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(spec.mean).reshape(1, 3, 1, 1)) / torch.tensor(spec.std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        return probabilities(model(x), model.schema)


def save_checkpoint(path: Path, topology: Topology | None = None, schema: Schema | None = None,
                    size: int = SIZE, seed: int = 0) -> Path:
    """A trained-looking checkpoint of a randomised model."""
    schema = schema or market_schema()
    topology = topology or uneven_tree(schema)
    torch.manual_seed(seed)
    model = randomise(MultiTaskNet(topology, schema), seed)
    save_model(path, model, model_metadata(model, InputSpec(size, size).to_dict()))
    return path


def write_image_folder(folder: Path, n: int = 24, size: int = 40) -> Path:
    import cv2

    from attrnet.export.parity import generated_images

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(generated_images(InputSpec(size, size + 8), n, seed=3)):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), img[:, :, ::-1])
    return folder
