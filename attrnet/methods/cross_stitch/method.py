"""Cross-stitch networks as a training method (Misra et al., CVPR 2016).

K columns of the backbone, one per attribute group (`columns`: a groups file
or "per-attribute"), cross-stitch units where `stitch_at` says (``all``, the
default: after every stage; ``pools``: at the end of every resolution level
and after every fc stage, as the paper stitches VGG after pool1, pool2, pool5,
fc6 and fc7; both include the features the heads read; `mix_after` lists the
stages exactly), channel or scalar alphas initialised to α_same = 0.9 and
(1-α_same)/(K-1) elsewhere, trained in their own optimiser group at
`alpha_lr_mult` times the base learning rate (default by the run's optimiser,
`ALPHA_LR_MULT`: the paper's ×100 suits SGD, whose step follows the gradient;
AdamW's step is about lr whatever the gradient, so ×100 would move every alpha
by about 100·lr per step; docs/cross_stitch.md has the measurement). Columns
start either from one checkpoint replicated into each column (the trainer's `--init-from`, via
`attrnet.models.cross_stitch.replicate_into_columns`) or, as the paper found
better, from per-column pretraining: `column_pretrain_epochs` epochs with the
units set to the identity, which trains every column on its own group only.
After training, `alphas.json` and `alphas.png` go into the run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrnet.core.errors import InputError
from attrnet.train.method import Method

if TYPE_CHECKING:
    from attrnet.train.method import TrainContext
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.topology import Topology
    from attrnet.core.schema import Schema

# The alpha learning-rate multiplier by --optimizer, chosen by benchmarks/cross_stitch_alpha_lr.py
# (table in docs/cross_stitch.md).
ALPHA_LR_MULT = {"sgd": 100.0, "adamw": 1.0}
DEFAULT_ALPHA_SAME = 0.9
STITCH_AT = ("pools", "all")
# pools did not beat all in a quick check (docs/cross_stitch.md); the planted benchmark decides
DEFAULT_STITCH_AT = "all"


class CrossStitchMethod(Method):
    """Options: columns, alpha_granularity, alpha_lr_mult, alpha_same, stitch_at, mix_after,
    column_pretrain_epochs."""

    name = "cross-stitch"

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        o = self.options
        self.columns = str(o.get("columns") or "per-attribute")
        self.granularity = str(o.get("alpha_granularity") or "channel")
        if self.granularity not in ("channel", "scalar"):
            raise InputError(f"--alpha-granularity takes channel or scalar, got {self.granularity!r}")
        given = o.get("alpha_lr_mult")
        self.given_lr_mult = None if given is None else float(given)
        if self.given_lr_mult is not None and not self.given_lr_mult > 0:
            raise InputError(f"--alpha-lr-mult must be positive, got {given}")
        self.optimizer_name = "adamw"  # the run's --optimizer, from `attach`
        same = o.get("alpha_same")
        self.alpha_same = DEFAULT_ALPHA_SAME if same is None else float(same)
        if not 0.0 <= self.alpha_same <= 1.0:
            raise InputError(f"alpha_same must lie in [0, 1], got {self.alpha_same}")
        mix_after = o.get("mix_after")
        self.mix_after = None if mix_after is None else [int(s) for s in mix_after]
        self.stitch_at = str(o.get("stitch_at") or DEFAULT_STITCH_AT)
        if self.stitch_at not in STITCH_AT:
            raise InputError(f"--stitch-at takes {' or '.join(STITCH_AT)}, got {self.stitch_at!r}")
        if self.mix_after is not None and o.get("stitch_at") is not None:
            raise InputError("give --stitch-at or mix_after, not both")
        self.pretrain_epochs = int(o.get("column_pretrain_epochs") or 0)
        if self.pretrain_epochs < 0:
            raise InputError(f"--column-pretrain-epochs must be >= 0, got {self.pretrain_epochs}")
        self.groups: dict[str, list[str]] = {}

    # ------------------------------------------------------------ topology
    def column_groups(self, schema: "Schema") -> dict[str, list[str]]:
        """One group per column: the groups file (completed with singletons) or one per attribute."""
        from attrnet.core.schema import complete_groups, read_groups

        if self.columns == "per-attribute":
            groups = {a: [a] for a in schema.names}
        else:
            groups = complete_groups(read_groups(self.columns, schema), schema)
        if len(groups) < 2:
            raise InputError("cross-stitch needs at least 2 columns (got 1 group)",
                             None if self.columns == "per-attribute" else self.columns)
        return groups

    def initial_topology(self, arch: str, schema: "Schema") -> "Topology":
        from attrnet.models.backbones import backbone
        from attrnet.core.topology import cross_stitch

        self.groups = self.column_groups(schema)
        spec = backbone(arch)
        widths = spec.widths
        if self.mix_after is not None:
            bad = [s for s in self.mix_after if not 0 <= s < len(widths)]
            if bad:
                raise InputError(f"mix_after: {arch} has stages 0..{len(widths) - 1}, got {bad}")
        at = self.mix_after
        if at is None:
            at = spec.resolution_ends() if self.stitch_at == "pools" else list(range(len(widths)))
        return cross_stitch(arch, widths, self.groups, at, self.granularity)  # type: ignore[arg-type]

    # ------------------------------------------------------------ alpha learning rate
    def attach(self, ctx: "TrainContext") -> None:
        """Note the run's optimiser: the default alpha learning-rate multiplier depends on it."""
        self.optimizer_name = ctx.optimizer_name

    @property
    def alpha_lr_mult(self) -> float:
        """--alpha-lr-mult when given, else `ALPHA_LR_MULT` for the run's optimiser."""
        if self.given_lr_mult is not None:
            return self.given_lr_mult
        return ALPHA_LR_MULT.get(self.optimizer_name, ALPHA_LR_MULT["adamw"])

    # ------------------------------------------------------------ training hooks
    def param_groups(self, model: "MultiTaskNet", lr: float) -> list[dict[str, Any]]:
        alphas = model.alpha_parameters()
        ids = {id(p) for p in alphas}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        return [
            {"params": rest, "lr": lr},
            {"params": alphas, "lr": lr * self.alpha_lr_mult, "weight_decay": 0.0, "name": "cross-stitch-alpha"},
        ]

    def init_model(self, ctx: "TrainContext") -> None:
        """Alphas to their initial values, after per-column pretraining when asked for."""
        from attrnet.models.columns import reset_alphas

        if self.pretrain_epochs:
            self.pretrain_columns(ctx)
        reset_alphas(ctx.model, self.alpha_same)

    def pretrain_columns(self, ctx: "TrainContext") -> None:
        """Train each column of ``ctx.model`` on its own group: units set to the identity and frozen meanwhile.

        Uses the run's training split, input spec, batch size, learning rate,
        augmentation and device (seed + 1: its own batch order).
        """
        from attrnet.methods.column_training import train_columns
        from attrnet.models.columns import reset_alphas
        from attrnet.train.data import EpochSampler, TrainView, make_loader, normalise

        model = ctx.model
        view = TrainView(ctx.train_set, ctx.seed + 1, ctx.augment, ctx.crop_fraction)
        sampler = EpochSampler(len(view), ctx.seed + 1)
        drop_last = len(view) > ctx.batch_size

        def batches():
            loader = make_loader(view, ctx.batch_size, sampler, ctx.workers, drop_last=drop_last)
            for x, y in loader:
                if x.shape[0] > 1:  # BatchNorm needs two samples
                    yield normalise(x.to(ctx.device), ctx.spec), y
            view.epoch += 1
            sampler.epoch += 1

        alphas = model.alpha_parameters()
        reset_alphas(model, 1.0)
        for a in alphas:
            a.requires_grad_(False)
        try:
            ctx.log(f"pretraining {model.topology.num_leaves} columns on their own groups "
                    f"for {self.pretrain_epochs} epoch(s)")
            train_columns(model, batches, self.pretrain_epochs, ctx.lr, ctx.device, ctx.log)
        finally:
            for a in alphas:
                a.requires_grad_(True)

    # ------------------------------------------------------------ outputs
    def column_names(self, model: "MultiTaskNet") -> list[str]:
        if self.groups and len(self.groups) == model.topology.num_leaves:
            return list(self.groups)
        return ["+".join(names) for names in model.topology.leaf_groups()]

    def finish(self, model: "MultiTaskNet", run_dir: Path) -> None:
        import json

        from attrnet.core.fileio import atomic_write_text
        from attrnet.methods.heatmap import save_heatmaps
        from attrnet.models.columns import alpha_summary

        summary = alpha_summary(model, self.column_names(model))
        summary["groups"] = dict(self.groups)
        summary["alpha_lr_mult"] = self.alpha_lr_mult
        summary["optimizer"] = self.optimizer_name
        summary["stitch_at"] = "mix_after" if self.mix_after is not None else self.stitch_at
        summary["alpha_same_init"] = self.alpha_same
        atomic_write_text(Path(run_dir) / "alphas.json", json.dumps(summary, indent=2) + "\n")
        cols = summary["columns"]
        panels = [(f"after stage {u['after_stage']} (mean over channels)" if u["granularity"] == "channel"
                   else f"after stage {u['after_stage']}", u["matrix"]) for u in summary["units"]]
        save_heatmaps(Path(run_dir) / "alphas.png", panels, cols, cols,
                      "cross-stitch alphas: row b reads column a with weight α_ba")
