"""`MultiTaskNet`: a model built from a Topology over a backbone cut into stages."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from attrnet.models.backbones import backbone, make_stage
from attrnet.models.cross_stitch import CrossStitch
from attrnet.models.layers import gather_branches
from attrnet.core.topology import Topology
from attrnet.core.schema import Schema

__all__ = ["MultiHead", "MultiTaskNet"]


class MultiHead(nn.Module):
    """All attribute heads: column c reads leaf `column_leaf[c]`'s features.

    ``[N, L, F] -> [N, C]`` logits; with a single leaf it is one linear layer.
    """

    def __init__(self, features: int, column_leaf: list[int]):
        super().__init__()
        c = len(column_leaf)
        self.weight = nn.Parameter(torch.empty(c, features))
        self.bias = nn.Parameter(torch.zeros(c))
        nn.init.normal_(self.weight, std=0.01)
        self.register_buffer("column_leaf", torch.tensor(column_leaf, dtype=torch.long), persistent=False)
        self.single_leaf = len(set(column_leaf)) == 1

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.single_leaf:
            return F.linear(feats[:, int(self.column_leaf[0])], self.weight, self.bias)
        picked = feats.index_select(1, self.column_leaf)  # [N, C, F]
        return (picked * self.weight).sum(-1) + self.bias


class MultiTaskNet(nn.Module):
    """Multi-task attribute network; `forward` returns logits ``[N, C]`` in schema column order."""

    def __init__(self, topology: Topology, schema: Schema):
        super().__init__()
        topology.validate(schema.names)
        self.topology, self.schema = topology, schema
        spec = backbone(topology.arch)
        if len(spec.stages) != topology.num_stages:
            raise ValueError(f"topology has {topology.num_stages} stages, {topology.arch} has {len(spec.stages)}")
        self.spec = spec
        counts, widths = topology.branch_counts(), topology.widths()
        stages, mixes = [], {}
        cin = 3
        for s in range(topology.num_stages):
            stages.append(make_stage(spec, s, counts[s], cin, widths[s]))
            cin = widths[s]
            parents = topology.parents(s)
            identity = s > 0 and parents == list(range(counts[s - 1]))
            if s > 0 and not identity:
                self.register_buffer(f"gather{s}", torch.tensor(parents, dtype=torch.long), persistent=False)
        for m in topology.mix:
            mixes[str(m.after_stage)] = CrossStitch(counts[m.after_stage], widths[m.after_stage], m.granularity)
        self.stages = nn.ModuleList(stages)
        self.mixes = nn.ModuleDict(mixes)
        column_leaf = [topology.tasks[schema.attributes[a].name] for a in schema.column_attribute]
        self.head = MultiHead(widths[-1], column_leaf)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Leaf features ``[N, L, F]``."""
        counts = self.topology.branch_counts()
        for s, stage in enumerate(self.stages):
            if s > 0:
                idx = getattr(self, f"gather{s}", None)
                if idx is not None:
                    x = gather_branches(x, counts[s - 1], idx)
            x = stage(x)
            mix = self.mixes[str(s)] if str(s) in self.mixes else None
            if mix is not None:
                x = mix(x)
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x.reshape(x.shape[0], counts[-1], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for m in self.mixes.values()]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
