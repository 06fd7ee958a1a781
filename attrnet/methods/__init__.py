"""The adaptive multi-task methods, and the one entry point that trains with any of them.

`train(config)` builds the method named by ``config.method`` (`registry`) and runs
`attrnet.train.trainer.Trainer` with it; `trainer_for(config)` returns that trainer
unstarted. One subpackage per paper: `fafs`, `cross_stitch`, `taskonomy`;
`independent` (one column per group) and the plain shared trunk need no hooks of their own.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attrnet.train.config import TrainConfig
    from attrnet.train.trainer import Trainer

__all__ = ["train", "trainer_for"]


def trainer_for(config: "TrainConfig") -> "Trainer":
    """A `Trainer` for `config`, with the method ``config.method`` built from ``config.method_options``."""
    from attrnet.methods.registry import make_method
    from attrnet.train.trainer import Trainer

    return Trainer(config, make_method(config.method, config.method_options))


def train(config: "TrainConfig") -> dict[str, Any]:
    """Train with the method ``config.method``; returns the run summary."""
    return trainer_for(config).run()
