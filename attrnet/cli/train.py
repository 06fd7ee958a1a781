"""`attrnet train`: multi-task training with any method and loss weighting."""
from __future__ import annotations

from typing import Any, Optional

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, info, permit_outside_paths, print_json

_METHOD = "Method options"


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: str = typer.Option(..., "--data", help="Dataset FORMAT:PATH (celeba, market, duke, deepfashion, folder)."),
        out: str = typer.Option(..., "--out", help="Run directory (best/last checkpoints, metrics.jsonl, config.json)."),
        arch: Optional[str] = typer.Option(None, "--arch", help="tiny | vgg16 | vgg16-thin | resnet18 | resnet50 (default: tiny)."),
        method: str = typer.Option("shared", "--method", help="shared | independent | fafs | cross-stitch."),
        weighting: str = typer.Option("equal", "--weighting", help="equal | awmt | uncertainty | dwa."),
        epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
        batch_size: int = typer.Option(32, "--batch-size", help="Images per step (per process under torchrun)."),
        lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (after warm-up)."),
        img_size: Optional[str] = typer.Option(None, "--img-size", help="Input size S or HxW (default: 64, or the preset's)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="celeba | market | duke: the paper's input size, threshold objective and best metric."),
        topology: Optional[str] = typer.Option(None, "--topology", help="Train this topology plan (JSON) instead of the method's."),
        init_from: Optional[str] = typer.Option(None, "--init-from", help="Start from a checkpoint's weights (replicated into every branch)."),
        pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Backbone weights: a file (torchvision state dict) or 'imagenet'."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.safetensors."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        seed: int = typer.Option(0, "--seed", help="Random seed (data order, augmentation, init)."),
        workers: int = typer.Option(2, "--workers", help="DataLoader worker processes."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
        threshold_objective: Optional[str] = typer.Option(None, "--threshold-objective", help="accuracy | balanced (default: accuracy)."),
        pos_weight: str = typer.Option("none", "--pos-weight", help="none | ratio | deepmar positive-class weighting."),
        best_metric: Optional[str] = typer.Option(None, "--best-metric", help="mean_accuracy | mA | instance_f1 | val_loss (default: mean_accuracy)."),
        optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | sgd (momentum 0.9, Nesterov)."),
        weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="[default: 0.01 adamw, 5e-4 sgd]."),
        warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear warm-up length before the cosine decay."),
        augment: bool = typer.Option(True, "--augment/--no-augment", help="Horizontal flip and small random crops."),
        amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision on GPU (bf16 where supported, else fp16)."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
        val_every: Optional[int] = typer.Option(None, "--val-every", help="Also validate every N steps (on --val-batches batches) for the method's after_validation."),
        val_batches: int = typer.Option(20, "--val-batches", help="Batches per --val-every validation."),
        val_fraction: float = typer.Option(0.1, "--val-fraction", help="Hold out this fraction of train for validation when the dataset has no val split (0: none)."),
        max_bad_fraction: float = typer.Option(0.01, "--max-bad-fraction", help="Unreadable images are skipped; stop when more than this fraction of an epoch's images are."),
        awmt_k: int = typer.Option(100, "--awmt-k", help="AWMT: update the weights every k steps from two k-step windows."),
        awmt_val_batch: Optional[int] = typer.Option(None, "--awmt-val-batch", help="AWMT: validation images per step (default: --batch-size)."),
        log_every: int = typer.Option(50, "--log-every", help="Progress line every N steps."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help=ALLOW_OUTSIDE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
        somp_from: Optional[str] = typer.Option(None, "--somp-from", help="FAFS: wide network to thin by SOMP.", rich_help_panel=_METHOD),
        alpha: Optional[float] = typer.Option(None, "--alpha", help="FAFS: weight of the separation cost.", rich_help_panel=_METHOD),
        branch_cost: Optional[float] = typer.Option(None, "--branch-cost", help="FAFS: L0, cost of one more branch.", rich_help_panel=_METHOD),
        max_stall: Optional[int] = typer.Option(None, "--max-stall", help="FAFS: steps without val improvement before widening.", rich_help_panel=_METHOD),
        max_branches: Optional[int] = typer.Option(None, "--max-branches", help="FAFS: most branches per layer.", rich_help_panel=_METHOD),
        affinity: Optional[str] = typer.Option(None, "--affinity", help="FAFS: loss | error.", rich_help_panel=_METHOD),
        columns: Optional[str] = typer.Option(None, "--columns", help="independent/cross-stitch: groups.json or per-attribute.", rich_help_panel=_METHOD),
        alpha_granularity: Optional[str] = typer.Option(None, "--alpha-granularity", help="cross-stitch: channel | scalar.", rich_help_panel=_METHOD),
        alpha_lr_mult: Optional[float] = typer.Option(None, "--alpha-lr-mult", help="cross-stitch: alpha learning-rate multiplier.", rich_help_panel=_METHOD),
        column_pretrain_epochs: Optional[int] = typer.Option(None, "--column-pretrain-epochs", help="cross-stitch: per-column pretraining epochs.", rich_help_panel=_METHOD),
    ) -> None:
        """Train a multi-task attribute model and write a run directory."""
        permit_outside_paths(allow_outside)
        from attrnet.core.input_spec import parse_img_size
        from attrnet.train.config import TrainConfig, apply_preset
        from attrnet.methods import train as train_with_method

        explicit: dict[str, Any] = {"img_size": parse_img_size(img_size) if img_size else None,
                                    "threshold_objective": threshold_objective, "best_metric": best_metric}
        preset_values = apply_preset(preset, explicit) if preset else {}
        chosen = {k: (preset_values.get(k, v)) for k, v in explicit.items()}
        options = {"somp_from": somp_from, "alpha": alpha, "branch_cost": branch_cost, "max_stall": max_stall,
                   "max_branches": max_branches, "affinity": affinity, "columns": columns,
                   "alpha_granularity": alpha_granularity, "alpha_lr_mult": alpha_lr_mult,
                   "column_pretrain_epochs": column_pretrain_epochs}
        cfg = TrainConfig(
            data=data, out=out, arch=arch or _topology_arch(topology) or "tiny", method=method,
            weighting=weighting, epochs=epochs, batch_size=batch_size, lr=lr,
            img_size=chosen["img_size"] or (64, 64), optimizer=optimizer, weight_decay=weight_decay,
            warmup_epochs=warmup_epochs, augment=augment, seed=seed, workers=workers, threads=threads, device=device, amp=amp,
            compile=compile_, threshold_objective=chosen["threshold_objective"] or "accuracy",
            best_metric=chosen["best_metric"] or "mean_accuracy", pos_weight=pos_weight, topology=topology,
            init_from=init_from, pretrained=pretrained, resume=resume, val_every=val_every,
            val_batches=val_batches, val_fraction=val_fraction, max_bad_fraction=max_bad_fraction, awmt_k=awmt_k, awmt_val_batch=awmt_val_batch, log_every=log_every,
            preset=preset, method_options=options)
        _check_arch(cfg.arch, topology)
        summary = train_with_method(cfg)
        if as_json:
            print_json(summary)
        else:
            info(f"done: {summary['epochs']} epochs; best {summary['best_metric']} {summary['best']} "
                 f"(epoch {summary['best_epoch']}) -> {out}/best.safetensors")


def _topology_arch(path: str | None) -> str | None:
    if not path:
        return None
    from attrnet.core.topology import Topology

    return Topology.load(path).arch


def _check_arch(arch: str, topology: str | None) -> None:
    from attrnet.core.errors import InputError
    from attrnet.models.backbones import ARCHS

    if arch not in ARCHS:
        raise InputError(f"unknown arch {arch!r} (choose from {', '.join(ARCHS)})")
    plan_arch = _topology_arch(topology)
    if plan_arch is not None and plan_arch != arch:
        raise InputError(f"the topology is for {plan_arch}, --arch says {arch}", topology)
