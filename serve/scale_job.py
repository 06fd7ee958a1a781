"""`attrnet predict --ray` as one library call: start or join Ray, predict on Ray Data, write the rows.

CSV and JSONL get local predict's rows, in its order (`attrnet.serve.sinks`);
Parquet goes through Ray's writer (a folder of part files with the columns of
`attrnet.serve.scale.predict_dataset`). Without an output file, the first
`keep` results come back instead.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrnet.core.model_card import ModelCard
from attrnet.serve.predictor import Result
from attrnet.serve.scale import check_source, iter_results, predict_dataset
from attrnet.serve.scale_model import ModelFile
from attrnet.serve.scale_ray import ray_session
from attrnet.serve.sinks import Sink, sink_format

__all__ = ["RayPredictJob", "predict_job"]


@dataclass
class RayPredictJob:
    """What one `predict_job` did: counts, wall time (Ray's start-up included) and the kept results."""

    model: str
    out: str | None
    images: int
    errors: int
    seconds: float
    results: list[Result] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def predict_job(source: Any, model: str | Path | None = None, out: str | Path | None = None, *,
                address: str | None = None, batch_size: int = 32, concurrency: int | None = None,
                num_gpus: float = 0, allow_outside: bool = False, keep: int | None = 20) -> RayPredictJob:
    """Predict `source` on Ray Data and write `out` (``.csv``, ``.jsonl`` or ``.parquet``), or keep the first
    `keep` results (None: all) when `out` is None. The model, the output name and the source are checked
    before Ray starts; `address` as in `attrnet.serve.scale_ray.ray_session`."""
    parquet = out is not None and Path(out).suffix.lower() == ".parquet"
    if out is not None and not parquet:
        sink_format(out)
    model_file = ModelFile.read(model)
    check_source(source, allow_outside=allow_outside)
    start = time.perf_counter()
    kept: list[Result] = []
    with ray_session(address):
        ds = predict_dataset(source, model_file, batch_size=batch_size, concurrency=concurrency,
                             num_gpus=num_gpus, allow_outside=allow_outside)
        if parquet:
            images, errors = _write_parquet(ds, str(out))
        else:
            images, errors, kept = _write_rows(ds, model_file.card, out, keep)
    return RayPredictJob(model_file.source, None if out is None else str(out), images, errors,
                         time.perf_counter() - start, kept)


def _write_parquet(ds: Any, out: str) -> tuple[int, int]:
    ds = ds.materialize()  # predicted once, then written and counted
    ds.write_parquet(out)
    errors = sum(block.num_rows - block.column("error").null_count  # whole blocks: no new Ray tasks
                 for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"))
    return ds.count(), errors


def _write_rows(ds: Any, card: ModelCard, out: str | Path | None, keep: int | None) -> tuple[int, int, list[Result]]:
    ds.context.execution_options.preserve_order = True  # rows in local predict's order
    images = errors = 0
    kept: list[Result] = []
    with Sink(out, card.columns, card.schema.names) if out is not None else nullcontext() as sink:
        for r in iter_results(ds, card):
            images, errors = images + 1, errors + (not r.ok)
            if sink is not None:
                sink.write(r)
            elif keep is None or len(kept) < keep:
                kept.append(r)
        if sink is not None:
            sink.finish()
    return images, errors, kept
