"""`attrnet eval`: probabilities from a model file, then the shared metrics.

How probabilities are produced (a torch checkpoint, or an ONNX/TensorRT file
through `attrnet.serve.backends.open_backend`) is kept apart from the metric
computation, so both paths are judged by the same code with the thresholds
stored in the model's metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import ModelCard
from attrnet.train.metrics import compute_metrics

__all__ = ["backend_runner", "BACKEND_SUFFIXES", "checkpoint_runner", "evaluate"]

BACKEND_SUFFIXES = (".onnx", ".engine", ".plan")


def _batches(dataset: Any, batch_size: int, workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """uint8 ``[N, H, W, 3]`` images and float labels ``[N, C]`` of a resized dataset."""
    from torch.utils.data import DataLoader

    def collate(items: list[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([i[0] for i in items]), np.stack([np.asarray(i[1]) for i in items])

    yield from DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)


def checkpoint_runner(path: str | Path, device: str = "auto") -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """A function uint8 images ``[N, H, W, 3]`` -> probabilities, for a `.safetensors` checkpoint."""
    import torch

    from attrnet.train.checkpoint import load_model
    from attrnet.core.model_card import probabilities
    from attrnet.train.data import normalise
    from attrnet.core.device import resolve_device

    dev = resolve_device(device)
    model, meta = load_model(path, device=str(dev))
    spec = InputSpec.from_dict(meta["input"])

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2)
        return probabilities(model(normalise(x, spec)).float(), model.schema).cpu().numpy()

    return run, meta


def backend_runner(path: str | Path, device: str = "auto") -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """The same for an exported model (ONNX, TensorRT engine) via the serving backends."""
    from attrnet.serve.backends import open_backend

    backend = open_backend(path, device=device)
    return backend.run, backend.metadata


def evaluate(model_path: str | Path, data: str, split: str = "test", batch_size: int = 64,
             device: str = "auto", workers: int = 0) -> dict[str, Any]:
    """Metrics of a model file on one split of a dataset, with the model's own thresholds."""
    from attrnet.data import load_index
    from attrnet.train.data import Resize

    path = Path(model_path)
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if path.suffix.lower() in BACKEND_SUFFIXES:
        run, meta = backend_runner(path, device)
    else:
        run, meta = checkpoint_runner(path, device)
    card = ModelCard.from_metadata(meta, path)
    schema, spec, thresholds = card.schema, card.input_spec, list(card.thresholds)
    index = load_index(data)
    if index.schema.columns != schema.columns:
        raise InputError(f"the dataset's attributes ({index.schema.num_columns} columns) do not match "
                         f"the model's ({schema.num_columns} columns, {schema.name})", data)
    dataset = index.subset(split, Resize(spec))
    if len(dataset) == 0:
        present = ", ".join(f"{name} ({count})" for name, count in index.counts().items() if count)
        raise InputError(f"the dataset has no {split!r} images (splits with images: {present or 'none'})", data)
    probs, labels = [], []
    for images, y in _batches(dataset, batch_size, workers):
        probs.append(np.asarray(run(images), np.float32))
        labels.append(y)
    result = compute_metrics(np.concatenate(probs), np.concatenate(labels), schema, thresholds)
    result.update({"model": str(path), "data": data, "split": split, "thresholds": thresholds})
    return result
