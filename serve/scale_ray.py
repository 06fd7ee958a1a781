"""Ray itself for `attrnet.serve.scale` and the endpoint: import it on demand, connect or start it for one run.

Ray is an optional dependency (``pip install 'attrnet[ray]'``): nothing in
attrnet imports it until one of these functions runs.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator

from attrnet.core.errors import NotAvailableError

__all__ = ["RaySession", "ray_session", "require_ray", "starts_local_ray"]


def require_ray() -> Any:
    """The `ray` module, or NotAvailableError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NotAvailableError("Ray is not installed: pip install 'attrnet[ray]' (ray[data,serve])") from None
    return ray


def starts_local_ray(address: str | None) -> bool:
    """Whether ``ray.init(address)`` starts a new local instance: no address given and no ``RAY_ADDRESS``."""
    return address is None and not os.environ.get("RAY_ADDRESS")


class RaySession:
    """How this process uses Ray: `owned` when it called ``ray.init``; `local` when that started a new
    local Ray instance (no address given and no ``RAY_ADDRESS``), which stops again at the end."""

    def __init__(self, owned: bool, local: bool):
        self.owned, self.local = owned, local


@contextmanager
def ray_session(address: str | None = None, **init_kwargs: Any) -> Iterator[RaySession]:
    """Connect to Ray for the duration of the block, with Ray's own default when `address` is None:
    ``RAY_ADDRESS`` if set, else a new local instance. A Ray this process already joined is reused and
    left running; otherwise ``ray.shutdown()`` runs at the end (stopping the local instance it started)."""
    ray = require_ray()
    if ray.is_initialized():
        yield RaySession(owned=False, local=False)
        return
    local = starts_local_ray(address)
    init_kwargs.setdefault("logging_level", logging.WARNING)
    ray.init(address=address, **init_kwargs)
    try:
        yield RaySession(owned=True, local=local)
    finally:
        ray.shutdown()
