"""The run directory's files: config.json, metrics.jsonl, weights.jsonl, best.safetensors (+ best.json), last.safetensors.

``best.safetensors`` holds the best checkpoint of the current tree; when a
method replaces the model, the ended tree's best becomes
``best.tree<N>.safetensors`` (+ ``best.tree<N>.json``), see `attrnet.train.selection`.

Every file is written atomically (a temporary file, then ``os.replace``); under
DDP only rank 0 calls these.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from attrnet.core.fileio import atomic_write_text
from attrnet.core.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet
from attrnet.train.checkpoint import model_metadata, read_metadata, save_model, write_json_copy
from attrnet.train.config import TrainConfig
from attrnet.train.state import save_last
from attrnet.train.weighting import Weighting

__all__ = ["retire_best", "run_metadata", "save_best", "save_last_epoch", "tree_best_name", "write_config",
           "write_logs"]


def run_metadata(model: MultiTaskNet, spec: InputSpec, thresholds: list[float | None], method: str,
                 weighting: Weighting, metrics: dict[str, Any], config: TrainConfig,
                 epoch: int, step: int, tree: int) -> dict[str, Any]:
    """Checkpoint metadata: the model card plus the method, weighting, metrics and training details."""
    return model_metadata(
        model, spec.to_dict(), thresholds=thresholds, method=method, weighting=weighting.name, metrics=metrics,
        train={"epoch": epoch, "step": step, "tree": tree, "seed": config.seed, "data": config.data,
               "weighting": weighting.describe(), "method_options": config.method_options,
               "threshold_objective": config.threshold_objective, "best_metric": config.best_metric})


def write_config(out: Path, config: TrainConfig) -> None:
    """``config.json``: what the run was asked to do (creates the run directory)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")


def write_logs(out: Path, history: list[dict[str, Any]], weight_log: list[dict[str, Any]]) -> None:
    """``metrics.jsonl`` (one row per epoch) and ``weights.jsonl`` (every loss-weight update)."""
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    atomic_write_text(out / "weights.jsonl", "".join(json.dumps(w) + "\n" for w in weight_log))


def save_best(out: Path, model: MultiTaskNet, metadata: dict[str, Any]) -> None:
    """``best.safetensors`` and ``best.json``, a copy of its metadata for people."""
    save_model(out / "best.safetensors", model, metadata)
    write_json_copy(out / "best.safetensors", metadata)


def tree_best_name(tree: int) -> str:
    """The file name the best checkpoint of an ended `tree` is kept under."""
    return f"best.tree{tree}.safetensors"


def retire_best(out: Path, tree: int) -> Path | None:
    """Keep ``best.safetensors`` as ``best.tree<tree>.safetensors`` (+ json) when it holds that tree; its new path.

    A ``best.safetensors`` of another tree (a later one, written before a kill the
    run is now repeating) is left alone: the next best of the new tree replaces it.
    """
    best = out / "best.safetensors"
    if not best.exists() or read_metadata(best).get("train", {}).get("tree", 0) != tree:
        return None
    kept = out / tree_best_name(tree)
    if (out / "best.json").exists():
        os.replace(out / "best.json", kept.with_suffix(".json"))
    os.replace(best, kept)
    return kept


def save_last_epoch(out: Path, *, model: MultiTaskNet, optimizer: torch.optim.Optimizer, weighting: Weighting,
                    method_state: dict[str, torch.Tensor], metadata: dict[str, Any], resume: dict[str, Any]) -> None:
    """``last.safetensors``: the model plus everything ``--resume`` needs (`attrnet.train.state`)."""
    save_last(out / "last.safetensors", model=model, optimizer=optimizer, weighting_state=weighting.state_dict(),
              method_state=method_state, metadata=metadata, resume=resume)
