"""Fully-adaptive feature sharing (Lu et al., CVPR 2017) as a training method.

Training starts from a thin one-branch network (``--arch vgg16-thin``),
initialised by SOMP from a wide VGG-16 (`somp_from`) or at random. Every
training step feeds the task affinity (hard/easy by loss, or by error).

A widening round splits the next layer down: the branches above the shared
trunk (first the attributes themselves) are grouped by spectral clustering on
the branch affinity, the number of groups minimising (d-1)·L0·2^{p_l} + α·L_s;
each group gets a copy of the trunk's top layer. When rounds run
(`widen_on`):

- ``step`` (default, the authors' code, luyongxi/deep_share): one round every
  `max_stall` training steps, unconditionally. After a d = 1 decision the same
  layer is tried again at the next round, at most `MAX_TRIES_PER_LAYER` times,
  then the next layer down is tried.
- ``stall``: a round when the validation loss has not improved for
  `max_stall` steps (checked at validation points); widening stops for good
  when d = 1 wins.

Widening ends when the input is reached. `finish` writes ``topology.json``,
``fafs_report.txt``, ``fafs.json`` and ``fafs_tree.png``.

Options (the trainer's ``--somp-from --alpha --branch-cost --max-stall
--widen-on --max-branches --affinity``): somp_from, alpha, branch_cost,
max_stall, widen_on, max_branches, affinity, seed.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrnet.core.errors import InputError
from attrnet.core.topology import units_above
from attrnet.methods.fafs.affinity import MODES, TaskAffinity, branch_affinity
from attrnet.train.method import Method, TrainContext
from attrnet.models.surgery import widen_model
from attrnet.methods.fafs.widening import (DEFAULT_ALPHA, DEFAULT_BRANCH_COST, DEFAULT_RESTARTS, branch_cost,
                                           choose_partition, pool_exponent)

__all__ = ["DEFAULT_MAX_STALL", "FAFSMethod", "MAX_TRIES_PER_LAYER", "save_branch_tree", "WIDEN_ON"]

if TYPE_CHECKING:
    import torch
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import Topology
    from attrnet.core.schema import Schema

DEFAULT_MAX_STALL = 1000  # the authors' CelebA runs (experiments/scripts/ccc_submit_branching.sh)
WIDEN_ON = ("step", "stall")
MAX_TRIES_PER_LAYER = 3  # d = 1 decisions at one layer before the next layer down is tried (step schedule)
# The authors cap the columns of a layer at floor(full VGG-16 width / thin width) (lib/models/factory.py).
_FULL_WIDTH_OF = {"vgg16-thin": "vgg16"}


def _say(message: str) -> None:
    sys.stderr.write(f"fafs: {message}\n")
    sys.stderr.flush()


class FAFSMethod(Method):
    """Options: somp_from, alpha, branch_cost, max_stall, widen_on ("step" | "stall"), max_branches,
    affinity ("loss" | "error"), seed."""

    name = "fafs"

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        o = self.options
        self.somp_from = o.get("somp_from") or None
        self.alpha = self._number("alpha", DEFAULT_ALPHA, minimum=0.0)
        self.unit_cost = self._number("branch_cost", DEFAULT_BRANCH_COST, minimum=0.0)
        self.max_stall = int(self._number("max_stall", DEFAULT_MAX_STALL, minimum=1))
        self.widen_on = str(o.get("widen_on") or "step")
        if self.widen_on not in WIDEN_ON:
            raise InputError(f"--widen-on takes {' or '.join(WIDEN_ON)}, got {self.widen_on!r}")
        mb = o.get("max_branches")
        self.max_branches = None if mb is None else int(self._number("max_branches", 0, minimum=1))
        self.mode = str(o.get("affinity") or "loss")
        if self.mode not in MODES:
            raise InputError(f"--affinity takes {' or '.join(MODES)}, got {self.mode!r}")
        self.seed = int(o.get("seed") or 0)
        self.schema: "Schema | None" = None
        self.affinity: TaskAffinity | None = None
        self.next_stage = -1          # the stage the next widening round splits
        self.done = False
        self.best_val = math.inf
        self.best_step = 0
        self.last_round_step = 0      # step schedule: steps done when the last round ran
        self.tries = 0                # step schedule: d = 1 decisions at `next_stage` so far
        self.context: TrainContext | None = None
        self.rounds: list[dict[str, Any]] = []
        self.init_note = "random init (no --somp-from)"

    def _number(self, key: str, default: float, minimum: float) -> float:
        raw = self.options.get(key)
        try:
            value = float(default if raw is None else raw)
        except (TypeError, ValueError):
            raise InputError(f"--{key.replace('_', '-')} takes a number, got {raw!r}") from None
        if not value >= minimum:
            raise InputError(f"--{key.replace('_', '-')} must be >= {minimum:g}, got {raw!r}")
        return value

    # ------------------------------------------------------------ topology and init
    def initial_topology(self, arch: str, schema: "Schema") -> "Topology":
        from attrnet.models.backbones import backbone
        from attrnet.core.topology import shared

        self.schema = schema
        self.affinity = TaskAffinity(len(schema.attributes), mode=self.mode)  # type: ignore[arg-type]
        widths = backbone(arch).widths
        self.next_stage = len(widths) - 1
        return shared(arch, widths, schema.names)

    def init_model(self, ctx: TrainContext) -> None:
        """SOMP from ``somp_from`` into ``ctx.model``, or keep its random init."""
        from attrnet.methods.fafs.somp import init_thin_model

        if self.somp_from is None:
            _say("thin network starts from random init (pass --somp-from to initialise it from a wide VGG-16)")
            return
        report = init_thin_model(ctx.model, self.somp_from)
        errs = [lay["reconstruction_error"] for lay in report["layers"]]
        self.init_note = (f"SOMP from {self.somp_from} (relative reconstruction error per layer: "
                          + ", ".join(f"{e:.3f}" for e in errs) + ")")
        _say(self.init_note)

    # ------------------------------------------------------------ hooks
    def attach(self, ctx: TrainContext) -> None:
        """Keep the run's context: the step schedule widens ``ctx.model``."""
        self.context = ctx

    def after_step(self, step: int, losses: "torch.Tensor", mask: "torch.Tensor",
                   logits: "torch.Tensor", labels: "torch.Tensor") -> "MultiTaskNet | None":
        """Feed the task affinity; on the step schedule, a widening round every `max_stall` steps."""
        if self.affinity is None or self.schema is None:
            raise RuntimeError("FAFSMethod.initial_topology must run before training")
        self.affinity.update_from_batch(losses, mask, logits, labels, self.schema)
        steps_done = step + 1
        if self.widen_on != "step" or self.done or steps_done - self.last_round_step < self.max_stall:
            return None
        if self.context is None:
            raise RuntimeError("FAFSMethod.attach must run before training (the step schedule widens ctx.model)")
        self.last_round_step = steps_done
        return self.widen(self.context.model, steps_done)

    def after_validation(self, step: int, val_loss: float, model: "MultiTaskNet") -> "MultiTaskNet | None":
        """On the stall schedule, a widening round when the validation loss stalled for `max_stall` steps."""
        if self.done or self.widen_on != "stall":
            return None
        if val_loss < self.best_val:
            self.best_val, self.best_step = float(val_loss), step
            return None
        if step - self.best_step < self.max_stall:
            return None
        self.best_val, self.best_step = float(val_loss), step
        return self.widen(model, step)

    def stage_cap(self, topology: "Topology", stage: int) -> int | None:
        """Most branches a stage may hold: --max-branches, else the authors' full-width ratio."""
        from attrnet.models.backbones import backbone

        if self.max_branches is not None:
            return self.max_branches
        full = _FULL_WIDTH_OF.get(topology.arch)
        if full is None:
            return None
        return max(1, backbone(full).widths[stage] // topology.widths()[stage])

    def widen(self, model: "MultiTaskNet", step: int = 0) -> "MultiTaskNet | None":
        """One widening round at `next_stage`; None when d = 1 wins (then the stall schedule stops widening,
        the step schedule tries the layer again, `MAX_TRIES_PER_LAYER` times, before the next one down)."""
        if self.affinity is None or self.schema is None:
            raise RuntimeError("FAFSMethod.initial_topology must run before widening")
        topo = model.topology
        trunk_top = next((s for s, st in enumerate(topo.stages) if len(st) > 1), topo.num_stages) - 1
        stage = min(self.next_stage, trunk_top)  # a --topology plan may start below the output layer
        if stage < 0 or self.done:
            self.done = True
            return None
        index = {name: i for i, name in enumerate(self.schema.names)}
        units = units_above(topo, stage, 0)
        a_task = self.affinity.matrix()
        ab = branch_affinity(a_task, [[index[n] for n in unit] for unit in units])
        cost = branch_cost(topo, stage, self.unit_cost)
        part = choose_partition(ab, cost, self.alpha, self.stage_cap(topo, stage), DEFAULT_RESTARTS, self.seed)
        groups = [[n for u, unit in enumerate(units) if part.labels[u] == g for n in unit] for g in range(part.d)]
        self.rounds.append({
            "step": step, "stage": stage, "pools_above": pool_exponent(topo, stage), "branch_cost": cost,
            "alpha": self.alpha, "units": len(units), "d": part.d,
            "loss": {str(d): round(v, 6) for d, v in part.losses.items()},
            "separation": {str(d): round(v, 6) for d, v in part.separation.items()},
            "groups": groups, "try": self.tries + 1,
        })
        if part.d == 1:
            _say(f"step {step}: stage {stage}: d = 1 wins (L = {part.losses[1]:.4f}); " + self._after_d1(stage))
            return None
        new = widen_model(model, stage, 0, part.labels)
        self._move_below(stage)
        _say(f"step {step}: widened stage {stage} into {part.d} branches: "
             + " | ".join(", ".join(g) for g in groups))
        return new

    def _after_d1(self, stage: int) -> str:
        """Where widening goes after d = 1 won at `stage`; what to log."""
        if self.widen_on == "stall":
            self.done = True
            return "widening stops"
        self.tries += 1
        if self.tries < MAX_TRIES_PER_LAYER:
            self.next_stage = stage
            return f"stage {stage} is tried again in {self.max_stall} steps (try {self.tries}/{MAX_TRIES_PER_LAYER})"
        self._move_below(stage)
        if self.done:
            return f"{MAX_TRIES_PER_LAYER} tries at stage {stage}; widening stops"
        return f"{MAX_TRIES_PER_LAYER} tries at stage {stage}; stage {stage - 1} is next"

    def _move_below(self, stage: int) -> None:
        """The next round splits the layer below `stage`, on its first try; done past the input."""
        self.next_stage, self.tries = stage - 1, 0
        self.done = self.next_stage < 0

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, "torch.Tensor"]:
        import torch

        if self.affinity is None:
            return {}
        state = self.affinity.state_dict("fafs.affinity.")
        state["fafs.scalars"] = torch.tensor([self.next_stage, float(self.done), self.best_val, self.best_step,
                                              self.last_round_step, self.tries], dtype=torch.float64)
        log = json.dumps({"rounds": self.rounds, "init": self.init_note}).encode("utf-8")
        state["fafs.log"] = torch.tensor(list(log), dtype=torch.uint8)
        return state

    def load_state_dict(self, state: dict[str, "torch.Tensor"]) -> None:
        if self.affinity is None:
            raise RuntimeError("FAFSMethod.initial_topology must run before load_state_dict")
        if "fafs.scalars" not in state:
            raise InputError("checkpoint has no FAFS state (was it trained with --method fafs?)")
        self.affinity.load_state_dict(state, "fafs.affinity.")
        scalars = state["fafs.scalars"].tolist()
        if len(scalars) == 4:  # a run started before the step schedule existed: it continues as it was started
            self.widen_on = "stall"
            scalars += [0.0, 0.0]
        next_stage, done, best_val, best_step, last_round_step, tries = scalars[:6]
        self.next_stage, self.done = int(next_stage), bool(done)
        self.best_val, self.best_step = float(best_val), int(best_step)
        self.last_round_step, self.tries = int(last_round_step), int(tries)
        log = json.loads(bytes(state["fafs.log"].tolist()).decode("utf-8"))
        self.rounds, self.init_note = log["rounds"], log["init"]

    # ------------------------------------------------------------ outputs
    def report(self, topology: "Topology") -> str:
        """Readable summary: initialisation, every widening round, and the final sharing per stage."""
        lines = [f"FAFS (fully-adaptive feature sharing), arch {topology.arch}",
                 f"initialisation: {self.init_note}",
                 f"affinity: hard = {'loss >= running mean loss' if self.mode == 'loss' else 'misclassified'}; "
                 f"alpha = {self.alpha:g}, L0 = {self.unit_cost:g}", f"schedule: {self.schedule()}", ""]
        for r in self.rounds:
            costs = ", ".join(f"d={d}: {v:.4f}" for d, v in r["loss"].items())
            tried = f" (try {r['try']})" if r.get("try", 1) > 1 else ""
            lines.append(f"step {r['step']}: stage {r['stage']}{tried} (p_l = {r['pools_above']}, cost per branch "
                         f"{r['branch_cost']:.4f}), {r['units']} units -> d = {r['d']}   [L: {costs}]")
            if r["d"] > 1:
                lines += [f"    branch {g}: {', '.join(names)}" for g, names in enumerate(r["groups"])]
        if not self.rounds:
            lines.append("no widening round ran (" + ("the run had fewer than max_stall steps; small runs need a "
                                                      "smaller --max-stall)" if self.widen_on == "step" else
                                                      "the validation loss never stalled for max_stall steps)"))
        lines += ["", "sharing per stage:", topology.sharing_report()]
        return "\n".join(lines) + "\n"

    def schedule(self) -> str:
        """The widening schedule in words (report and fafs.json)."""
        if self.widen_on == "step":
            return (f"widen on step: one round every max_stall = {self.max_stall} training steps; after d = 1 "
                    f"the layer is tried again, at most {MAX_TRIES_PER_LAYER} times, then the next layer down")
        return (f"widen on stall: a round when the validation loss has not improved for max_stall = "
                f"{self.max_stall} steps; widening stops when d = 1 wins")

    def finish(self, model: "MultiTaskNet", run_dir: Path) -> None:
        from attrnet.core.fileio import atomic_write_text

        run_dir = Path(run_dir)
        topo = model.topology
        topo.save(run_dir / "topology.json")
        atomic_write_text(run_dir / "fafs_report.txt", self.report(topo))
        doc = {"init": self.init_note, "affinity_mode": self.mode, "alpha": self.alpha, "branch_cost": self.unit_cost,
               "max_stall": self.max_stall, "widen_on": self.widen_on, "max_tries_per_layer": MAX_TRIES_PER_LAYER,
               "schedule": self.schedule(), "rounds": self.rounds, "branch_counts": topo.branch_counts(),
               "groups": topo.leaf_groups(),
               "task_affinity": {"attributes": list(self.schema.names) if self.schema else [],
                                 "matrix": [] if self.affinity is None
                                 else [[round(float(v), 5) for v in row] for row in self.affinity.matrix()]}}
        atomic_write_text(run_dir / "fafs.json", json.dumps(doc, indent=2) + "\n")
        save_branch_tree(topo, run_dir / "fafs_tree.png")


def save_branch_tree(topology: "Topology", path: str | Path) -> None:
    """PNG of the branch tree: stages left to right, attributes on the right (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attrnet.core.fileio import atomic_path

    leaves = topology.leaf_groups()
    paths = {leaf: topology.ancestry(leaf) for leaf in range(topology.num_leaves)}
    order = sorted(range(topology.num_leaves), key=lambda leaf: paths[leaf])
    names, leaf_of = [], []
    for leaf in order:
        names += leaves[leaf]
        leaf_of += [leaf] * len(leaves[leaf])
    n_stages = topology.num_stages
    ys: list[dict[int, float]] = [{} for _ in range(n_stages)]
    for s in range(n_stages):
        members: dict[int, list[float]] = {}
        for y, leaf in enumerate(leaf_of):
            members.setdefault(paths[leaf][s], []).append(float(y))
        ys[s] = {b: sum(v) / len(v) for b, v in members.items()}
    fig, ax = plt.subplots(figsize=(min(16.0, 3.0 + 0.6 * n_stages), max(3.0, 0.22 * len(names) + 1.0)))
    root = (len(names) - 1) / 2.0
    ax.plot([-1], [root], "s", color="0.3", ms=5)
    for s in range(n_stages):
        for b, y in ys[s].items():
            y0 = root if s == 0 else ys[s - 1][topology.stages[s][b].parent]
            ax.plot([s - 1, s], [y0, y], color="tab:blue", lw=1)
            ax.plot([s], [y], "o", color="tab:blue", ms=4)
    for y, (name, leaf) in enumerate(zip(names, leaf_of)):
        ax.plot([n_stages - 1, n_stages - 0.2], [ys[-1][leaf], y], color="0.6", lw=0.7)
        ax.text(n_stages - 0.15, y, name, va="center", fontsize=7)
    ax.set_xlim(-1.5, n_stages + 2.5)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xticks(range(-1, n_stages))
    ax.set_xticklabels(["input"] + [str(s) for s in range(n_stages)], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("stage")
    ax.set_title(f"FAFS branch tree ({topology.arch}; branches per stage {topology.branch_counts()})", fontsize=9)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
