"""Batch prediction on Ray Data: the same rows as `attrnet predict`, over as many machines as the Ray cluster has.

    from attrnet.serve.scale import predict_dataset
    ds = predict_dataset("photos/", "runs/x/best.onnx", concurrency=8)
    ds.write_parquet("preds/")                 # or ds.iter_rows(), ds.to_pandas(), ...

`source` is a folder, a glob or a list file (expanded on the driver as local
predict expands it, `attrnet.serve.sources`), or a ``ray.data.Dataset`` with a
``path`` column and optionally a ``bytes`` column (e.g.
``ray.data.read_binary_files(..., include_paths=True)``). Each Ray actor loads
the exported model once (ONNX Runtime or TensorRT, no torch) and decodes its
images itself with predict's reduced JPEG decode. The result has the columns
``path``, ``error`` (None, or why the image could not be read: it never fails
the job) and one float column per output column (NaN on error rows). The
online endpoint is `attrnet.serve.scale_endpoint`; docs/scale.md has the commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.model_card import ModelCard
from attrnet.serve.predictor import Result
from attrnet.serve.scale_model import BatchModel, ModelFile
from attrnet.serve.scale_ray import require_ray
from attrnet.serve.sources import Item, iter_items

__all__ = ["DatasetPredictor", "check_source", "iter_results", "predict_dataset", "source_dataset"]

RESERVED = ("path", "error")


def predict_dataset(source: Any, model: str | Path | ModelFile | None = None, *, batch_size: int = 32,
                    concurrency: int | None = None, num_gpus: float = 0, num_cpus: float = 1,
                    allow_outside: bool = False) -> Any:
    """A lazy ``ray.data.Dataset`` of predictions for `source` (see the module docstring).

    `model`: an ``.onnx`` or ``.engine`` file (None: the shipped default model).
    `concurrency`: model actors (default: as many as the cluster's CPUs, or
    GPUs with `num_gpus`, allow). `num_gpus` / `num_cpus`: reserved per actor;
    the model runs on ``cuda`` when `num_gpus` > 0, with ``int(num_cpus)``
    threads on CPU. `allow_outside`: list-file entries may leave the list's folder.
    """
    ray = require_ray()
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if concurrency is not None and concurrency < 1:
        raise InputError(f"concurrency must be >= 1, got {concurrency}")
    model_file = model if isinstance(model, ModelFile) else ModelFile.read(model)
    clash = set(RESERVED) & set(model_file.card.columns)
    if clash:
        raise InputError(f"the model has output columns named {sorted(clash)}, which the result needs for itself",
                         model_file.source)
    device = "cuda" if num_gpus > 0 else "cpu"
    if device == "cpu" and model_file.name.endswith((".engine", ".plan")):
        raise InputError("a TensorRT engine needs a GPU: pass num_gpus (--device cuda), or use the .onnx file",
                         model_file.source)
    ds = source if isinstance(source, ray.data.Dataset) else source_dataset(source, allow_outside=allow_outside)
    _check_columns(ds)
    if concurrency is None:
        concurrency = _default_concurrency(ray, num_cpus, num_gpus)
    return ds.map_batches(
        DatasetPredictor,
        fn_constructor_kwargs={"model": model_file, "device": device, "threads": max(1, int(num_cpus))},
        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus, num_gpus=num_gpus or None, udf_modifying_row_count=False,
    )


def source_dataset(source: Any, *, allow_outside: bool = False) -> Any:
    """A folder, glob or list file as a Dataset of ``path`` and ``error`` rows, in local predict's order."""
    ray = require_ray()
    return ray.data.from_items([{"path": item.source, "error": item.error}
                                for item in _file_items(source, allow_outside)])


def check_source(source: Any, *, allow_outside: bool = False) -> None:
    """Raise InputError now, before Ray starts, when `source` is missing, empty or not image files."""
    next(_file_items(source, allow_outside), None)


def _file_items(source: Any, allow_outside: bool) -> Iterator[Item]:
    for item in iter_items(source, allow_outside=allow_outside):
        if item.path is None and item.error is None:
            raise InputError("Ray predict reads image files (a folder, a glob or a list file); videos and "
                             "in-memory images go through local predict", item.source.split("#frame=")[0])
        yield item


class DatasetPredictor:
    """The ``map_batches`` callable: Ray Data makes one per actor, so the model loads once per actor."""

    def __init__(self, model: ModelFile, device: str = "cpu", threads: int = 1):
        self.model = BatchModel(model, device, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        paths = [str(p) for p in batch["path"]]
        blobs, known = batch.get("bytes"), batch.get("error")
        items = []
        for i, path in enumerate(paths):
            if known is not None and _is_error(known[i]):
                items.append(Item(path, error=known[i]))
            elif blobs is not None:
                items.append(Item(path, data=bytes(blobs[i])))
            else:
                items.append(Item(path, path=Path(path)))
        probs, errors = self.model.predict(items)
        # an Arrow table with explicit types: a batch without errors still has a string `error` column
        import pyarrow as pa

        arrays = [pa.array(paths, pa.string()), pa.array(errors, pa.string())]
        arrays += [pa.array(probs[:, k]) for k in range(probs.shape[1])]
        return pa.Table.from_arrays(arrays, names=[*RESERVED, *self.model.columns])


def iter_results(ds: Any, card: ModelCard, batch_size: int = 256) -> Iterator[Result]:
    """The rows of a `predict_dataset` result as local predict's `Result`s (labels by the card's thresholds)."""
    columns = card.columns
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        probs = np.stack([np.asarray(batch[c], np.float32) for c in columns], axis=1)
        ok = [i for i, error in enumerate(batch["error"]) if not _is_error(error)]
        labels = dict(zip(ok, card.labels(probs[ok]))) if ok else {}
        for i, (path, error) in enumerate(zip(batch["path"], batch["error"])):
            path = str(path)
            if i in labels:
                yield Result(path, path, dict(zip(columns, probs[i].tolist())), labels[i])
            else:
                yield Result(path, path, error=str(error))


def _is_error(value: Any) -> bool:
    """An ``error`` cell holding a message (a null comes out of Arrow as None or NaN)."""
    return isinstance(value, str) and bool(value)


def _check_columns(ds: Any) -> None:
    names = ds.columns()
    if "path" not in names:
        raise InputError(f"a Dataset source needs a 'path' column (and optionally 'bytes'); it has {names}")


def _default_concurrency(ray: Any, num_cpus: float, num_gpus: float) -> int:
    if not ray.is_initialized():
        ray.init()  # what Ray Data would do on execution: RAY_ADDRESS, else a local instance
    resources = ray.cluster_resources()
    if num_gpus > 0:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int(resources.get("CPU", 1) // max(num_cpus, 1e-9)))
