"""The interface between the trainer and an architecture method (shared, independent, FAFS, cross-stitch).

The trainer owns the loop (data, optimiser, loss weighting, checkpoints). A
`Method` decides the architecture and may hook into training:

- `initial_topology` gives the Topology to build (FAFS: the thin trunk;
  cross-stitch: K columns with `mix`).
- `init_model` initialises weights (SOMP, per-column pretraining).
- `param_groups` splits parameters into optimiser groups (cross-stitch alphas
  at their own learning rate).
- `after_step` sees every training step's per-sample, per-attribute losses
  (FAFS task affinity).
- `after_validation` may return a new model (FAFS widening); the trainer then
  rebuilds its optimiser around it.
- `state_dict` / `load_state_dict` carry method state in `last.safetensors`
  (tensors) so `--resume` continues exactly.
- `finish` writes method outputs into the run directory (topology.json,
  reports, PNGs, alphas.json).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import Topology
    from attrnet.core.schema import Schema


class Method:
    """Base class: a plain shared trunk with no hooks."""

    name = "shared"

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    def initial_topology(self, arch: str, schema: "Schema") -> "Topology":
        from attrnet.models.backbones import backbone
        from attrnet.core.topology import shared

        return shared(arch, backbone(arch).widths, schema.names)

    def init_model(self, model: "MultiTaskNet", trainer: Any) -> None:
        """Initialise weights before training (default: keep the model's own init)."""

    def param_groups(self, model: "MultiTaskNet", lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def after_step(self, step: int, losses: "torch.Tensor", mask: "torch.Tensor",
                   logits: "torch.Tensor", labels: "torch.Tensor") -> None:
        """`losses`/`mask`: ``[N, A]`` per-sample per-attribute loss (detached) and label mask."""

    def after_validation(self, step: int, val_loss: float, model: "MultiTaskNet") -> "MultiTaskNet | None":
        """Return a replacement model to continue training with, or None."""
        return None

    def state_dict(self) -> dict[str, "torch.Tensor"]:
        return {}

    def load_state_dict(self, state: dict[str, "torch.Tensor"]) -> None:
        """Restore what `state_dict` returned."""

    def finish(self, model: "MultiTaskNet", run_dir: Path) -> None:
        """Write method outputs into the run directory."""
