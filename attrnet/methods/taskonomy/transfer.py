"""Taskonomy's transfer measurements: source encoders, frozen features, readouts, held-out losses.

All source encoders train at once as one model of independent columns (one
column per source, each column trained on its source's attributes only; see
`column_training`). Their frozen, pooled features feed small readouts: for
every target attribute a linear readout (logistic or softmax regression, L2,
fitted with L-BFGS on standardised features) per first-order source and per
pair among the target's top five sources (features concatenated). The
readouts' per-sample losses on held-out images are what the tournament
matrices count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet
from attrnet.core.schema import Schema

__all__ = ["binary_readout_losses", "column_labels", "encoder_model", "features", "load_images", "make_sources",
           "normalise", "softmax_readout_losses", "Source", "train_encoders"]

if TYPE_CHECKING:
    from attrnet.data.index import Index

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    name: str
    attributes: tuple[str, ...]
    cost: float = 1.0


def make_sources(spec: str, schema: Schema, cost: str = "unit") -> list[Source]:
    """`all` (one source per attribute) or a groups file; cost "unit" (1) or "attributes" (group size)."""
    from attrnet.core.schema import read_groups

    if cost not in ("unit", "attributes"):
        raise InputError(f"--source-cost takes unit or attributes, got {cost!r}")
    groups = {a: [a] for a in schema.names} if spec == "all" else read_groups(spec, schema)
    return [Source(n, tuple(m), 1.0 if cost == "unit" else float(len(m))) for n, m in groups.items()]


def load_images(index: "Index", split: str, input_spec: InputSpec, limit: int | None = None,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A split in memory: uint8 images ``[N, 3, H, W]`` and labels ``[N, C]`` (a random `limit` of them)."""
    from attrnet.core.imageio import decode_image, resize_to_spec

    ds = index.subset(split)
    order = np.arange(len(ds))
    if limit is not None and limit < len(ds):
        order = np.sort(np.random.default_rng(seed).choice(len(ds), limit, replace=False))
    h, w = input_spec.height, input_spec.width
    images = torch.empty((len(order), 3, h, w), dtype=torch.uint8)
    for row, i in enumerate(order):
        img = resize_to_spec(decode_image(ds.paths[i]), input_spec)
        images[row] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    return images, torch.from_numpy(ds.labels[order].copy())


def normalise(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def encoder_model(arch: str, sources: Sequence[Source], schema: Schema) -> MultiTaskNet:
    """One independent column per source over the sources' attributes."""
    from attrnet.models.backbones import backbone
    from attrnet.core.topology import independent

    covered = {a for s in sources for a in s.attributes}
    sub = Schema(tuple(a for a in schema.attributes if a.name in covered), schema.name)
    topo = independent(arch, backbone(arch).widths, {s.name: list(s.attributes) for s in sources})
    return MultiTaskNet(topo, sub)


def column_labels(labels: torch.Tensor, full: Schema, sub: Schema) -> torch.Tensor:
    """Labels over `sub`'s columns picked out of labels over `full`'s columns."""
    idx = [full.columns.index(c) for c in sub.columns]
    return labels[:, idx]


def train_encoders(model: MultiTaskNet, images: torch.Tensor, labels: torch.Tensor, spec: InputSpec,
                   epochs: int, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                   device: str = "cpu", progress: Progress | None = None) -> None:
    """Train every source column on its own attributes (labels over the model's schema columns)."""
    from attrnet.methods.column_training import train_columns

    g = torch.Generator().manual_seed(seed)

    def batches():
        order = torch.randperm(len(images), generator=g)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) > 1:  # BatchNorm needs two samples
                yield normalise(images[idx], spec), labels[idx]

    train_columns(model, batches, epochs, lr, device, progress)


@torch.no_grad()
def features(model: MultiTaskNet, images: torch.Tensor, spec: InputSpec, batch_size: int = 128,
             device: str = "cpu") -> torch.Tensor:
    """Frozen pooled features of every column: ``[N, S, F]``."""
    model.to(device).eval()
    out = [model.features(normalise(images[i:i + batch_size], spec).to(device)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def _standardise(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train_x.mean(0, keepdim=True)
    std = train_x.std(0, keepdim=True).clamp(min=1e-4)
    return (train_x - mean) / std, (test_x - mean) / std


def _lbfgs(params: list[torch.Tensor], objective: Callable[[], torch.Tensor], iters: int) -> None:
    """Full-batch L-BFGS on one thread (the problems are small; threads only add overhead)."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)


def binary_readout_losses(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          test_y: torch.Tensor, l2: float = 1e-3, iters: int = 60) -> np.ndarray:
    """Logistic readouts for G binary targets x M candidates; held-out losses ``[G, M, N_test]``.

    Features are ``[N, M, D]`` (the same M candidates for every target) or
    ``[N, G, M, D]`` (candidates of their own per target); labels ``[N, G]``
    (NaN = missing: left out of the fit, NaN in the result).
    """
    import torch.nn.functional as F

    shared = train_x.dim() == 3
    xs, xt = _standardise(train_x, test_x)
    g, m, d = train_y.shape[1], xs.shape[-2], xs.shape[-1]
    weight = torch.zeros(g, m, d, requires_grad=True)
    bias = torch.zeros(g, m, requires_grad=True)
    eq = "nmd,gmd->ngm" if shared else "ngmd,gmd->ngm"

    def per_sample(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [N, G, M]
        logits = torch.einsum(eq, x, weight) + bias
        target = y.nan_to_num(0).unsqueeze(-1).expand_as(logits)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    valid = (~torch.isnan(train_y)).float().unsqueeze(-1)  # [N, G, 1]
    count = valid.sum(0).clamp(min=1)

    def objective() -> torch.Tensor:
        return ((per_sample(xs, train_y) * valid).sum(0) / count).sum() + l2 * (weight ** 2).sum()

    _lbfgs([weight, bias], objective, iters)
    with torch.no_grad():
        out = per_sample(xt, test_y).permute(1, 2, 0).clone()  # [G, M, N]
    out[torch.isnan(test_y).T.unsqueeze(1).expand_as(out)] = float("nan")
    return out.numpy().astype(np.float64)


def softmax_readout_losses(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                           test_y: torch.Tensor, l2: float = 1e-3, iters: int = 60) -> np.ndarray:
    """Softmax readouts of one categorical target for M candidates ``[N, M, D]``; losses ``[M, N_test]``.

    Labels are one-hot ``[N, w]`` (all NaN = missing).
    """
    import torch.nn.functional as F

    xs, xt = _standardise(train_x, test_x)
    keep = ~torch.isnan(train_y).any(1)
    xs, ys = xs[keep], train_y[keep]
    m, d, w = xs.shape[1], xs.shape[2], train_y.shape[1]
    weight = torch.zeros(m, w, d, requires_grad=True)
    bias = torch.zeros(m, w, requires_grad=True)

    def per_sample(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [N, M]
        logits = torch.einsum("nmd,mwd->nwm", x, weight) + bias.T
        target = y.nan_to_num(0).argmax(1, keepdim=True).expand(-1, m)
        return F.cross_entropy(logits, target, reduction="none")

    if len(xs):
        _lbfgs([weight, bias], lambda: per_sample(xs, ys).mean(0).sum() + l2 * (weight ** 2).sum(), iters)
    with torch.no_grad():
        out = per_sample(xt, test_y).T.clone()
    out[:, torch.isnan(test_y).any(1)] = float("nan")
    return out.numpy().astype(np.float64)
