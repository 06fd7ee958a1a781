"""``--resume``: the point a run continues from, read from its ``last.safetensors`` and log files.

`read_resume_point` checks the checkpoint and returns everything the trainer
restores: the topology (a method may have widened it), the model, method,
loss-weighting, optimiser and RNG states, the epoch / step counters, the best
value so far (and which tree it is of), the thresholds, and ``metrics.jsonl`` / ``weights.jsonl`` rows up
to that point. The file format itself is `attrnet.train.state`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attrnet.core.errors import InputError
from attrnet.core.topology import Topology
from attrnet.train.config import TrainConfig
from attrnet.train.resume_config import refuse
from attrnet.train.state import load_last, optimizer_from_tensors

__all__ = ["ResumePoint", "continues_saved_run", "read_jsonl", "read_resume_point"]


@dataclass
class ResumePoint:
    """A run's state at the end of its last completed epoch."""

    topology: Topology
    model: dict[str, torch.Tensor]
    method: dict[str, torch.Tensor]
    weighting: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # for `Optimizer.load_state_dict`
    rng: dict[str, torch.Tensor]
    epoch: int
    step: int
    best: float | None
    best_epoch: int | None
    tree: int  # `attrnet.train.selection`: replacements of the model so far
    thresholds: list[float | None]
    history: list[dict[str, Any]]
    weight_log: list[dict[str, Any]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file ([] when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_resume_point(path: Path, columns: list[str]) -> ResumePoint:
    """The resume point in `path` (a run's ``last.safetensors``) for a dataset with these output `columns`."""
    sections, meta = load_last(path)
    res = meta.get("resume")
    if not isinstance(res, dict):
        raise InputError("not a resumable checkpoint (no resume state)", path)
    if meta["schema"]["columns"] != columns:
        raise InputError("the checkpoint was trained on different attributes than --data has", path)
    epoch, step = int(res["epoch"]), int(res["step"])
    run_dir = path.parent
    return ResumePoint(
        topology=Topology.from_dict(meta["topology"]), model=sections["model"], method=sections["method"],
        weighting=sections["weighting"], optimizer=optimizer_from_tensors(sections["optim"], res["optimizer"]),
        rng=sections["rng"], epoch=epoch, step=step, best=res.get("best"), best_epoch=res.get("best_epoch"),
        tree=int(res.get("tree", 0)),        thresholds=meta.get("thresholds") or [],
        history=[h for h in read_jsonl(run_dir / "metrics.jsonl") if h.get("epoch", 0) <= epoch],
        weight_log=[w for w in read_jsonl(run_dir / "weights.jsonl") if w.get("step", 0) <= step])


def continues_saved_run(config: TrainConfig) -> bool:
    """True when `config` resumes a run that has a ``config.json``; InputError when it would change that run.

    The check of `attrnet.train.resume_config`, for callers that build the whole
    `TrainConfig` themselves (`TrainConfig.for_resume` makes one that passes it).
    """
    saved = TrainConfig.saved_in(config.out) if config.resume else None
    if saved is None:
        return False
    refuse(config.changes_from(saved), Path(config.out) / "config.json")
    return True
