"""`attrnet.Predictor`: the Python API for batched attribute prediction.

    from attrnet import Predictor
    p = Predictor()                       # the shipped default model
    for r in p.predict("photos/"):        # lazily, in input order
        print(r.source, r.error or r.labels)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from attrnet.core.progress import info
from attrnet.core.schema import Schema
from attrnet.serve.backend import Backend, cpu_count
from attrnet.serve.backends import open_backend
from attrnet.serve.pipeline import Pipeline, Stats
from attrnet.serve.sources import iter_items

__all__ = ["default_model_path", "Predictor", "Result"]


@dataclass
class Result:
    """The prediction for one image: probabilities by output column, labels by attribute, or an error."""

    source: str
    path: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    labels: dict[str, int | str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def positives(self) -> list[str]:
        """Binary attributes predicted present, and categorical ones as ``attr=class``."""
        return [a if isinstance(v, int) else f"{a}={v}" for a, v in self.labels.items() if v != 0]


def default_model_path() -> Path:
    """The model shipped in `attrnet.weights` (ONNX, so no torch is needed)."""
    from attrnet.weights import default_onnx

    return default_onnx()


def _nvjpeg_usable(backend: Backend) -> bool:
    """nvjpeg for the torch backend on CUDA if a probe decode works there; else CPU decoding, said in one line."""
    if backend.name != "torch" or not backend.device.startswith("cuda"):
        return False
    from attrnet.serve.gpu import nvjpeg_problem

    why = nvjpeg_problem(backend.device)
    if why is not None:
        info(f"nvjpeg cannot decode on {backend.device} ({why}); decoding JPEGs on the CPU")
    return why is None


class Predictor:
    """Load a model once; predict on files, folders, globs, list files, videos, arrays or PIL images.

    `model`: a ``.safetensors`` checkpoint (torch), ``.onnx`` (ONNX Runtime) or
    ``.engine``/``.plan`` (TensorRT); None for the shipped default model.
    `backend`: ``auto`` (by suffix), ``torch``, ``onnxruntime`` or ``tensorrt``.
    `device`: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. `workers`: decode
    threads (default: the usable cores). `threads`: the model's CPU threads.
    `gpu_decode`: decode plain JPEGs with nvjpeg on the GPU (torch backend on
    CUDA; default: when a probe decode works there, else the CPU decodes them
    and one line on stderr says why). `reduced_decode`: decode large JPEGs at
    1/2, 1/4 or 1/8 scale.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                 batch_size: int = 32, workers: int | None = None, threads: int | None = None,
                 reduced_decode: bool = True, gpu_decode: bool | None = None):
        path = Path(model) if model is not None else default_model_path()
        cores = cpu_count()
        self.backend: Backend = open_backend(path, device, backend, threads=threads or cores, spinning=False)
        if gpu_decode is None:
            gpu_decode = _nvjpeg_usable(self.backend)
        self.pipeline = Pipeline(self.backend, batch_size, workers or cores, reduced_decode, gpu_decode)

    @property
    def schema(self) -> Schema:
        return self.backend.card.schema

    @property
    def columns(self) -> list[str]:
        return self.backend.columns

    @property
    def attributes(self) -> list[str]:
        return self.schema.names

    @property
    def metadata(self) -> dict[str, Any]:
        return self.backend.metadata

    @property
    def stats(self) -> Stats:
        """Counters of the latest `predict` run (images, errors, decode and model time)."""
        return self.pipeline.stats

    def predict(self, source: Any, *, stride: int = 1, allow_outside: bool = False,
                skip: Callable[[str], bool] | None = None) -> Iterator[Result]:
        """Yield one `Result` per image, lazily and in input order.

        `stride`: keep every n-th video frame. `allow_outside`: accept list-file
        entries outside the list file's folder. `skip(source)`: leave out items
        (e.g. those already written by an earlier run). Raises `InputError` only
        when the source itself is missing or holds no images; a bad image is a
        result with `error` set.
        """
        items = iter_items(source, stride=stride, allow_outside=allow_outside)
        if skip is not None:
            items = (it for it in items if not skip(it.source))
        card, columns = self.backend.card, self.columns
        for batch, probs in self.pipeline.run(items):
            labels = card.labels(probs)
            rows = dict(zip(batch.rows, range(len(batch.rows))))
            for i, (item, error) in enumerate(zip(batch.items, batch.errors)):
                path = str(item.path) if item.path is not None else None
                k = rows.get(i)
                if k is None:
                    yield Result(item.source, path, error=error or "failed")
                else:
                    yield Result(item.source, path, dict(zip(columns, probs[k].tolist())), labels[k])

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Model-only: probabilities ``[N, C]`` for images already at the input size (uint8 ``[N, H, W, 3]``)."""
        return self.backend.run(images)

    def __repr__(self) -> str:
        return f"Predictor({str(self.backend.path)!r}, {self.backend.describe()}, {len(self.columns)} columns)"
