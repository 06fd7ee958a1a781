"""`last.safetensors`: everything `--resume` needs, as tensors plus JSON in the header.

The model's tensors keep their own names (so `load_model` reads a
`last.safetensors` like a `best.safetensors`); the rest are prefixed
``optim/<param index>/<name>``, ``weighting/``, ``method/``, ``rng/``. Non-tensor optimiser state (param group
hyper-parameters) and the trainer's counters live in the metadata under
``"resume"``. Nothing is pickled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from attrnet.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = ["load_last", "optimizer_from_tensors", "optimizer_to_tensors", "restore_rng", "rng_tensors",
           "save_last"]


def _flatten(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def _unflatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "/"
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state split into tensors and JSON (param groups, non-tensor scalars)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{idx}/{name}"] = v
            else:
                scalars.setdefault(str(idx), {})[name] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an optimiser state dict for `Optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, sc in info.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(sc)
    groups = []
    for g in info["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng/cuda"] = torch.cuda.get_rng_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"].to(torch.uint8))
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"].to(torch.uint8))


def save_last(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              weighting_state: dict[str, torch.Tensor], method_state: dict[str, torch.Tensor],
              metadata: dict[str, Any], resume: dict[str, Any]) -> None:
    """Write `last.safetensors` atomically."""
    opt_tensors, opt_info = optimizer_to_tensors(optimizer)
    tensors = dict(model.state_dict())
    tensors.update(opt_tensors)
    tensors.update(_flatten("weighting", weighting_state))
    tensors.update(_flatten("method", method_state))
    tensors.update(rng_tensors())
    meta = dict(metadata)
    meta["resume"] = dict(resume, optimizer=opt_info)
    save_checkpoint(path, tensors, meta)


def load_last(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Sections (model, weighting, method, optim, rng) of a `last.safetensors` and its metadata."""
    tensors, meta = load_checkpoint(path)
    sections = {name: _unflatten(name, tensors) for name in ("weighting", "method")}
    sections["model"] = {k: v for k, v in tensors.items() if "/" not in k}
    sections["optim"] = {k: v for k, v in tensors.items() if k.startswith("optim/")}
    sections["rng"] = {k: v for k, v in tensors.items() if k.startswith("rng/")}
    return sections, meta
