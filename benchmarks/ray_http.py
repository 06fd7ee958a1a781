"""The HTTP side of benchmarks/ray_scale.py: a concurrent load client and the no-op endpoint that measures H.

The no-op endpoint has the same Serve set-up as attrnet's (deployment
options, ``@serve.batch`` with the same batch size and wait, the same hop off
the event loop, an answer of the same shape) but never decodes or runs the
model, so its requests/s is what Serve and HTTP alone allow on this machine.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from attrnet.bench.stats import percentile
from attrnet.serve.scale_endpoint import deployment_options


@dataclass
class Load:
    """One load run: requests/s, latency percentiles (ms), HTTP statuses."""

    concurrency: int
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


def run_load(url: str, bodies: list[bytes], concurrency: int, requests: int) -> Load:
    """POST `requests` bodies (round robin) with `concurrency` requests in flight at all times."""
    return asyncio.run(_load(url, bodies, concurrency, requests))


async def _load(url: str, bodies: list[bytes], concurrency: int, requests: int) -> Load:
    import aiohttp

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    order = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        async def client() -> None:
            while (i := next(order)) < requests:
                t = time.perf_counter()
                async with session.post(url, data=bodies[i % len(bodies)]) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return Load(concurrency, requests, requests / wall, 1000 * percentile(latencies, 50),
                1000 * percentile(latencies, 99), dict(statuses))


def noop_app(answer: dict[str, Any], *, max_batch: int, batch_wait_ms: float, cpus_per_replica: float) -> Any:
    """A Serve app with attrnet's set-up that returns `answer` to every POST without looking at the body."""
    from ray import serve
    from starlette.responses import JSONResponse

    class NoopEndpoint:
        async def __call__(self, request: Any) -> Any:
            body = await request.body()
            if max_batch > 1:
                content = await self.batch(body)
            else:
                content = (await asyncio.to_thread(lambda: [answer]))[0]
            return JSONResponse(content)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_ms / 1000.0)
        async def batch(self, bodies: list[bytes]) -> list[dict[str, Any]]:
            return await asyncio.to_thread(lambda: [answer] * len(bodies))

    options = deployment_options(1, max_batch, 0, cpus_per_replica)
    return serve.deployment(NoopEndpoint, **options).bind()
