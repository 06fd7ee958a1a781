"""The interface between the trainer and an architecture method (shared, independent, FAFS, cross-stitch).

The trainer owns the loop (data, optimiser, loss weighting, checkpoints). A
`Method` decides the architecture and may hook into training. The hooks, in
the order a run calls them:

- `initial_topology(arch, schema)` gives the Topology to build (FAFS: the thin
  trunk; cross-stitch: K columns with `mix`).
- `attach(ctx)` hands the method the run's `TrainContext` once it exists, on a
  new run and on ``--resume`` alike, before the optimiser is built.
- `init_model(ctx)` initialises ``ctx.model``'s weights before training (SOMP,
  per-column pretraining). Not called on ``--resume``: the weights come from
  ``last.safetensors``.
- `param_groups(model, lr)` splits parameters into optimiser groups
  (cross-stitch alphas at their own learning rate).
- `after_step(step, losses, mask, logits, labels)` sees every training step's
  per-sample, per-attribute losses (FAFS task affinity) and may return a new
  model (FAFS widening on the step schedule); the trainer then rebuilds its
  optimiser around it, as for `after_validation`.
- `after_validation(step, val_loss, model)` may return a new model (FAFS
  widening); the trainer then rebuilds its optimiser around it.
- `state_dict()` / `load_state_dict(state)` carry method state in
  `last.safetensors` (tensors) so `--resume` continues exactly.
- `finish(model, run_dir)` writes method outputs into the run directory
  (topology.json, reports, PNGs, alphas.json).

A method never sees the trainer. `attach` and `init_model` receive a
`TrainContext`: the run's model, optimiser and step, the training split and
input spec, the device, the settings a method needs to draw its own training
batches (seed, batch size, learning rate, augmentation, workers), the
optimiser's kind (``--optimizer``) and the run's `log`. It is
one object for the whole run, which the trainer keeps current (``model``
after a replacement, ``optimizer`` once built, ``step`` after every step), so
a method may keep it; methods read it and never assign to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    from attrnet.core.input_spec import InputSpec
    from attrnet.core.schema import Schema
    from attrnet.core.topology import Topology
    from attrnet.data.base import AttributeDataset
    from attrnet.models.net import MultiTaskNet

__all__ = ["Method", "TrainContext"]


@dataclass
class TrainContext:
    """What a method may use of the run it trains in (see the module docstring)."""

    model: "MultiTaskNet"
    train_set: "AttributeDataset"
    spec: "InputSpec"
    device: "torch.device"
    seed: int
    batch_size: int
    lr: float
    augment: bool
    crop_fraction: float
    workers: int
    log: Callable[[str], None]
    step: int = 0
    optimizer: "torch.optim.Optimizer | None" = None  # built after `init_model`
    optimizer_name: str = "adamw"  # --optimizer: adamw | sgd


class Method:
    """Base class: a plain shared trunk with no hooks."""

    name = "shared"

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    def initial_topology(self, arch: str, schema: "Schema") -> "Topology":
        from attrnet.models.backbones import backbone
        from attrnet.core.topology import shared

        return shared(arch, backbone(arch).widths, schema.names)

    def attach(self, ctx: TrainContext) -> None:
        """Receive the run's context (new run or ``--resume``), before `init_model` and the optimiser."""

    def init_model(self, ctx: TrainContext) -> None:
        """Initialise ``ctx.model``'s weights before training (default: keep the model's own init)."""

    def param_groups(self, model: "MultiTaskNet", lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def after_step(self, step: int, losses: "torch.Tensor", mask: "torch.Tensor",
                   logits: "torch.Tensor", labels: "torch.Tensor") -> "MultiTaskNet | None":
        """`losses`/`mask`: ``[N, A]`` per-sample per-attribute loss (detached) and label mask.
        `step` counts the steps before this one. Return a replacement model to continue with, or None."""
        return None

    def after_validation(self, step: int, val_loss: float, model: "MultiTaskNet") -> "MultiTaskNet | None":
        """Return a replacement model to continue training with, or None."""
        return None

    def state_dict(self) -> dict[str, "torch.Tensor"]:
        return {}

    def load_state_dict(self, state: dict[str, "torch.Tensor"]) -> None:
        """Restore what `state_dict` returned."""

    def finish(self, model: "MultiTaskNet", run_dir: Path) -> None:
        """Write method outputs into the run directory."""
