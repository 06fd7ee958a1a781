"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``): checked without torch, resolved with it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from attrnet.core.errors import InputError, NotAvailableError

if TYPE_CHECKING:
    import torch

__all__ = ["check_device", "device_index", "resolve_device"]


def check_device(name: str) -> str:
    """`name` if it is auto, cpu, cuda or cuda:N; InputError otherwise."""
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise InputError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)")


def device_index(name: str) -> int:
    """The CUDA ordinal of ``cuda:N`` (0 for ``cuda`` and ``auto``)."""
    return int(name[5:]) if name.startswith("cuda:") else 0


def resolve_device(name: str) -> "torch.device":
    """The torch device for `name`: ``auto`` is CUDA when torch sees a GPU, else the CPU."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NotAvailableError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)
