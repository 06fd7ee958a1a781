"""`attrnet serve`: an HTTP endpoint on Ray Serve with dynamic batching (the `ray` extra).

POST /predict with an image's bytes answers one predict JSONL row's probs and
labels; GET /health; GET /metadata. `attrnet.serve.scale_endpoint.run_endpoint` does the work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["serve"]


def serve(
    model: Annotated[Optional[Path], typer.Argument(help="Exported model: .onnx or .engine/.plan (default: the "
                                                    "shipped model).")] = None,
    *,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTP port.")] = 8000,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Model replicas (Ray actors).")] = 1,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Requests per model call (1: no "
                                           "batching).")] = 64,
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", min=0.0, help="How long a batch waits for more "
                                                 "requests after its first.")] = 5.0,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda (one GPU per replica).")] = "cpu",
    cpus_per_replica: Annotated[Optional[float], typer.Option("--cpus-per-replica", min=1.0, help="CPUs (and "
                                                              "threads) per replica (default: this machine's cores "
                                                              "/ replicas).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="An existing Ray cluster (default: "
                                                       "RAY_ADDRESS, else a local Ray).")] = None,
) -> None:
    """Serve predictions over HTTP until Ctrl-C or SIGTERM; a bad image body gets HTTP 400."""
    from attrnet.core.device import check_device
    from attrnet.serve.scale_endpoint import run_endpoint

    gpus = 1 if check_device(device).startswith("cuda") else 0
    run_endpoint(model, host=host, port=port, address=ray_address, replicas=replicas, max_batch=max_batch,
                 batch_wait_ms=batch_wait_ms, num_gpus=gpus, cpus_per_replica=cpus_per_replica)
