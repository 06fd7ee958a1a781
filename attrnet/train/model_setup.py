"""The model a run starts from: the method's topology (or ``--topology``), then ``--pretrained`` / ``--init-from`` weights."""
from __future__ import annotations

from typing import Callable

import torch

from attrnet.core.errors import InputError
from attrnet.core.model_card import ModelCard
from attrnet.core.schema import Schema
from attrnet.core.topology import Topology
from attrnet.models.columns import replicate_into_columns
from attrnet.models.net import MultiTaskNet
from attrnet.models.pretrained import load_pretrained
from attrnet.train.checkpoint import load_checkpoint
from attrnet.train.config import TrainConfig
from attrnet.train.method import Method

__all__ = ["initial_topology", "init_from", "init_head_bias", "load_start_weights", "new_model"]


def initial_topology(method: Method, config: TrainConfig, schema: Schema) -> Topology:
    """``--topology`` when given (checked against the schema), else the method's own."""
    topology = method.initial_topology(config.arch, schema)
    if config.topology:
        topology = Topology.load(config.topology)
        try:
            topology.validate(schema.names)
        except ValueError as exc:
            raise InputError(str(exc), config.topology) from None
    return topology


def new_model(topology: Topology, schema: Schema, device: torch.device, source: str | None = None) -> MultiTaskNet:
    """A freshly initialised model on `device`; a topology it cannot build is an input error naming `source`."""
    try:
        return MultiTaskNet(topology, schema).to(device)
    except ValueError as exc:
        raise InputError(f"cannot build {topology.arch} model: {exc}", source) from None


def init_head_bias(model: MultiTaskNet, logits: torch.Tensor) -> None:
    """Set the heads' biases to `logits` (``[C]``, e.g. `attrnet.train.losses.prior_logits`)."""
    with torch.no_grad():
        model.head.bias.copy_(logits.to(model.head.bias))


def load_start_weights(model: MultiTaskNet, config: TrainConfig, log: Callable[[str], None]) -> None:
    """``--pretrained`` backbone weights, then ``--init-from`` a checkpoint, where given."""
    if config.pretrained:
        n = load_pretrained(model, config.pretrained)
        log(f"loaded {n} pretrained tensors from {config.pretrained}")
    if config.init_from:
        init_from(model, config.init_from, log)


def init_from(model: MultiTaskNet, path: str, log: Callable[[str], None]) -> None:
    """Load a trained checkpoint into every column / branch of `model` (`replicate_into_columns`)."""
    tensors, meta = load_checkpoint(path)
    source = ModelCard.from_metadata(meta, path).topology
    try:
        if source is None:
            raise ValueError("the checkpoint has no topology")
        untouched = replicate_into_columns(model, tensors, source)
    except ValueError as exc:
        raise InputError(f"--init-from does not fit this model: {exc}", path) from None
    log(f"initialised from {path} ({len(untouched)} tensors kept their own init)")
