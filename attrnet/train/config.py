"""Training configuration: every option of `attrnet train`, with the paper presets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from attrnet.core.errors import InputError
from attrnet.core.topology import Topology
from attrnet.train.resume_config import RUNTIME_OPTIONS, differences, read_saved_config, refuse

__all__ = ["BEST_METRICS", "METHOD_OPTION_KEYS", "OPTIMIZERS", "PRESETS", "TrainConfig", "apply_preset"]

OPTIMIZERS = ("adamw", "sgd")
BEST_METRICS = ("mean_accuracy", "mA", "instance_f1", "val_loss")
METHOD_OPTION_KEYS = ("somp_from", "alpha", "branch_cost", "max_stall", "widen_on", "max_branches", "affinity",
                      "columns", "alpha_granularity", "alpha_lr_mult", "stitch_at", "column_pretrain_epochs")

# Each paper's setting by name: input size, threshold objective, model-selection metric.
PRESETS: dict[str, dict[str, Any]] = {
    # CelebA aligned crops are 178x218 (WxH); the usual headline is mean accuracy.
    "celeba": {"img_size": (218, 178), "threshold_objective": "accuracy", "best_metric": "mean_accuracy"},
    # Market-1501 / DukeMTMC attributes: pedestrians at 256x128, judged by label-based mA.
    "market": {"img_size": (256, 128), "threshold_objective": "balanced", "best_metric": "mA"},
    "duke": {"img_size": (256, 128), "threshold_objective": "balanced", "best_metric": "mA"},
}


@dataclass
class TrainConfig:
    """What `attrnet train` was asked to do (saved as config.json)."""

    data: str
    out: str
    arch: str = "tiny"
    method: str = "shared"
    weighting: str = "equal"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    img_size: tuple[int, int] = (64, 64)
    resize: str = "stretch"
    optimizer: str = "adamw"
    weight_decay: float | None = None  # adamw 0.01, sgd 5e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    augment: bool = True
    crop_fraction: float = 0.0625  # random crop after padding by this fraction of each side
    seed: int = 0
    workers: int = 2
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    threshold_objective: str = "accuracy"
    best_metric: str = "mean_accuracy"
    pos_weight: str = "none"
    topology: str | None = None
    init_from: str | None = None
    pretrained: str | None = None
    resume: bool = False
    val_every: int | None = None
    val_batches: int = 20
    val_fraction: float = 0.1  # held out of train when the dataset has no val split
    max_bad_fraction: float = 0.01  # stop when more of an epoch's images than this are unreadable
    awmt_k: int = 100
    awmt_val_batch: int | None = None
    log_every: int = 50
    preset: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.img_size = (int(self.img_size[0]), int(self.img_size[1]))
        self.check()

    def check(self) -> None:
        """Raise InputError for values no run can use."""
        from attrnet.models.backbones import ARCHS
        from attrnet.train.weighting import WEIGHTINGS
        from attrnet.train.losses import POS_WEIGHTS
        from attrnet.train.thresholds import OBJECTIVES

        def bad(flag: str, value: Any, allowed: Any = None) -> None:
            extra = f" (choose from {', '.join(allowed)})" if allowed else ""
            raise InputError(f"{flag}: invalid value {value!r}{extra}")

        if self.arch not in ARCHS:
            raise InputError(f"unknown arch {self.arch!r} (choose from {', '.join(ARCHS)})")
        if self.topology:
            plan_arch = Topology.load(self.topology).arch
            if plan_arch != self.arch:
                raise InputError(f"the topology is for {plan_arch}, --arch says {self.arch}", self.topology)
        if self.weighting not in WEIGHTINGS:
            bad("--weighting", self.weighting, WEIGHTINGS)
        if self.optimizer not in OPTIMIZERS:
            bad("--optimizer", self.optimizer, OPTIMIZERS)
        if self.pos_weight not in POS_WEIGHTS:
            bad("--pos-weight", self.pos_weight, POS_WEIGHTS)
        if self.threshold_objective not in OBJECTIVES:
            bad("--threshold-objective", self.threshold_objective, OBJECTIVES)
        if self.best_metric not in BEST_METRICS:
            bad("--best-metric", self.best_metric, BEST_METRICS)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            bad("--device", self.device, ("auto", "cpu", "cuda"))
        if self.resize not in ("stretch", "letterbox"):
            bad("--resize", self.resize, ("stretch", "letterbox"))
        for name in ("epochs", "batch_size", "awmt_k", "val_batches", "log_every"):
            if getattr(self, name) < 1:
                bad("--" + name.replace("_", "-"), getattr(self, name))
        if self.lr <= 0:
            bad("--lr", self.lr)
        if self.workers < 0:
            bad("--workers", self.workers)
        if self.threads is not None and self.threads < 1:
            bad("--threads", self.threads)
        if self.val_every is not None and self.val_every < 1:
            bad("--val-every", self.val_every)
        if not 0 <= self.val_fraction < 1:
            bad("--val-fraction", self.val_fraction)
        if not 0 <= self.max_bad_fraction <= 1:
            bad("--max-bad-fraction", self.max_bad_fraction)
        if self.warmup_epochs < 0:
            bad("--warmup-epochs", self.warmup_epochs)

    @property
    def decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.optimizer == "adamw" else 5e-4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["img_size"] = list(self.img_size)
        return d

    @classmethod
    def from_options(cls, data: str, out: str, **options: Any) -> "TrainConfig":
        """The configuration for options as a user gives them, None (or leaving one out) meaning "not given".

        An option not given takes its `preset`'s value where the preset sets one, else
        the default; `arch` defaults to the `topology` plan's arch. The method options
        (`METHOD_OPTION_KEYS`, e.g. ``columns=...``) go into `method_options`. With
        ``resume=True`` and a ``config.json`` in `out`, the run's saved configuration
        (`for_resume`).
        """
        if options.get("resume") and (Path(out) / "config.json").exists():
            return cls.for_resume(data, out, **options)
        method_options, given = _split_options(options)
        if given.get("preset"):
            given = {**apply_preset(given["preset"], given), **given}
        if "arch" not in given and given.get("topology"):
            given["arch"] = Topology.load(given["topology"]).arch
        return cls(data=data, out=out, method_options=method_options, **given)

    @classmethod
    def for_resume(cls, data: str, out: str, **options: Any) -> "TrainConfig":
        """The configuration saved in `out`/config.json, to continue that run (`attrnet.train.resume_config`).

        `options` are those the user gave (as for `from_options`): runtime options
        (`RUNTIME_OPTIONS`: device, workers, threads, ...) replace the saved ones; any
        other that differs from the saved value is refused with one InputError
        naming each such option and both values.
        """
        path = Path(out) / "config.json"
        run = cls.saved_in(out)
        if run is None:
            raise InputError("--resume: the run has no config.json", path)
        method_options, given = _split_options(options)
        method_options = {k: v for k, v in method_options.items() if v is not None}
        refuse(differences(run._comparable(), {**given, "data": data, "method_options": method_options}), path)
        runtime = {k: v for k, v in given.items() if k in RUNTIME_OPTIONS}
        return cls.from_dict({**run.to_dict(), **runtime, "data": data, "resume": True})

    @classmethod
    def saved_in(cls, out: str | Path) -> "TrainConfig | None":
        """The configuration saved in the run directory `out` (its config.json), None when there is none."""
        saved = read_saved_config(out)
        if saved is None:
            return None
        try:
            return cls.from_dict({**saved, "out": str(out)})
        except (TypeError, ValueError) as exc:
            raise InputError(f"not a run configuration ({exc})", Path(out) / "config.json") from None

    def changes_from(self, saved: "TrainConfig") -> list[str]:
        """``--flag (run: A, given: B)`` for each option of this configuration that would change the run `saved`."""
        mine, run = self._comparable(), saved._comparable()
        keys = sorted(set(mine["method_options"]) | set(run["method_options"]))
        mine["method_options"] = {k: mine["method_options"].get(k) for k in keys}
        return differences(run, mine)

    def _comparable(self) -> dict[str, Any]:
        """`to_dict` with the weight decay in effect and only the method options that are set."""
        return {**self.to_dict(), "weight_decay": self.decay,
                "method_options": {k: v for k, v in self.method_options.items() if v is not None}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method options, the other options without those not given (None))."""
    options = dict(options)
    method_options = dict(options.pop("method_options", None) or {})
    method_options.update({k: options.pop(k) for k in METHOD_OPTION_KEYS if k in options})
    return method_options, {k: v for k, v in options.items() if v is not None}


def apply_preset(name: str, explicit: dict[str, Any]) -> dict[str, Any]:
    """Preset values for the options the user did not give explicitly."""
    try:
        values = PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
    return {k: v for k, v in values.items() if explicit.get(k) is None}
