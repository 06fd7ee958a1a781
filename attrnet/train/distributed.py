"""DDP under `torchrun`: process group set-up, rank helpers and small collectives."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["average_gradients", "barrier", "Dist", "init_distributed", "mean_across", "per_rank", "shutdown",
           "sum_across"]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(rank, world, local)


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Average a tensor over ranks (NaN entries stay NaN only where every rank has NaN)."""
    if not d.enabled:
        return t
    valid = (~torch.isnan(t)).to(t.dtype)
    total = torch.nan_to_num(t)
    pair = torch.stack([total, valid])
    dist.all_reduce(pair)
    return torch.where(pair[1] > 0, pair[0] / pair[1].clamp(min=1), torch.full_like(t, float("nan")))


def sum_across(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum of a tensor over ranks, the same on every rank (a new tensor; `t` stays as it is)."""
    if not d.enabled:
        return t
    total = t.clone()
    dist.all_reduce(total)
    return total


def per_rank(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """A scalar's value on every rank, in rank order: ``[world]``, the same on every rank (one all-reduce)."""
    if not d.enabled:
        return value.reshape(1)
    slots = torch.zeros(d.world, dtype=value.dtype, device=value.device)
    slots[d.rank] = value
    dist.all_reduce(slots)
    return slots


def average_gradients(params: list[torch.nn.Parameter], d: Dist) -> None:
    """All-reduce the gradients of parameters DDP does not manage (the weighting's own)."""
    if not d.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= d.world


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()

