"""Thin-network initialisation by simultaneous orthogonal matching pursuit (FAFS, Lu et al. 2017, §3.1).

For every layer of a wide VGG-style network, from the bottom, SOMP picks the
d' output filters (rows of W) whose span best reconstructs all d rows,
min ||W - A W_sel||_F, greedily: at each step the filter most correlated with
the residual of all rows, then an orthogonal projection updated by inverse
Cholesky (one Gram column per step, no least-squares solve). The next layer's
input channels are then restricted to the selection.

Wide networks accepted: a torchvision VGG-16 (or VGG-16-BN) state dict
(``features.N.weight``, ``classifier.N.weight``; a ``.pth`` read with
``torch.load(weights_only=True)`` or a ``.safetensors``), or an attrnet
checkpoint of a plain one-branch conv chain (e.g. ``--arch vgg16 --method shared``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from attrnet.core.errors import InputError

__all__ = ["init_thin_model", "read_wide_layers", "reconstruction_error", "restrict_inputs", "select_filters",
           "somp", "thin_layers", "WideLayer"]

if TYPE_CHECKING:
    import torch
    from attrnet.models.net import MultiTaskNet

_EPS = 1e-10


# ---------------------------------------------------------------- SOMP

def somp(signals: np.ndarray, atoms: np.ndarray, k: int) -> list[int]:
    """Indices of `k` columns of `atoms` ``[dim, N]`` that jointly approximate all columns of `signals` ``[dim, F]``.

    Inverse-Cholesky SOMP. With Q the orthonormal basis of the chosen atoms,
    the correlations of all atoms with the residual are C = T^T Y - D A, where
    D = T^T Q and A = Q^T Y grow by one column / row per step from one Gram
    column (no least-squares solve). C is never formed: the selection rule
    max_j ||C_j|| / ||t_j|| only needs the row norms, updated in O(N + F) per
    step after two matrix-vector products. Atoms already in the span (or zero)
    are skipped; once the residual vanishes the rest are filled by norm.
    """
    t = np.asarray(atoms, dtype=np.float64)
    y = np.asarray(signals, dtype=np.float64)
    n = t.shape[1]
    if not 0 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} atoms")
    gdiag = np.einsum("ij,ij->j", t, t)
    norms = np.sqrt(gdiag)
    sq = np.concatenate([np.einsum("ij,ij->i", c, c) for c in
                         (t[:, i:i + 1024].T @ y for i in range(0, n, 1024))]) if n else np.zeros(0)
    scale = max(float(sq.max(initial=0.0)), 1e-300)
    d_mat = np.zeros((n, k))          # D = T^T Q
    a_mat = np.zeros((k, y.shape[1]))  # A = Q^T Y
    chosen: list[int] = []
    free = np.ones(n, dtype=bool)
    for step in range(k):
        d, a = d_mat[:, :step], a_mat[:step]
        remaining = gdiag - np.einsum("ij,ij->i", d, d)  # ||t_j - QQ^T t_j||^2
        eligible = free & (remaining > _EPS * gdiag) & (norms > 0)
        obj = np.where(eligible, np.sqrt(np.maximum(sq, 0.0)) / np.where(norms > 0, norms, 1.0), -1.0)
        j = int(np.argmax(obj))
        if obj[j] < 0 or sq[j] <= _EPS * scale:
            break
        lam = 1.0 / np.sqrt(remaining[j])
        dk = lam * (t.T @ t[:, j] - d @ d[j])
        ak = lam * (t[:, j] @ y - d[j] @ a)
        c_ak = t.T @ (y @ ak) - d @ (a @ ak)       # C ak
        sq = sq - 2.0 * dk * c_ak + dk * dk * (ak @ ak)
        d_mat[:, step], a_mat[step] = dk, ak
        chosen.append(j)
        free[j] = False
    if len(chosen) < k:  # residual is zero: any further atom is as good; take the largest
        rest = [int(i) for i in np.argsort(-norms, kind="stable") if free[i]]
        chosen.extend(rest[: k - len(chosen)])
    return chosen


def select_filters(weight: np.ndarray, k: int) -> list[int]:
    """SOMP over W^T: the `k` rows (output filters) of `weight` ``[out, ...]`` that best reconstruct all rows."""
    w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    if k >= w.shape[0]:
        return list(range(w.shape[0]))
    return sorted(somp(w.T, w.T, k))


def reconstruction_error(weight: np.ndarray, rows: list[int]) -> float:
    """Relative error min_A ||W - A W[rows]||_F / ||W||_F."""
    w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    sel = w[rows]
    coef, *_ = np.linalg.lstsq(sel.T, w.T, rcond=None)
    return float(np.linalg.norm(w - (sel.T @ coef).T) / max(np.linalg.norm(w), 1e-300))


# ---------------------------------------------------------------- wide networks

@dataclass
class WideLayer:
    """One layer of a plain chain: conv ``[out, in, kh, kw]`` or fc ``[out, in]``, optional BatchNorm."""

    kind: Literal["conv", "fc"]
    weight: np.ndarray
    bias: np.ndarray | None
    bn: dict[str, np.ndarray] | None = None

    @property
    def width(self) -> int:
        return int(self.weight.shape[0])


def _read_tensors(path: Path) -> tuple[dict[str, "torch.Tensor"], dict[str, Any] | None]:
    """Tensors of a state-dict file and, for an attrnet checkpoint, its metadata."""
    from attrnet.models.pretrained import read_state_dict

    if path.suffix == ".safetensors" and path.is_file():
        from attrnet.train.checkpoint import load_checkpoint

        try:
            return load_checkpoint(path)
        except InputError as exc:
            if "no attrnet metadata" not in str(exc):
                raise
    return read_state_dict(path, "wide network for SOMP"), None


def _np(t: "torch.Tensor") -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _torchvision_layers(tensors: dict[str, "torch.Tensor"], path: Path) -> list[WideLayer]:
    feats = sorted((int(m.group(1)), k) for k in tensors if (m := re.fullmatch(r"features\.(\d+)\.weight", k)))
    convs = []
    for i, key in feats:
        w = tensors[key]
        if w.dim() != 4:
            continue
        bn = None
        if f"features.{i + 1}.running_mean" in tensors:
            bn = {name: _np(tensors[f"features.{i + 1}.{name}"])
                  for name in ("weight", "bias", "running_mean", "running_var")}
        b = tensors.get(f"features.{i}.bias")
        convs.append(WideLayer("conv", _np(w), None if b is None else _np(b), bn))
    fcs = sorted((int(m.group(1)), k) for k in tensors if (m := re.fullmatch(r"classifier\.(\d+)\.weight", k)))
    linears = [WideLayer("fc", _np(tensors[k]), _np(tensors[f"classifier.{i}.bias"])
                         if f"classifier.{i}.bias" in tensors else None) for i, k in fcs]
    if not convs:
        raise InputError("no features.N.weight conv tensors: not a torchvision VGG state dict", path)
    return convs + linears


def _attrnet_layers(tensors: dict[str, "torch.Tensor"], meta: dict[str, Any], path: Path) -> list[WideLayer]:
    from attrnet.models.backbones import backbone

    topo = meta.get("topology", {})
    stages = topo.get("stages", [])
    if not stages or any(len(st) != 1 for st in stages) or topo.get("mix"):
        raise InputError("SOMP needs a plain chain: an attrnet checkpoint with one branch per stage", path)
    spec = backbone(str(topo.get("arch")))
    layers = []
    for s, st in enumerate(spec.stages):
        p = f"stages.{s}."
        if st.kind == "conv":
            bn = {name: _np(tensors[p + "bn." + name]) for name in ("weight", "bias", "running_mean", "running_var")}
            layers.append(WideLayer("conv", _np(tensors[p + "conv.weight"]), _np(tensors[p + "conv.bias"]), bn))
        elif st.kind == "fc":
            layers.append(WideLayer("fc", _np(tensors[p + "fc.weight"][0]), _np(tensors[p + "fc.bias"][0])))
        else:
            raise InputError(f"SOMP applies to plain conv chains (VGG); {spec.name} has {st.kind} stages", path)
    return layers


def read_wide_layers(path: str | Path) -> list[WideLayer]:
    """The conv and fc layers, bottom up, of a torchvision VGG state dict or an attrnet plain-chain checkpoint."""
    path = Path(path)
    tensors, meta = _read_tensors(path)
    if meta is not None:
        return _attrnet_layers(tensors, meta, path)
    return _torchvision_layers(tensors, path)


# ---------------------------------------------------------------- thinning

def restrict_inputs(weight: np.ndarray, channels: list[int], below: int) -> np.ndarray:
    """Keep the input channels `channels` of a layer reading `below` channels (an fc layer reading a
    flattened ``[below, H*W]`` map keeps those channels at every position)."""
    if weight.shape[1] == below:
        return weight[:, channels]
    if weight.ndim != 2 or weight.shape[1] % below:
        raise ValueError(f"layer input {weight.shape[1]} does not match the {below} channels below")
    spatial = weight.shape[1] // below
    return weight.reshape(weight.shape[0], below, spatial)[:, channels, :].reshape(weight.shape[0], -1)


def thin_layers(layers: list[WideLayer], widths: list[int]) -> tuple[list[WideLayer], list[list[int]], list[float]]:
    """Select `widths[l]` filters per layer by SOMP, bottom up, restricting each layer's inputs
    to the previous selection.

    Returns the thin layers, the selected filter indices and the relative
    reconstruction error of every layer (after input restriction).
    """
    thin, picks, errors = [], [], []
    prev: list[int] | None = None
    below = 0
    for layer, width in zip(layers, widths):
        if width > layer.width:
            raise ValueError(f"thin width {width} exceeds the wide layer's {layer.width}")
        w = layer.weight if prev is None else restrict_inputs(layer.weight, prev, below)
        rows = select_filters(w, width)
        bn = None if layer.bn is None else {k: v[rows] for k, v in layer.bn.items()}
        thin.append(WideLayer(layer.kind, w[rows], None if layer.bias is None else layer.bias[rows], bn))
        picks.append(rows)
        errors.append(reconstruction_error(w, rows))
        prev, below = rows, layer.width
    return thin, picks, errors


def init_thin_model(model: "MultiTaskNet", path: str | Path) -> dict[str, Any]:
    """Initialise a one-branch VGG-style `model` from the wide network at `path` by SOMP.

    Returns a summary: source, per-layer wide/thin widths and relative reconstruction errors.
    """
    import torch

    from attrnet.models.layers import GroupedConvBlock, GroupedFCBlock

    path = Path(path)
    topo = model.topology
    if any(len(st) != 1 for st in topo.stages) or topo.mix:
        raise InputError("SOMP initialises a plain one-branch network (before any widening)")
    kinds = [st.kind for st in model.spec.stages]
    if any(k not in ("conv", "fc") for k in kinds):
        raise InputError(f"SOMP applies to plain conv chains (VGG), not arch {topo.arch}")
    found = read_wide_layers(path)
    layers = found[: len(kinds)]
    if [lay.kind for lay in layers] != kinds:
        raise InputError(f"wide network has {sum(lay.kind == 'conv' for lay in found)} conv and "
                         f"{sum(lay.kind == 'fc' for lay in found)} fc layers; {topo.arch} needs "
                         f"{kinds.count('conv')} conv then {kinds.count('fc')} fc", path)
    widths = topo.widths()
    for s, (lay, w) in enumerate(zip(layers, widths)):
        if lay.width < w:
            raise InputError(f"wide layer {s} has {lay.width} filters, fewer than the thin {w}", path)
    thin, _, errors = thin_layers(layers, widths)
    report = {"source": str(path), "layers": []}
    with torch.no_grad():
        for s, (stage, lay) in enumerate(zip(model.stages, thin)):
            if isinstance(stage, GroupedConvBlock):
                target = stage.conv.weight
                if tuple(target.shape) != lay.weight.shape:
                    raise InputError(f"stage {s}: wide conv {lay.weight.shape} does not fit {tuple(target.shape)}", path)
                target.copy_(torch.from_numpy(lay.weight))
                if lay.bias is not None:
                    stage.conv.bias.copy_(torch.from_numpy(lay.bias))
                if lay.bn is not None:
                    for name, value in lay.bn.items():
                        getattr(stage.bn, name).copy_(torch.from_numpy(value))
            elif isinstance(stage, GroupedFCBlock):
                target = stage.fc.weight[0]
                if tuple(target.shape) != lay.weight.shape:
                    raise InputError(f"stage {s}: wide fc {lay.weight.shape} does not fit {tuple(target.shape)}", path)
                target.copy_(torch.from_numpy(lay.weight))
                if lay.bias is not None:
                    stage.fc.bias[0].copy_(torch.from_numpy(lay.bias))
            report["layers"].append({"stage": s, "wide": layers[s].width, "thin": widths[s],
                                     "reconstruction_error": round(errors[s], 6)})
    return report
