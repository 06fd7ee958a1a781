"""Online prediction on Ray Serve, with dynamic batching (``@serve.batch``).

    POST /predict    body: one encoded image (any format predict reads)
                     -> 200 {"probs": {column: p}, "labels": {attribute: value}}, or 400 {"error": "..."}
    GET  /health     -> 200 {"status": "ok"}
    GET  /metadata   -> the model's columns, attributes, thresholds and input size

Requests that arrive within `batch_wait_ms` of each other share one model call
of up to `max_batch` images; ``max_batch=1`` turns batching off. Each replica
loads the exported model once (`attrnet.serve.scale_model`) and decodes in a
thread pool beside the model. `run_endpoint` is ``attrnet serve``: it starts
(or joins) Ray, serves until Ctrl-C or SIGTERM, then removes what it started.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from attrnet.core.errors import AttrnetError, InputError
from attrnet.core.progress import info
from attrnet.serve.backend import cpu_count
from attrnet.serve.scale_model import BatchModel, ModelFile
from attrnet.serve.scale_ray import ray_session, require_ray, starts_local_ray
from attrnet.serve.sinks import DIGITS
from attrnet.serve.sources import Item

__all__ = ["APP_NAME", "answer", "deployment_options", "endpoint_app", "endpoint_metadata", "run_endpoint"]

APP_NAME = "attrnet"
ROUTES = {"/predict": "POST", "/health": "GET", "/metadata": "GET"}
QUEUE = 64  # requests a replica accepts at least, batching or not
QUIET_LOGS = {"log_level": "WARNING", "enable_access_log": False}  # a log line per request costs throughput


def answer(model: BatchModel, bodies: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """(HTTP status, JSON body) per request body: one predict JSONL row's probs and labels, or a 400 error."""
    probs, errors = model.predict([Item("<request body>", data=body) for body in bodies])
    ok = [i for i, error in enumerate(errors) if error is None]
    labels = dict(zip(ok, model.card.labels(probs[ok]))) if ok else {}
    columns = model.columns
    return [(400, {"error": error}) if error is not None else
            (200, {"probs": {c: round(p, DIGITS) for c, p in zip(columns, probs[i].tolist())}, "labels": labels[i]})
            for i, error in enumerate(errors)]


def endpoint_metadata(model: ModelFile) -> dict[str, Any]:
    """What GET /metadata returns."""
    card = model.card
    return {"model": model.name, "columns": card.columns, "attributes": card.schema.names,
            "thresholds": list(card.thresholds), "input": card.input_spec.to_dict()}


def deployment_options(replicas: int = 1, max_batch: int = 64, num_gpus: float = 0,
                       cpus_per_replica: float | None = None) -> dict[str, Any]:
    """``@serve.deployment`` options. `max_ongoing_requests` leaves room for a full batch to queue while the
    previous one runs (Serve's default, 5, would cap every batch at 5), and for at least `QUEUE` requests:
    waiting in the replica is cheaper than in the proxy, which polls busy replicas for room."""
    if replicas < 1 or max_batch < 1:
        raise InputError(f"replicas and max batch must be >= 1, got {replicas} and {max_batch}")
    cpus = cpus_per_replica or max(1, cpu_count() // replicas)
    return {"num_replicas": replicas, "max_ongoing_requests": max(2 * max_batch, QUEUE),
            "ray_actor_options": {"num_cpus": cpus, "num_gpus": num_gpus}, "logging_config": QUIET_LOGS}


def endpoint_app(model: str | Path | ModelFile | None = None, *, replicas: int = 1, max_batch: int = 64,
                 batch_wait_ms: float = 5.0, num_gpus: float = 0, cpus_per_replica: float | None = None) -> Any:
    """The Serve application (a bound deployment) for `model` (None: the shipped default model)."""
    model_file = model if isinstance(model, ModelFile) else ModelFile.read(model)
    if batch_wait_ms < 0:
        raise InputError(f"batch wait must be >= 0 ms, got {batch_wait_ms}")
    options = deployment_options(replicas, max_batch, num_gpus, cpus_per_replica)
    threads = max(1, int(options["ray_actor_options"]["num_cpus"]))
    require_ray()
    from ray import serve

    cls = _endpoint_class(max_batch, batch_wait_ms / 1000.0)
    return serve.deployment(cls, name="AttrnetEndpoint", **options).bind(
        model_file, "cuda" if num_gpus > 0 else "cpu", threads)


def _endpoint_class(max_batch: int, wait_s: float) -> type:
    from ray import serve
    from starlette.responses import JSONResponse

    class AttrnetEndpoint:
        """One replica: the model, loaded once; batching through ``@serve.batch``."""

        def __init__(self, model: ModelFile, device: str, threads: int):
            self.model = BatchModel(model, device, threads=threads, workers=threads)
            self.metadata = endpoint_metadata(model)

        async def __call__(self, request: Any) -> Any:
            path, method = request.url.path.rstrip("/") or "/", request.method
            if path not in ROUTES:
                return JSONResponse({"error": f"no route {path}: use POST /predict, GET /health or GET /metadata"},
                                    status_code=404)
            if method != ROUTES[path]:
                return JSONResponse({"error": f"{path} takes {ROUTES[path]}, not {method}"}, status_code=405)
            if path == "/health":
                return JSONResponse({"status": "ok"})
            if path == "/metadata":
                return JSONResponse(self.metadata)
            body = await request.body()
            if max_batch > 1:
                status, content = await self.predict_batch(body)
            else:
                status, content = (await asyncio.to_thread(answer, self.model, [body]))[0]
            return JSONResponse(content, status_code=status)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def predict_batch(self, bodies: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
            # off the event loop, so the next batch gathers while this one runs
            return await asyncio.to_thread(answer, self.model, bodies)

    return AttrnetEndpoint


def run_endpoint(model: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000,
                 address: str | None = None, **app_options: Any) -> None:
    """Serve `model` over HTTP until Ctrl-C or SIGTERM (``attrnet serve``); `app_options` go to `endpoint_app`.

    Without `address`, Ray's default applies (``RAY_ADDRESS``, else a local
    instance started here). At the end, a local instance is shut down
    completely; on an existing cluster only this application is deleted.
    """
    model_file = ModelFile.read(model)  # a bad model, or a busy port, fails before Ray starts
    app = endpoint_app(model_file, **app_options)
    ray = require_ray()
    from ray import serve

    if not ray.is_initialized() and starts_local_ray(address):
        _check_port(host, port)
    with ray_session(address) as session, _stop_on_signals() as stop:
        try:
            try:
                serve.start(http_options={"host": host, "port": port}, logging_config=QUIET_LOGS)
                serve.run(app, name=APP_NAME, route_prefix="/", logging_config=QUIET_LOGS)
            except ray.exceptions.RayError as exc:  # a remote traceback: its last line says what went wrong
                lines = [line for line in str(exc).splitlines() if line.strip()]
                raise AttrnetError(f"Ray Serve could not start the endpoint: {lines[-1] if lines else exc}") from None
            info(f"serving {model_file.source} on http://{host}:{port}: POST /predict, GET /health, "
                 "GET /metadata (Ctrl-C stops)")
            while not stop.wait(0.5):
                pass
            info("stopping the endpoint")
        finally:
            if session.local:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)


def _check_port(host: str, port: int) -> None:
    """InputError when this machine cannot listen on `host`:`port` (in use, or not one of its addresses)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP proxy binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT and SIGTERM set (instead of killing the process before it cleans up)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
