"""`attrnet train`: multi-task training with any method and loss weighting."""
from __future__ import annotations

import inspect
from typing import Annotated, Any, Optional

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, metric, permit_outside_paths, print_json, result

__all__ = ["train"]


def _method_option(flag: str, help_text: str) -> Any:
    """An option of one method (`--method`), listed under "Method options" in --help."""
    return typer.Option(flag, help=help_text, rich_help_panel="Method options")


def train(
    ctx: typer.Context = None,  # type: ignore[assignment]  # typer passes it; None when called from Python
    *,
    data: Annotated[str, typer.Option("--data", help="Dataset FORMAT:PATH (celeba, market, duke, deepfashion, "
                                                     "folder).")],
    out: Annotated[str, typer.Option("--out", help="Run directory (best/last checkpoints, metrics.jsonl, "
                                                   "config.json).")],
    arch: Annotated[Optional[str], typer.Option("--arch", help="tiny | vgg16 | vgg16-thin | resnet18 | resnet50 "
                                                               "(default: tiny).")] = None,
    method: Annotated[str, typer.Option("--method", help="shared | independent | fafs | cross-stitch.")] = "shared",
    weighting: Annotated[str, typer.Option("--weighting", help="equal | awmt | uncertainty | dwa.")] = "equal",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step (per process under torchrun).")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (after warm-up).")] = 1e-3,
    img_size: Annotated[Optional[str], typer.Option("--img-size", help="Input size S or HxW (default: 64, or the "
                                                                       "preset's).")] = None,
    preset: Annotated[Optional[str], typer.Option("--preset", help="celeba | market | duke: the paper's input size, "
                                                                   "threshold objective and best metric.")] = None,
    topology: Annotated[Optional[str], typer.Option("--topology", help="Train this topology plan (JSON) instead of "
                                                                       "the method's.")] = None,
    init_from: Annotated[Optional[str], typer.Option("--init-from", help="Start from a checkpoint's weights "
                                                                         "(replicated into every branch).")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="Backbone weights: a file (torchvision "
                                                                           "state dict) or 'imagenet'.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT with its saved "
                                                                   "settings (config.json, last.safetensors); an "
                                                                   "option that would change it is refused.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (data order, augmentation, init).")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader worker processes.")] = 2,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's "
                                                                     "choice).")] = None,
    threshold_objective: Annotated[Optional[str], typer.Option("--threshold-objective", help="accuracy | balanced "
                                                                                             "(default: "
                                                                                             "accuracy).")] = None,
    pos_weight: Annotated[str, typer.Option("--pos-weight", help="none | ratio | deepmar positive-class "
                                                                 "weighting.")] = "none",
    best_metric: Annotated[Optional[str], typer.Option("--best-metric", help="mean_accuracy | mA | instance_f1 | "
                                                                             "val_loss (default: "
                                                                             "mean_accuracy).")] = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="adamw | sgd (momentum 0.9, Nesterov).")] = "adamw",
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help="[default: 0.01 adamw, 5e-4 "
                                                                                 "sgd].")] = None,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs", help="Linear warm-up length before the cosine "
                                                                         "decay.")] = 1.0,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Horizontal flip and small random "
                                                                         "crops.")] = True,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on GPU (bf16 where supported, else "
                                                             "fp16).")] = True,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    val_every: Annotated[Optional[int], typer.Option("--val-every", help="Also validate every N steps (on "
                                                                         "--val-batches batches) for the method's "
                                                                         "after_validation.")] = None,
    val_batches: Annotated[int, typer.Option("--val-batches", help="Batches per --val-every validation.")] = 20,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Hold out this fraction of train for "
                                                                       "validation when the dataset has no val split "
                                                                       "(0: none).")] = 0.1,
    max_bad_fraction: Annotated[float, typer.Option("--max-bad-fraction", help="Unreadable images are skipped; stop "
                                                                               "when more than this fraction of an "
                                                                               "epoch's images are.")] = 0.01,
    awmt_k: Annotated[int, typer.Option("--awmt-k", help="AWMT: update the weights every k steps from two k-step "
                                                         "windows.")] = 100,
    awmt_val_batch: Annotated[Optional[int], typer.Option("--awmt-val-batch", help="AWMT: validation images per step "
                                                                                   "(default: --batch-size).")] = None,
    log_every: Annotated[int, typer.Option("--log-every", help="Progress line every N steps.")] = 50,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help=ALLOW_OUTSIDE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")] = False,
    somp_from: Annotated[Optional[str], _method_option("--somp-from", "FAFS: wide network to thin by SOMP.")] = None,
    alpha: Annotated[Optional[float], _method_option("--alpha", "FAFS: weight of the separation cost.")] = None,
    branch_cost: Annotated[Optional[float], _method_option("--branch-cost",
                                                           "FAFS: L0, cost of one more branch.")] = None,
    max_stall: Annotated[Optional[int], _method_option("--max-stall", "FAFS: widen a layer every N steps "
                                                       "(default 1000; small runs need fewer).")] = None,
    widen_on: Annotated[Optional[str], _method_option("--widen-on", "FAFS: step | stall (val loss stalled "
                                                                    "N steps).")] = None,
    max_branches: Annotated[Optional[int], _method_option("--max-branches", "FAFS: most branches per layer.")] = None,
    affinity: Annotated[Optional[str], _method_option("--affinity", "FAFS: loss | error.")] = None,
    columns: Annotated[Optional[str], _method_option("--columns",
                                                     "independent/cross-stitch: groups.json or per-attribute.")] = None,
    alpha_granularity: Annotated[Optional[str], _method_option("--alpha-granularity",
                                                               "cross-stitch: channel | scalar.")] = None,
    alpha_lr_mult: Annotated[Optional[float], _method_option("--alpha-lr-mult", "cross-stitch: alpha lr "
                                                             "multiplier (default 1 adamw, 100 sgd).")] = None,
    stitch_at: Annotated[Optional[str], _method_option("--stitch-at", "cross-stitch: pools | all.")] = None,
    column_pretrain_epochs: Annotated[Optional[int], _method_option("--column-pretrain-epochs",
                                                                    "cross-stitch: per-column pretraining epochs.")] = None,
) -> None:
    """Train a multi-task attribute model and write a run directory."""
    permit_outside_paths(allow_outside)
    from attrnet.core.input_spec import parse_img_size
    from attrnet.methods import train as train_with_method
    from attrnet.train.config import TrainConfig

    values = dict(
        arch=arch, method=method, weighting=weighting, epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
        preset=preset, topology=topology, init_from=init_from, pretrained=pretrained, resume=resume, device=device,
        seed=seed, workers=workers, threads=threads, threshold_objective=threshold_objective, pos_weight=pos_weight,
        best_metric=best_metric, optimizer=optimizer, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
        augment=augment, amp=amp, compile_=compile_, val_every=val_every, val_batches=val_batches,
        val_fraction=val_fraction, max_bad_fraction=max_bad_fraction, awmt_k=awmt_k, awmt_val_batch=awmt_val_batch,
        log_every=log_every, somp_from=somp_from, alpha=alpha, branch_cost=branch_cost, max_stall=max_stall,
        widen_on=widen_on, max_branches=max_branches, affinity=affinity, columns=columns,
        alpha_granularity=alpha_granularity, alpha_lr_mult=alpha_lr_mult, stitch_at=stitch_at,
        column_pretrain_epochs=column_pretrain_epochs)
    options = {name.rstrip("_"): value for name, value in values.items() if _given(ctx, name, value)}
    if "img_size" in options:
        options["img_size"] = parse_img_size(options["img_size"])
    summary = train_with_method(TrainConfig.from_options(data, out, **options))
    if as_json:
        print_json(summary)
        return
    tree = f" ({summary['arch']}, branches per stage {summary['branches']})" if "branches" in summary else ""
    result(f"done: {summary['epochs']} epochs; best {summary['best_metric']} {metric(summary['best'])} "
           f"(epoch {summary['best_epoch']}) -> {out}/best.safetensors{tree}")


def _given(ctx: typer.Context | None, name: str, value: Any) -> bool:
    """Whether the user gave the option `name`: on the command line (or its environment variable);
    called from Python, when `value` is not the default."""
    if ctx is None:
        return value != inspect.signature(train).parameters[name].default
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
