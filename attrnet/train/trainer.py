"""The training loop every method plugs into.

`Trainer(config, method).run()` builds the data pipeline (`splits`), the model
(`model_setup`: the method's topology, `--topology`, `--pretrained`,
`--init-from`), the loss weighting, optimiser and warm-up + cosine schedule
(`optim`), then trains with the method's hooks (`method`), validates every
epoch (`validation`: thresholds, metrics), picks the best epoch (`selection`)
and writes the run directory (`outputs`): `config.json`, `metrics.jsonl`,
`weights.jsonl`, `best.safetensors` (+ `best.json`), `last.safetensors`,
`topology.json` and the method's own outputs. `--resume` continues from
`last.safetensors` (`resume`) with the run's saved configuration
(`resume_config`). Under `torchrun` it runs DDP; only rank 0 writes.
`attrnet.methods.train(config)` builds the method and runs this.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from attrnet.core.device import resolve_device
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import default_thresholds
from attrnet.core.progress import info
from attrnet.core.topology import Topology
from attrnet.models.net import MultiTaskNet
from attrnet.train import distributed as dd
from attrnet.train.amp import Amp, LossForward
from attrnet.train.config import TrainConfig
from attrnet.train.data import EpochSampler, TrainView, batches_per_epoch, make_loader, skipped_rows
from attrnet.train.epoch import EpochStats, check_skipped, loss_problem, stop_non_finite, summary_line
from attrnet.train.host_memory import keep_freed_memory
from attrnet.train.losses import AttributeLoss, class_weights, positive_rates, prior_logits, task_means
from attrnet.train.method import Method, TrainContext
from attrnet.train.model_setup import init_head_bias, initial_topology, load_start_weights, new_model
from attrnet.train.optim import Schedule, build_optimizer
from attrnet.train.outputs import retire_best, run_metadata, save_best, save_last_epoch, write_config, write_logs
from attrnet.train.resume import continues_saved_run, read_resume_point
from attrnet.train.selection import BestTracker
from attrnet.train.splits import load_splits
from attrnet.train.state import restore_rng
from attrnet.train.validation import observe_val_batch, predict, score, val_batches
from attrnet.train.weighting import make_weighting, weights_record

__all__ = ["Trainer", "branches"]


def branches(topology: Topology) -> str:
    """Branches per stage, input side first: ``1-1-2-4``."""
    return "-".join(str(n) for n in topology.branch_counts())


class Trainer:
    """One training run; see the module docstring."""

    def __init__(self, config: TrainConfig, method: Method):
        self.config = config
        self.method = method
        self.out = Path(config.out)
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.dist = dd.init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.spec = InputSpec(config.img_size[0], config.img_size[1], config.resize)  # type: ignore[arg-type]
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.weight_log: list[dict[str, Any]] = []
        self.thresholds: list[float | None] = []
        self.context: TrainContext  # model, optimiser and step live here (`setup`)

    @property
    def model(self) -> MultiTaskNet:
        return self.context.model

    @property
    def step(self) -> int:
        return self.context.step

    def log(self, message: str) -> None:
        if self.dist.is_main:
            info(message)

    # ------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Seed, load the splits, build model, loss, weighting and optimiser (or resume them); write config.json.

        On ``--resume`` of a run with a ``config.json``, a configuration that would change
        that run is refused (`attrnet.train.resume_config`) and the file is kept.
        """
        cfg = self.config
        resuming_saved_run = continues_saved_run(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self._load_data()
        self._build_model()
        self.weighting = make_weighting(cfg.weighting, len(self.schema.attributes), awmt_k=cfg.awmt_k)
        self.weighting.to(self.device)
        self.amp = Amp.for_device(self.device, cfg.amp)
        self.forward = LossForward(self.spec, self._build_loss(), self.amp)
        self._start_or_resume()
        self.schedule = Schedule.for_run(cfg.epochs, self.steps_per_epoch, cfg.warmup_epochs)
        if self.dist.is_main and not resuming_saved_run:  # a resumed run keeps its config.json
            write_config(self.out, cfg)

    def _load_data(self) -> None:
        cfg = self.config
        splits = load_splits(cfg, self.spec, self.log)
        self.schema, self.train_set, self.val_set = splits.schema, splits.train, splits.val
        self.best = BestTracker.for_run(cfg.best_metric, self.val_set is not None)
        self.train_view = TrainView(self.train_set, cfg.seed, cfg.augment, cfg.crop_fraction)
        self.steps_per_epoch, self.drop_last = batches_per_epoch(len(self.train_set), cfg.batch_size, self.dist.world)
        self.train_sampler = EpochSampler(len(self.train_set), cfg.seed, self.dist.rank, self.dist.world)
        self.label_rates = positive_rates(torch.from_numpy(self.train_set.labels), self.schema)

    def _build_model(self) -> None:
        cfg = self.config
        model = new_model(initial_topology(self.method, cfg, self.schema), self.schema, self.device, cfg.topology)
        self.context = TrainContext(model=model, train_set=self.train_set, spec=self.spec, device=self.device,
                                    seed=cfg.seed, batch_size=cfg.batch_size, lr=cfg.lr, augment=cfg.augment,
                                    crop_fraction=cfg.crop_fraction, workers=cfg.workers, log=self.log,
                                    optimizer_name=cfg.optimizer)
        self.method.attach(self.context)

    def _build_loss(self) -> AttributeLoss:
        pw = nw = None
        if self.config.pos_weight != "none":
            pw, nw = class_weights(self.label_rates, self.config.pos_weight)
        return AttributeLoss(self.schema, pw, nw).to(self.device)

    def _build_optimizer(self) -> None:
        """A new optimiser around the current model (and a new DDP / compile wrapper)."""
        groups = self.method.param_groups(self.model, self.config.lr)
        self.optimizer = build_optimizer(groups, self.weighting.parameters(), self.config)
        self.context.optimizer = self.optimizer
        self.forward_model = self._wrap_model()

    def _wrap_model(self) -> torch.nn.Module:
        model: torch.nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.config.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        return model

    def _start_or_resume(self) -> None:
        """``--resume`` from ``last.safetensors`` when there is one; else start weights, the method's init, optimiser."""
        last = self.out / "last.safetensors"
        if self.config.resume and last.exists():
            self._resume(last)
            return
        if self.config.resume:
            self.log(f"--resume: no {last}, starting a new run")
        init_head_bias(self.model, prior_logits(self.label_rates, self.schema, self.config.pos_weight))
        load_start_weights(self.model, self.config, self.log)
        self.method.init_model(self.context)
        self._build_optimizer()

    def _resume(self, path: Path) -> None:
        """Continue from `path` (`attrnet.train.resume`): model, method, weighting, optimiser, RNG, counters, logs."""
        point = read_resume_point(path, self.schema.columns)
        self.context.model = new_model(point.topology, self.schema, self.device, self.config.topology)
        self.model.load_state_dict(point.model)
        self.method.load_state_dict(point.method)
        self.weighting.load_state_dict(point.weighting)
        self._build_optimizer()
        self.optimizer.load_state_dict(point.optimizer)
        restore_rng(point.rng)
        self.epoch, self.context.step = point.epoch, point.step
        self.best.value, self.best.epoch, self.best.tree = point.best, point.best_epoch, point.tree
        self.thresholds, self.history, self.weight_log = point.thresholds, point.history, point.weight_log
        self.log(f"resumed from {path} at epoch {self.epoch}, step {self.step}")

    def replace_model(self, model: MultiTaskNet) -> None:
        """Continue training with `model` (a method widened it): new optimiser around it, and a new tree whose
        best is chosen afresh (`attrnet.train.selection`); the ended tree's best is kept under its own name."""
        self.context.model = model.to(self.device)
        self._build_optimizer()
        ended = self.best.new_tree()
        kept = retire_best(self.out, ended) if self.dist.is_main else None
        self.log(f"tree {self.best.tree}: {model.topology.arch}, branches per stage "
                 f"{branches(model.topology)}" + (f" (the best of tree {ended} is kept as {kept.name})" if kept else ""))

    # ------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training split; the epoch's training statistics."""
        self.model.train()
        loader = self._epoch_loader(epoch)
        val_iter = self._awmt_batches(epoch) if self.weighting.needs_val_batch else None
        stats = EpochStats.start(len(self.schema.attributes), self.device)
        for x, y in loader:
            stats.skipped += skipped_rows(y)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            lr = self._train_step(x, y, stats, epoch)
            if val_iter is not None:
                self._observe_val(next(val_iter))
            self.context.step += 1
            stats.count(x.shape[0])
            self._after_step(stats, epoch, lr)
        return self._end_epoch(stats, epoch)

    def _epoch_loader(self, epoch: int) -> torch.utils.data.DataLoader:
        self.train_view.epoch = epoch
        self.train_sampler.epoch = epoch
        return make_loader(self.train_view, self.config.batch_size, self.train_sampler, self.config.workers,
                           drop_last=self.drop_last, pin=self.device.type == "cuda")

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, stats: EpochStats, epoch: int) -> float:
        """Forward, loss, one optimiser step, the method's `after_step` (which may replace the model);
        returns the learning rate used."""
        lr = self.schedule.apply(self.optimizer, self.step)
        logits, losses, mask = self.forward(self.forward_model, x, y)
        tl, present = task_means(losses, mask)
        loss = self.weighting.combine(tl, present)
        self._check_loss(loss, epoch, stats.steps)
        self.optimizer.zero_grad(set_to_none=True)
        self.amp.scaler.scale(loss).backward()
        dd.average_gradients(self.weighting.parameters(), self.dist)
        self.amp.scaler.step(self.optimizer)
        self.amp.scaler.update()
        stats.add_losses(tl, present, loss)
        new = self.method.after_step(self.step, losses.detach(), mask, logits.detach(), y)
        if new is not None:
            self.replace_model(new)
        return lr

    def _check_loss(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """Never step on a NaN/Inf loss; every rank learns of any rank's (one small sync per step)."""
        problem = loss_problem(dd.per_rank(loss.detach(), self.dist).tolist())
        if problem is not None:
            stop_non_finite(problem, epoch, step, self.out / "last.safetensors")

    def _after_step(self, stats: EpochStats, epoch: int, lr: float) -> None:
        cfg = self.config
        if cfg.val_every and self.step % cfg.val_every == 0:
            self._mid_validation()
        if self.step % cfg.log_every == 0:
            self.log(f"epoch {epoch + 1}/{cfg.epochs} step {stats.steps}/{self.steps_per_epoch} "
                     f"loss {stats.mean_loss():.4f} lr {lr:.2e} {stats.window_rate(self.dist.world):.1f} img/s")

    def _end_epoch(self, stats: EpochStats, epoch: int) -> dict[str, Any]:
        elapsed = stats.elapsed()
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            stop_non_finite("the weights are no longer finite", epoch, stats.steps, self.out / "last.safetensors")
        counts = torch.tensor([stats.skipped, stats.seen], device=self.device)
        skipped, seen = dd.sum_across(counts, self.dist).tolist()  # summed first, so every rank decides alike
        check_skipped(skipped, seen, epoch, self.config.max_bad_fraction, self.log)
        if self.weighting.end_epoch(dd.mean_across(stats.task_means(), self.dist).cpu()):
            self._log_weights()
        return {"train_loss": float(dd.mean_across(stats.loss_sum / max(stats.steps, 1), self.dist)),
                "images_per_s": stats.seen * self.dist.world / max(elapsed, 1e-9), "train_time_s": elapsed,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def _awmt_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self.val_set is not None
        cfg = self.config
        return val_batches(self.val_set, batch_size=cfg.awmt_val_batch or cfg.batch_size, steps=self.steps_per_epoch,
                           seed=cfg.seed, epoch=epoch, workers=cfg.workers, d=self.dist)

    def _observe_val(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        if observe_val_batch(batch, self.model, self.forward, self.weighting, self.device, self.dist):
            self._log_weights()

    def _log_weights(self) -> None:
        self.weight_log.append(weights_record(self.weighting, self.step, self.schema.names))
        w = self.weighting.weights()
        self.log(f"{self.weighting.name} weights at step {self.step}: min {w.min():.3f} max {w.max():.3f}")

    # ------------------------------------------------------------ validation
    def _predict_val(self, max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        assert self.val_set is not None
        return predict(self.model, self.val_set, self.forward, batch_size=self.config.batch_size,
                       workers=self.config.workers, device=self.device, max_batches=max_batches)

    def _mid_validation(self) -> None:
        if self.val_set is None:
            return
        _, _, val_loss = self._predict_val(self.config.val_batches)
        self._after_validation(val_loss)

    def _after_validation(self, val_loss: float) -> None:
        new = self.method.after_validation(self.step, val_loss, self.model)
        if new is not None:
            self.replace_model(new)

    def validate(self) -> tuple[dict[str, Any], float | None]:
        """Thresholds and metrics on the validation split (empty without one)."""
        if self.val_set is None:
            self.thresholds = default_thresholds(self.schema)
            return {}, None
        probs, labels, val_loss = self._predict_val()
        self.thresholds, metrics = score(probs, labels, self.schema, self.config.threshold_objective)
        metrics["val_loss"] = val_loss
        return metrics, val_loss

    # ------------------------------------------------------------ checkpoints
    def _metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return run_metadata(self.model, self.spec, self.thresholds, self.method.name, self.weighting, metrics,
                            self.config, self.epoch, self.step, self.best.tree)

    def _save_best(self, metrics: dict[str, Any], row: dict[str, Any]) -> None:
        """``best.safetensors`` when this epoch beats the best so far (`attrnet.train.selection`)."""
        if self.best.offer(self.epoch, row, metrics) and self.dist.is_main:
            save_best(self.out, self.model, self._metadata(metrics))

    def _save_last(self, metrics: dict[str, Any]) -> None:
        """The logs and ``last.safetensors``, with what ``--resume`` reads back (`attrnet.train.resume`)."""
        if not self.dist.is_main:
            return
        write_logs(self.out, self.history, self.weight_log)
        resume = {"epoch": self.epoch, "step": self.step, "best": self.best.value, "best_epoch": self.best.epoch,
                  "tree": self.best.tree}
        save_last_epoch(self.out, model=self.model, optimizer=self.optimizer, weighting=self.weighting,
                        method_state=self.method.state_dict(), metadata=self._metadata(metrics), resume=resume)

    # ------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Train to the configured number of epochs; returns the final summary."""
        self.setup()
        self.log(self._start_line())
        if not self.weight_log and self.step == 0:
            self.weight_log.append(weights_record(self.weighting, 0, self.schema.names))
        try:
            while self.epoch < self.config.epochs:
                self._run_epoch()
            if self.dist.is_main:
                self.model.topology.save(self.out / "topology.json")
                self.method.finish(self.model, self.out)
            dd.barrier(self.dist)
        finally:
            dd.shutdown(self.dist)
        return self._summary()

    def _run_epoch(self) -> None:
        """Train, validate, log, checkpoint, and let the method act on the validation loss."""
        stats = self.train_epoch(self.epoch)
        self.epoch += 1
        metrics, val_loss = self.validate()
        row = {"epoch": self.epoch, "step": self.step, **stats}
        row.update({k: v for k, v in metrics.items() if k not in ("per_column_mA",)})
        row["loss_weights"] = [round(float(w), 6) for w in self.weighting.weights()]
        self.history.append(row)
        self.log(summary_line(row, self.config.epochs))
        self._save_best(metrics, row)
        # a model replaced after the last validation would be saved untrained and unvalidated
        if val_loss is not None and not self.config.val_every and self.epoch < self.config.epochs:
            self._after_validation(val_loss)
        self._save_last(metrics)

    def _start_line(self) -> str:
        cfg = self.config
        plan = f" (from {cfg.topology})" if cfg.topology else ""
        return (f"training {cfg.arch}: method {self.method.name}, weighting {self.weighting.name}, input "
                f"{self.spec.height}x{self.spec.width}, preset {cfg.preset or 'none'}, branches per stage "
                f"{branches(self.model.topology)}{plan}; {len(self.train_set)} images, {self.steps_per_epoch} "
                f"steps/epoch x {cfg.epochs} epochs, device {self.device}"
                + (f", {self.dist.world} processes" if self.dist.enabled else ""))

    def _summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"out": str(self.out), "epochs": self.epoch, "steps": self.step, "best_epoch": self.best.epoch,
                "best": self.best.value, "best_metric": self.best.metric, "arch": self.model.topology.arch,
                "branches": branches(self.model.topology), "tree": self.best.tree,
                "final": {k: last.get(k) for k in ("train_loss", "val_loss", "mean_accuracy", "mA",
                                                   "instance_f1", "images_per_s")}}
