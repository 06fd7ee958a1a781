"""The input pipeline: decode and resize in a thread pool, assemble batches ahead, run the model.

    items --(producer thread)--> decode pool (bounded, in order) --> batch buffers
          --(bounded queue)--> model (caller's thread) --> results

OpenCV releases the GIL while decoding and resizing, so `workers` threads
decode in parallel while the model runs the previous batch. Large JPEGs are
decoded at 1/2, 1/4 or 1/8 scale when that is still at least the model's
input size. Memory is bounded by the queue depth and the decode window,
whatever the number of images. A file that cannot be decoded becomes an
error entry, never an exception. With `gpu_decode` (torch backend on CUDA),
plain JPEGs are only read by the threads and decoded by nvjpeg on the GPU
(`attrnet.serve.nvjpeg`).
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.imageio import decode_image, resize_to_spec, to_rgb
from attrnet.core.input_spec import InputSpec
from attrnet.serve.backend import Backend
from attrnet.serve.batch import Batch, Stats, describe_error
from attrnet.serve.sources import Item

__all__ = ["load_item", "Pipeline"]

_QUEUE_DEPTH = 2  # assembled batches waiting for the model


def load_item(item: Item, spec: InputSpec, reduced: bool = True) -> np.ndarray:
    """Decode (or convert) and resize one item to the model's input: uint8 ``[H, W, 3]``."""
    reduce_to = (spec.height, spec.width) if reduced else None
    if item.path is not None:
        img = decode_image(item.path, reduce_to=reduce_to)
    elif isinstance(item.data, bytes):
        img = decode_image(item.data, reduce_to=reduce_to)
    else:
        img = to_rgb(item.data)
    return resize_to_spec(img, spec)


class Pipeline:
    """Decode pool + batch assembly + model, yielding `(batch, probs)` lazily and in input order."""

    def __init__(self, backend: Backend, batch_size: int = 32, workers: int = 2, reduced: bool = True,
                 gpu_decode: bool = False):
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        if workers < 1:
            raise InputError(f"workers must be >= 1, got {workers}")
        self.backend, self.batch_size, self.workers, self.reduced = backend, batch_size, workers, reduced
        self.stats = Stats()
        self._lock = threading.Lock()
        self._gpu: Any = None
        if gpu_decode:
            from attrnet.serve.nvjpeg import GpuJpegDecoder

            self._gpu = GpuJpegDecoder(backend)

    def run(self, items: Iterable[Item]) -> Iterator[tuple[Batch, np.ndarray]]:
        """Yield every batch with its probabilities ``[len(batch.rows), C]``."""
        self.stats = Stats()
        # Parallelism is across images (the decode pool): OpenCV's own thread pool on top of
        # it and the model's threads oversubscribes the cores.
        cv2.setNumThreads(1)
        batches: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
        stop = threading.Event()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="attrnet-decode")
        producer = threading.Thread(target=self._produce, args=(items, pool, batches, stop),
                                    name="attrnet-batcher", daemon=True)
        producer.start()
        pending: tuple[Batch, Callable[[], np.ndarray]] | None = None
        try:
            while True:
                got = batches.get()
                if got is None:
                    break
                if isinstance(got, BaseException):
                    raise got
                t = time.perf_counter()
                if got.blobs:
                    handle = self._gpu.submit(got)
                elif got.cpu_rows:
                    handle = self.backend.submit(got.images)
                else:
                    handle = _no_images(len(self.backend.columns))
                self.stats.model_seconds += time.perf_counter() - t
                if pending is not None:  # the next batch is in flight before the previous one is collected
                    yield self._collect(*pending)
                pending = (got, handle)
            if pending is not None:
                yield self._collect(*pending)
        finally:
            self.stats.finished = time.perf_counter()
            stop.set()
            while producer.is_alive():
                try:
                    batches.get(timeout=0.05)
                except queue.Empty:
                    pass
            producer.join()
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, batch: Batch, handle: Callable[[], np.ndarray]) -> tuple[Batch, np.ndarray]:
        t = time.perf_counter()
        probs = handle()
        self.stats.model_seconds += time.perf_counter() - t
        self.stats.images += len(batch.items)
        self.stats.errors += sum(e is not None for e in batch.errors)
        return batch, probs

    def _decode(self, item: Item) -> tuple[np.ndarray | bytes | None, str | None]:
        """Pixels at the model's size, JPEG bytes for the GPU decoder, or an error."""
        if item.error is not None:
            return None, item.error
        t = time.perf_counter()
        try:
            if self._gpu is not None and item.path is not None:
                blob = self._gpu.read(item.path)
                if blob is not None:
                    return blob, None
            return load_item(item, self.backend.input_spec, self.reduced), None
        except Exception as exc:  # noqa: BLE001 - any failure on one image is that image's error row
            return None, describe_error(exc)
        finally:
            item.data = None  # full-size frames and arrays are not kept once resized
            dt = time.perf_counter() - t
            with self._lock:
                self.stats.decode_seconds += dt

    def _produce(self, items: Iterable[Item], pool: ThreadPoolExecutor, out: queue.Queue, stop: threading.Event) -> None:
        window: deque[tuple[Item, Future]] = deque()
        limit = max(2 * self.batch_size, 4 * self.workers)
        current: list[tuple[Item, np.ndarray | bytes | None, str | None]] = []

        def put(obj: Any) -> bool:
            while not stop.is_set():
                try:
                    out.put(obj, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def drain_one() -> bool:
            item, fut = window.popleft()
            image, error = fut.result()
            current.append((item, image, error))
            if len(current) == self.batch_size:
                ok = put(self._assemble(current))
                current.clear()
                return ok
            return True

        try:
            for item in items:
                if stop.is_set():
                    return
                window.append((item, pool.submit(self._decode, item)))
                while len(window) >= limit or (window and window[0][1].done()):
                    if not drain_one():
                        return
            while window:
                if not drain_one():
                    return
            if current:
                put(self._assemble(current))
            put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(exc)

    def _assemble(self, entries: list[tuple[Item, np.ndarray | bytes | None, str | None]]) -> Batch:
        rows = [i for i, (_, pixels, _) in enumerate(entries) if isinstance(pixels, np.ndarray)]
        blob_rows = [i for i, (_, pixels, _) in enumerate(entries) if isinstance(pixels, bytes)]
        spec = self.backend.input_spec
        buf = np.empty((len(rows), spec.height, spec.width, 3), np.uint8)
        for k, i in enumerate(rows):
            buf[k] = entries[i][1]
        return Batch([e[0] for e in entries], [e[2] for e in entries], rows, buf,
                     blob_rows, [entries[i][1] for i in blob_rows])


def _no_images(columns: int) -> Callable[[], np.ndarray]:
    empty = np.zeros((0, columns), np.float32)
    return lambda: empty
