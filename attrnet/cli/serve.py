"""`attrnet serve`: an HTTP endpoint on Ray Serve with dynamic batching (the `ray` extra).

POST /predict with an image's bytes answers one predict JSONL row's probs and
labels; GET /health; GET /metadata. `attrnet.serve.scale_endpoint` does the work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: Optional[Path] = typer.Argument(None, help="Exported model: .onnx or .engine/.plan (default: the shipped model)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="HTTP port."),
        replicas: int = typer.Option(1, "--replicas", min=1, help="Model replicas (Ray actors)."),
        max_batch: int = typer.Option(64, "--max-batch", min=1, help="Requests per model call (1: no batching)."),
        batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0,
                                            help="How long a batch waits for more requests after its first."),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda (one GPU per replica)."),
        cpus_per_replica: Optional[float] = typer.Option(None, "--cpus-per-replica", min=1.0,
                                                         help="CPUs (and threads) per replica (default: this machine's cores / replicas)."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                                  help="An existing Ray cluster (default: RAY_ADDRESS, else a local Ray)."),
    ) -> None:
        """Serve predictions over HTTP until Ctrl-C or SIGTERM; a bad image body gets HTTP 400."""
        from attrnet.core.device import check_device
        from attrnet.serve.scale_endpoint import run_endpoint

        gpus = 1 if check_device(device).startswith("cuda") else 0
        run_endpoint(model, host=host, port=port, address=ray_address, replicas=replicas, max_batch=max_batch,
                     batch_wait_ms=batch_wait_ms, num_gpus=gpus, cpus_per_replica=cpus_per_replica)
