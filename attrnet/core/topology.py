"""Topology: the one serialisable description every method produces or consumes.

A backbone is cut into stages. Each stage holds a list of branches; a branch
has a `parent` (index into the previous stage's branches; 0 for stage 0, which
reads the image) and a `width` (output channels). Each attribute is read by
the head of exactly one branch of the last stage (a leaf). Optional `mix`
entries put a cross-stitch unit after a stage, mixing its (equal-shaped)
branches.

Plain shared trunk: one branch per stage. FAFS widening splits branches
top-down. Taskonomy groups tasks into branches. Cross-stitch: K parallel
columns plus `mix`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from attrnet.core.errors import InputError

__all__ = ["Branch", "canonical", "cross_stitch", "FORMAT", "Granularity", "independent", "Mix", "shared",
           "split", "split_topology", "Topology", "units_above", "VERSION"]

FORMAT = "attrnet.topology"
VERSION = 1
Granularity = Literal["channel", "scalar"]


@dataclass(frozen=True)
class Branch:
    parent: int
    width: int


@dataclass(frozen=True)
class Mix:
    """A cross-stitch unit after stage `after_stage`."""

    after_stage: int
    granularity: Granularity = "channel"


@dataclass
class Topology:
    arch: str
    stages: list[list[Branch]]
    tasks: dict[str, int]
    mix: list[Mix] = field(default_factory=list)

    # ------------------------------------------------------------ queries
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def num_leaves(self) -> int:
        return len(self.stages[-1])

    def widths(self) -> list[int]:
        """Per-stage width (every branch of a stage has the same width)."""
        return [stage[0].width for stage in self.stages]

    def branch_counts(self) -> list[int]:
        return [len(stage) for stage in self.stages]

    def parents(self, stage: int) -> list[int]:
        return [b.parent for b in self.stages[stage]]

    def leaf_groups(self) -> list[list[str]]:
        """Attributes read by each leaf, in leaf order (attribute order kept)."""
        groups: list[list[str]] = [[] for _ in range(self.num_leaves)]
        for name, leaf in self.tasks.items():
            groups[leaf].append(name)
        return groups

    def ancestry(self, leaf: int) -> list[int]:
        """Branch index at every stage on the path from the input to `leaf`."""
        path = [leaf]
        for s in range(self.num_stages - 1, 0, -1):
            path.append(self.stages[s][path[-1]].parent)
        return path[::-1]

    def sharing_report(self) -> str:
        """Readable text: which attributes share which branch at each stage."""
        lines = []
        for s in range(self.num_stages):
            members: list[list[str]] = [[] for _ in self.stages[s]]
            for leaf, names in enumerate(self.leaf_groups()):
                members[self.ancestry(leaf)[s]].extend(names)
            parts = [f"[{b}] " + ", ".join(m) for b, m in enumerate(members)]
            lines.append(f"stage {s:2d} ({len(members)} branch{'es' if len(members) > 1 else ''}, "
                         f"width {self.stages[s][0].width}): " + " | ".join(parts))
        return "\n".join(lines)

    # ------------------------------------------------------------ validation
    def validate(self, attributes: Sequence[str] | None = None) -> "Topology":
        """Raise ValueError unless the topology is well formed (and covers `attributes`)."""
        if not self.stages:
            raise ValueError("topology has no stages")
        for s, stage in enumerate(self.stages):
            if not stage:
                raise ValueError(f"stage {s} has no branches")
            n_prev = 1 if s == 0 else len(self.stages[s - 1])
            for b, br in enumerate(stage):
                if br.width <= 0:
                    raise ValueError(f"stage {s} branch {b}: width must be positive, got {br.width}")
                if not 0 <= br.parent < n_prev:
                    raise ValueError(f"stage {s} branch {b}: parent {br.parent} does not exist")
            if len({br.width for br in stage}) != 1:
                raise ValueError(f"stage {s}: branches of one stage must share a width")
            if s > 0:
                orphans = set(range(n_prev)) - {br.parent for br in stage}
                if orphans:
                    raise ValueError(f"stage {s - 1}: branches {sorted(orphans)} have no children")
        for name, leaf in self.tasks.items():
            if not 0 <= leaf < self.num_leaves:
                raise ValueError(f"attribute {name!r} is assigned to missing leaf {leaf}")
        unused = set(range(self.num_leaves)) - set(self.tasks.values())
        if unused:
            raise ValueError(f"leaf branches {sorted(unused)} read no attribute")
        if attributes is not None:
            missing = [a for a in attributes if a not in self.tasks]
            extra = [a for a in self.tasks if a not in set(attributes)]
            if missing:
                raise ValueError(f"attributes without a leaf: {', '.join(missing)}")
            if extra:
                raise ValueError(f"topology names unknown attributes: {', '.join(extra)}")
        seen = set()
        for m in self.mix:
            if not 0 <= m.after_stage < self.num_stages:
                raise ValueError(f"mix after missing stage {m.after_stage}")
            if m.after_stage in seen:
                raise ValueError(f"two mix units after stage {m.after_stage}")
            if len(self.stages[m.after_stage]) < 2:
                raise ValueError(f"mix after stage {m.after_stage} needs at least 2 branches")
            if m.granularity not in ("channel", "scalar"):
                raise ValueError(f"unknown mix granularity {m.granularity!r}")
            seen.add(m.after_stage)
        return self

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "arch": self.arch,
            "stages": [[{"parent": b.parent, "width": b.width} for b in st] for st in self.stages],
            "tasks": dict(self.tasks),
            "mix": [{"after_stage": m.after_stage, "granularity": m.granularity} for m in self.mix],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Topology":
        try:
            if d.get("format", FORMAT) != FORMAT:
                raise ValueError(f"not a topology (format {d.get('format')!r})")
            topo = cls(
                arch=str(d["arch"]),
                stages=[[Branch(int(b["parent"]), int(b["width"])) for b in st] for st in d["stages"]],
                tasks={str(k): int(v) for k, v in d["tasks"].items()},
                mix=[Mix(int(m["after_stage"]), m.get("granularity", "channel")) for m in d.get("mix", [])],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed topology: missing or bad field {exc}") from None
        return topo.validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        from attrnet.core.fileio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Topology":
        from attrnet.core.fileio import read_json

        path = Path(path)
        doc = read_json(path, "topology file")
        try:
            return cls.from_dict(doc)
        except ValueError as exc:
            raise InputError(str(exc), path) from None


# ---------------------------------------------------------------- constructors

def shared(arch: str, widths: Sequence[int], attributes: Sequence[str]) -> Topology:
    """One branch per stage: a plain shared trunk with all heads on it."""
    return split(arch, widths, {"all": list(attributes)}, len(widths))


def split(arch: str, widths: Sequence[int], groups: dict[str, list[str]], split_stage: int) -> Topology:
    """Shared trunk for stages < `split_stage`, then one branch per group."""
    k = len(groups)
    if not 0 <= split_stage <= len(widths):
        raise ValueError(f"split stage {split_stage} outside 0..{len(widths)}")
    if split_stage == len(widths) and k > 1:
        raise ValueError("splitting after the last stage leaves no branch per group")
    stages = []
    for s, w in enumerate(widths):
        if s < split_stage:
            stages.append([Branch(0, w)])
        elif s == split_stage:
            stages.append([Branch(0, w) for _ in range(k)])
        else:
            stages.append([Branch(b, w) for b in range(k)])
    tasks = {a: (g if split_stage < len(widths) else 0) for g, members in enumerate(groups.values()) for a in members}
    return Topology(arch, stages, tasks).validate()


def independent(arch: str, widths: Sequence[int], groups: dict[str, list[str]]) -> Topology:
    """One full column per group (use one group per attribute for fully independent)."""
    return split(arch, widths, groups, 0)


def cross_stitch(
    arch: str,
    widths: Sequence[int],
    groups: dict[str, list[str]],
    mix_after: Sequence[int] | None = None,
    granularity: Granularity = "channel",
) -> Topology:
    """K columns (one per group) with a cross-stitch unit after the chosen stages
    (default: every stage but the last; `attrnet.methods.cross_stitch` chooses them by --stitch-at)."""
    topo = independent(arch, widths, groups)
    if mix_after is None:
        mix_after = range(len(widths) - 1)
    topo.mix = [Mix(s, granularity) for s in mix_after]
    return topo.validate()


# ---------------------------------------------------------------- edits (FAFS widening)

def canonical(labels: Sequence[int]) -> list[int]:
    """Relabel groups in order of first appearance (0, 1, ...)."""
    seen: dict[int, int] = {}
    return [seen.setdefault(int(x), len(seen)) for x in labels]


def units_above(topology: Topology, stage: int, branch: int) -> list[list[str]]:
    """The task sets of the units above branch `branch` of `stage` (one attribute each at the last stage,
    else one set per child branch in stage s+1), in unit order."""
    leaves = topology.leaf_groups()
    if stage == topology.num_stages - 1:
        return [[name] for name in leaves[branch]]
    units = []
    for child, br in enumerate(topology.stages[stage + 1]):
        if br.parent == branch:
            units.append([name for leaf, names in enumerate(leaves)
                          if topology.ancestry(leaf)[stage + 1] == child for name in names])
    return units


def split_topology(topology: Topology, stage: int, branch: int,
                   labels: Sequence[int]) -> tuple[Topology, list[list[int]]]:
    """Split branch `branch` of `stage` into one copy per group of the units above it.

    `labels[u]` is the group of unit u (see `units_above`). Returns the new
    topology and, per stage, the old branch each new branch copies.
    """
    if topology.mix:
        raise ValueError("FAFS widening does not apply to topologies with cross-stitch units")
    if not 0 <= stage < topology.num_stages or not 0 <= branch < len(topology.stages[stage]):
        raise ValueError(f"no branch {branch} at stage {stage}")
    n_units = len(units_above(topology, stage, branch))
    labels = canonical(labels)
    if len(labels) != n_units:
        raise ValueError(f"{len(labels)} labels for {n_units} units above stage {stage} branch {branch}")
    d = len(set(labels))
    shift = d - 1

    def renumber(old: int) -> int:
        return old + shift if old > branch else old

    stages = [list(st) for st in topology.stages]
    old_stage = topology.stages[stage]
    width = old_stage[branch].width
    stages[stage] = (old_stage[:branch] + [Branch(old_stage[branch].parent, width) for _ in range(d)]
                     + old_stage[branch + 1:])
    sources = [list(range(len(st))) for st in topology.stages]
    sources[stage] = list(range(branch)) + [branch] * d + list(range(branch + 1, len(old_stage)))
    tasks = dict(topology.tasks)
    if stage == topology.num_stages - 1:
        names = topology.leaf_groups()[branch]
        for name, leaf in topology.tasks.items():
            tasks[name] = branch + labels[names.index(name)] if leaf == branch else renumber(leaf)
    else:
        u = 0
        above = []
        for br in topology.stages[stage + 1]:
            if br.parent == branch:
                above.append(Branch(branch + labels[u], br.width))
                u += 1
            else:
                above.append(Branch(renumber(br.parent), br.width))
        stages[stage + 1] = above
    new = Topology(topology.arch, stages, tasks, list(topology.mix)).validate()
    return new, sources
