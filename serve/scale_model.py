"""An exported model as Ray workers use it: shipped as bytes, loaded once per worker, fed encoded images.

`ModelFile` reads an ONNX file (or a TensorRT engine and its ``.json``
sidecar) on the driver and checks it there, so a bad model is one clear error
before any worker starts. The bytes travel with the Ray actor, so the model
need not exist on other nodes. `BatchModel` opens it in the worker with ONNX
Runtime or TensorRT (never torch) and turns encoded images or files into
probabilities with predict's own reduced JPEG decode (`load_item`); an image
that cannot be decoded is that row's error, as in local predict.
"""
from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.model_card import ModelCard
from attrnet.serve.backend import Backend, read_sidecar
from attrnet.serve.backends import backend_for_suffix, open_backend
from attrnet.serve.batch import describe_error
from attrnet.serve.pipeline import load_item
from attrnet.serve.predictor import default_model_path
from attrnet.serve.sources import Item

__all__ = ["BatchModel", "ModelFile"]


@dataclass(frozen=True)
class ModelFile:
    """A model file's bytes (plus an engine's sidecar), its card, and where it was read from."""

    source: str
    files: dict[str, bytes]
    card: ModelCard

    @property
    def name(self) -> str:
        return Path(self.source).name

    @classmethod
    def read(cls, model: str | Path | None = None) -> "ModelFile":
        """Read and check `model` (None: the shipped default model): ``.onnx`` or ``.engine``/``.plan``."""
        path = Path(model) if model is not None else default_model_path()
        kind = backend_for_suffix(path)
        if kind == "torch":
            raise InputError("Ray workers run exported models, without torch: export the checkpoint first "
                             "(attrnet export CKPT) and pass the .onnx or .engine file", path)
        if not path.is_file():
            raise InputError("model file not found" if not path.exists() else "expected a model file", path)
        files = {path.name: path.read_bytes()}
        if kind == "tensorrt":
            meta = read_sidecar(path)
            files[path.name + ".json"] = Path(str(path) + ".json").read_bytes()
            card = ModelCard.from_metadata(meta, path)
        else:  # open it here once: a file that is not an attrnet ONNX model fails now, with its name
            card = open_backend(path, "cpu", "onnxruntime", threads=1).card
        return cls(str(path), files, card)

    def open(self, device: str = "cpu", threads: int | None = None) -> Backend:
        """Load the model in this process (a Ray worker) from the shipped bytes."""
        with tempfile.TemporaryDirectory(prefix="attrnet-model-") as tmp:
            for name, data in self.files.items():
                (Path(tmp) / name).write_bytes(data)
            backend = open_backend(Path(tmp) / self.name, device, threads=threads, spinning=False)
        backend.path = Path(self.source)  # name the original file in messages
        return backend


class BatchModel:
    """A model loaded once, predicting on batches of items: files, encoded bytes, or known errors.

    `workers` decode threads (1: decode in the calling thread); `threads`: the
    model's CPU threads.
    """

    def __init__(self, model: ModelFile, device: str = "cpu", threads: int = 1, workers: int = 1):
        import cv2

        cv2.setNumThreads(1)  # parallelism is across images and workers, as in local predict
        self.backend = model.open(device, threads)
        self.card = self.backend.card
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="attrnet-decode") if workers > 1 else None

    @property
    def columns(self) -> list[str]:
        return self.card.columns

    def predict(self, items: Sequence[Item]) -> tuple[np.ndarray, list[str | None]]:
        """Probabilities float32 ``[len(items), C]`` (NaN on error rows) and each row's error (None if fine)."""
        decoded = list(self._pool.map(self._decode, items)) if self._pool is not None else \
            [self._decode(item) for item in items]
        ok = [i for i, (image, _) in enumerate(decoded) if image is not None]
        probs = np.full((len(items), len(self.columns)), np.nan, np.float32)
        if ok:
            probs[ok] = self.backend.run(np.stack([decoded[i][0] for i in ok]))
        return probs, [error for _, error in decoded]

    def _decode(self, item: Item) -> tuple[Any, str | None]:
        if item.error is not None:
            return None, item.error
        try:
            return load_item(item, self.backend.input_spec), None
        except Exception as exc:  # noqa: BLE001 - any failure on one image is that image's error row
            return None, describe_error(exc)
