"""The training loop every method plugs into.

`Trainer(config).run()` builds the data pipeline, the model (from the
method's topology, `--topology`, `--pretrained`, `--init-from`), the loss
weighting, optimiser and warm-up + cosine schedule, then trains with the
method's hooks, validates every epoch (thresholds, metrics), and writes the
run directory: `config.json`, `metrics.jsonl`, `weights.jsonl`,
`best.safetensors` (+ `best.json`), `last.safetensors`, `topology.json` and
the method's own outputs. Under `torchrun` it runs DDP; only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attrnet.train.checkpoint import model_metadata, save_model, write_json_copy
from attrnet.core.progress import info
from attrnet.data.base import AttributeDataset
from attrnet.core.device import resolve_device
from attrnet.core.errors import AttrnetError, InputError
from attrnet.core.fileio import atomic_write_text
from attrnet.core.input_spec import InputSpec
from attrnet.train.method import Method
from attrnet.train.weighting import Weighting, make_weighting, weights_record
from attrnet.core.model_card import ModelCard, default_thresholds, probabilities
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Topology
from attrnet.train import distributed as dd
from attrnet.train.config import TrainConfig
from attrnet.train.data import EpochSampler, EvalView, Resize, TrainView, make_loader, normalise, skipped_rows
from attrnet.train.host_memory import keep_freed_memory
from attrnet.train.losses import AttributeLoss, class_weights, positive_rates, task_means
from attrnet.train.metrics import compute_metrics
from attrnet.train.thresholds import choose_thresholds

LOWER_IS_BETTER = {"val_loss", "train_loss"}


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def hold_out(dataset: AttributeDataset, fraction: float, seed: int) -> tuple[AttributeDataset, AttributeDataset]:
    """Split a seeded random `fraction` of a dataset off as its validation part."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_val = max(1, int(round(len(dataset) * fraction)))
    parts = []
    for name, idx in (("train", np.sort(order[n_val:])), ("val", np.sort(order[:n_val]))):
        parts.append(AttributeDataset(dataset.schema, dataset.format, name, dataset.root,
                                      [dataset.paths[i] for i in idx], dataset.labels[idx], dataset.transform))
    return parts[0], parts[1]


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
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.weight_log: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.thresholds: list[float | None] = []
        self.model: MultiTaskNet
        self.weighting: Weighting

    # ------------------------------------------------------------ set-up
    def log(self, message: str) -> None:
        if self.dist.is_main:
            info(message)

    def _load_data(self) -> None:
        from attrnet.data import load_index

        cfg = self.config
        index = load_index(cfg.data)
        self.schema = index.schema
        resize = Resize(self.spec)
        self.train_set = index.subset("train", resize)
        if len(self.train_set) == 0:
            raise InputError("the dataset has no training images", cfg.data)
        val = index.subset("val", resize)
        self.val_set = val if len(val) else None
        if self.val_set is None and cfg.val_fraction > 0 and len(self.train_set) >= 10:
            self.train_set, self.val_set = hold_out(self.train_set, cfg.val_fraction, cfg.seed)
            self.log(f"no validation split: holding out {len(self.val_set)} training images for validation")
        if self.val_set is None:
            self.log("no validation split: thresholds stay 0.5, best checkpoint by training loss")
        if cfg.weighting == "awmt" and self.val_set is None:
            raise InputError("--weighting awmt needs a validation split", cfg.data)
        self.train_view = TrainView(self.train_set, cfg.seed, cfg.augment, cfg.crop_fraction)
        bs = cfg.batch_size
        n = len(self.train_set)
        self.drop_last = n >= bs * self.dist.world
        per_rank = -(-n // self.dist.world)
        self.steps_per_epoch = per_rank // bs if self.drop_last else -(-per_rank // bs)
        self.train_sampler = EpochSampler(n, cfg.seed, self.dist.rank, self.dist.world)

    def _build_model(self) -> None:
        cfg = self.config
        topology = self.method.initial_topology(cfg.arch, self.schema)
        if cfg.topology:
            topology = Topology.load(cfg.topology)
            try:
                topology.validate(self.schema.names)
            except ValueError as exc:
                raise InputError(str(exc), cfg.topology) from None
        self.topology = topology
        self.model = self._new_model(topology)

    def _new_model(self, topology: Topology) -> MultiTaskNet:
        try:
            return MultiTaskNet(topology, self.schema).to(self.device)
        except ValueError as exc:
            raise InputError(f"cannot build {topology.arch} model: {exc}", self.config.topology) from None

    def _initialise_weights(self) -> None:
        cfg = self.config
        if cfg.pretrained:
            from attrnet.models.pretrained import load_pretrained

            n = load_pretrained(self.model, cfg.pretrained)
            self.log(f"loaded {n} pretrained tensors from {cfg.pretrained}")
        if cfg.init_from:
            self._init_from(cfg.init_from)
        self.method.init_model(self.model, self)

    def _init_from(self, path: str) -> None:
        from attrnet.train.checkpoint import load_checkpoint
        from attrnet.models.columns import replicate_into_columns

        tensors, meta = load_checkpoint(path)
        source = ModelCard.from_metadata(meta, path).topology
        try:
            if source is None:
                raise ValueError("the checkpoint has no topology")
            untouched = replicate_into_columns(self.model, tensors, source)
        except ValueError as exc:
            raise InputError(f"--init-from does not fit this model: {exc}", path) from None
        self.log(f"initialised from {path} ({len(untouched)} tensors kept their own init)")

    def _build_loss(self) -> None:
        labels = torch.from_numpy(self.train_set.labels)
        pw = nw = None
        if self.config.pos_weight != "none":
            pw, nw = class_weights(positive_rates(labels, self.schema), self.config.pos_weight)
        self.loss_fn = AttributeLoss(self.schema, pw, nw).to(self.device)

    def _build_optimizer(self) -> None:
        cfg = self.config
        groups = self.method.param_groups(self.model, cfg.lr)
        for g in groups:
            g.setdefault("weight_decay", cfg.decay)
        extra = self.weighting.parameters()
        if extra:
            groups.append({"params": extra, "lr": cfg.lr, "weight_decay": 0.0, "name": "weighting"})
        for g in groups:
            g["base_lr"] = g["lr"]
        if cfg.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        else:
            self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        self._wrap_model()

    def _wrap_model(self) -> None:
        model: torch.nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DDP(self.model, device_ids=ids)
        if self.config.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.forward_model = model

    def _amp(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.config.amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def setup(self) -> None:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self._load_data()
        self._build_model()
        self.weighting = make_weighting(cfg.weighting, len(self.schema.attributes), awmt_k=cfg.awmt_k)
        self.weighting.to(self.device)
        self._build_loss()
        self.amp_dtype = torch.bfloat16 if (self.device.type == "cuda" and torch.cuda.is_bf16_supported()) \
            else torch.float16
        use_scaler = self.device.type == "cuda" and cfg.amp and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        last = self.out / "last.safetensors"
        if cfg.resume and last.exists():
            self._resume(last)
        else:
            if cfg.resume:
                self.log(f"--resume: no {last}, starting a new run")
            self._initialise_weights()
            self._build_optimizer()
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = total
        self.warmup_steps = min(int(cfg.warmup_epochs * self.steps_per_epoch), total // 2)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    # ------------------------------------------------------------ resume
    def _resume(self, path: Path) -> None:
        from attrnet.train.state import load_last, optimizer_from_tensors, restore_rng

        sections, meta = load_last(path)
        res = meta.get("resume")
        if not isinstance(res, dict):
            raise InputError("not a resumable checkpoint (no resume state)", path)
        if meta["schema"]["columns"] != self.schema.columns:
            raise InputError("the checkpoint was trained on different attributes than --data has", path)
        self.topology = Topology.from_dict(meta["topology"])
        self.model = self._new_model(self.topology)
        self.model.load_state_dict(sections["model"])
        self.method.load_state_dict(sections["method"])
        self.weighting.load_state_dict(sections["weighting"])
        self._build_optimizer()
        self.optimizer.load_state_dict(optimizer_from_tensors(sections["optim"], res["optimizer"]))
        restore_rng(sections["rng"])
        self.epoch, self.step = int(res["epoch"]), int(res["step"])
        self.best, self.best_epoch = res.get("best"), res.get("best_epoch")
        self.thresholds = meta.get("thresholds") or []
        self.history = [h for h in self._read_jsonl("metrics.jsonl") if h.get("epoch", 0) <= self.epoch]
        self.weight_log = [w for w in self._read_jsonl("weights.jsonl") if w.get("step", 0) <= self.step]
        self.log(f"resumed from {path} at epoch {self.epoch}, step {self.step}")

    def _read_jsonl(self, name: str) -> list[dict[str, Any]]:
        p = self.out / name
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    # ------------------------------------------------------------ model swap (FAFS widening)
    def replace_model(self, model: MultiTaskNet) -> None:
        """Continue training with `model` (a method widened it): new optimiser around it."""
        self.model = model.to(self.device)
        self.topology = model.topology
        self._build_optimizer()
        self.log("model replaced by the method:\n" + self.topology.sharing_report())

    # ------------------------------------------------------------ steps
    def _set_lr(self) -> float:
        f = lr_factor(self.step, self.total_steps, self.warmup_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return self.optimizer.param_groups[0]["lr"]

    def _forward_losses(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self._amp():
            logits = model(normalise(x, self.spec))
        losses, mask = self.loss_fn(logits.float(), y)
        return logits, losses, mask

    def _val_batches(self, epoch: int) -> Any:
        """An iterator of validation batches for AWMT (one per training step)."""
        assert self.val_set is not None
        vb = self.config.awmt_val_batch or self.config.batch_size
        sampler = EpochSampler(len(self.val_set), self.config.seed, self.dist.rank, self.dist.world,
                               length=self.steps_per_epoch * vb * self.dist.world, stream=1)
        sampler.epoch = epoch
        return iter(make_loader(EvalView(self.val_set), vb, sampler, self.config.workers))

    def _awmt_observe(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        self.model.eval()
        with torch.no_grad():
            _, losses, mask = self._forward_losses(self.model, x, y)
        self.model.train()
        tl, present = task_means(losses, mask)
        tl = dd.mean_across(torch.where(present, tl, torch.full_like(tl, float("nan"))), self.dist)
        if self.weighting.observe_val(tl):
            self._log_weights()

    def _stop_non_finite(self, what: str, epoch: int, step: int) -> None:
        """Stop before anything non-finite is optimised further or saved; the last checkpoint stays."""
        last = self.out / "last.safetensors"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written"
        raise AttrnetError(f"{what} at epoch {epoch + 1} step {step + 1}; stopping ({kept}). "
                           "Lower --lr, or check the data for broken labels")

    def _check_skipped(self, skipped: int, seen: int, epoch: int) -> None:
        """Unreadable images are skipped; too many of them stop the run (last checkpoint kept)."""
        if not skipped:
            return
        fraction = skipped / max(seen, 1)
        self.log(f"epoch {epoch + 1}: skipped {skipped} of {seen} images (unreadable, or no label at all)")
        if fraction > self.config.max_bad_fraction:
            raise AttrnetError(f"{skipped} of {seen} training images ({fraction:.1%}) could not be used in epoch "
                               f"{epoch + 1}, more than --max-bad-fraction {self.config.max_bad_fraction:g}; "
                               "the messages above name them")

    def _log_weights(self) -> None:
        rec = weights_record(self.weighting, self.step, self.schema.names)
        self.weight_log.append(rec)
        w = self.weighting.weights()
        self.log(f"{self.weighting.name} weights at step {self.step}: min {w.min():.3f} max {w.max():.3f}")

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.config
        self.model.train()
        self.train_view.epoch = epoch
        self.train_sampler.epoch = epoch
        loader = make_loader(self.train_view, cfg.batch_size, self.train_sampler, cfg.workers,
                             drop_last=self.drop_last, pin=self.device.type == "cuda")
        val_iter = self._val_batches(epoch) if self.weighting.needs_val_batch else None
        a = len(self.schema.attributes)
        task_sum = torch.zeros(a, device=self.device)
        task_cnt = torch.zeros(a, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        seen, t0, n_steps, skipped = 0, time.perf_counter(), 0, 0
        window_t, window_seen = t0, 0
        for x, y in loader:
            skipped += skipped_rows(y)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            lr = self._set_lr()
            logits, losses, mask = self._forward_losses(self.forward_model, x, y)
            tl, present = task_means(losses, mask)
            loss = self.weighting.combine(tl, present)
            if not torch.isfinite(loss):  # one scalar sync per step: never step on a NaN/Inf loss
                self._stop_non_finite(f"the training loss is {float(loss.detach())}", epoch, n_steps)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            dd.average_gradients(self.weighting.parameters(), self.dist)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            task_sum += tl.detach() * present
            task_cnt += present
            loss_sum += loss.detach()
            self.method.after_step(self.step, losses.detach(), mask, logits.detach(), y)
            if val_iter is not None:
                self._awmt_observe(next(val_iter))
            self.step += 1
            n_steps += 1
            seen += x.shape[0]
            window_seen += x.shape[0]
            if cfg.val_every and self.step % cfg.val_every == 0:
                self._mid_validation()
            if self.step % cfg.log_every == 0:
                now = time.perf_counter()
                self.log(f"epoch {epoch + 1}/{cfg.epochs} step {n_steps}/{self.steps_per_epoch} "
                         f"loss {float(loss_sum) / n_steps:.4f} lr {lr:.2e} "
                         f"{window_seen * self.dist.world / max(now - window_t, 1e-9):.1f} img/s")
                window_t, window_seen = now, 0
        elapsed = time.perf_counter() - t0
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self._stop_non_finite("the weights are no longer finite", epoch, n_steps)
        self._check_skipped(skipped, seen, epoch)
        train_tasks = dd.mean_across(task_sum / task_cnt.clamp(min=1), self.dist)
        if self.weighting.end_epoch(train_tasks.cpu()):
            self._log_weights()
        return {"train_loss": float(dd.mean_across(loss_sum / max(n_steps, 1), self.dist)),
                "images_per_s": seen * self.dist.world / max(elapsed, 1e-9), "train_time_s": elapsed,
                "lr": self.optimizer.param_groups[0]["lr"]}

    # ------------------------------------------------------------ validation
    @torch.no_grad()
    def predict_val(self, max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Probabilities, labels and the equally weighted mean task loss on the validation split."""
        assert self.val_set is not None
        self.model.eval()
        loader = make_loader(EvalView(self.val_set), self.config.batch_size,
                             EpochSampler(len(self.val_set), 0, shuffle=False), self.config.workers)
        probs, labels = [], []
        a = len(self.schema.attributes)
        task_sum = torch.zeros(a, device=self.device, dtype=torch.float64)
        task_cnt = torch.zeros(a, device=self.device, dtype=torch.float64)
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(self.device), y.to(self.device)
            logits, losses, mask = self._forward_losses(self.model, x, y)
            task_sum += losses.sum(0).double()
            task_cnt += mask.sum(0).double()
            probs.append(probabilities(logits.float(), self.schema).cpu().numpy())
            labels.append(y.cpu().numpy())
        self.model.train()
        present = task_cnt > 0
        val_loss = float((task_sum[present] / task_cnt[present]).mean()) if present.any() else float("nan")
        return np.concatenate(probs), np.concatenate(labels), val_loss

    def _mid_validation(self) -> None:
        if self.val_set is None:
            return
        _, _, val_loss = self.predict_val(self.config.val_batches)
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
        probs, labels, val_loss = self.predict_val()
        self.thresholds = choose_thresholds(probs, labels, self.schema, self.config.threshold_objective)
        metrics = compute_metrics(probs, labels, self.schema, self.thresholds)
        metrics["val_loss"] = val_loss
        return metrics, val_loss

    # ------------------------------------------------------------ checkpoints
    def metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        return model_metadata(
            self.model, self.spec.to_dict(), thresholds=self.thresholds, method=self.method.name,
            weighting=self.weighting.name, metrics=metrics,
            train={"epoch": self.epoch, "step": self.step, "seed": cfg.seed, "data": cfg.data,
                   "weighting": self.weighting.describe(), "method_options": cfg.method_options,
                   "threshold_objective": cfg.threshold_objective, "best_metric": cfg.best_metric})

    def _is_better(self, value: float | None, key: str) -> bool:
        if value is None or not math.isfinite(value):
            return self.best is None
        if self.best is None:
            return True
        return value < self.best if key in LOWER_IS_BETTER else value > self.best

    def _save_best(self, metrics: dict[str, Any], row: dict[str, Any]) -> None:
        key = self.config.best_metric if self.val_set is not None else "train_loss"
        value = row.get(key) if key in row else metrics.get(key)
        if not self._is_better(value, key):
            return
        self.best, self.best_epoch = value, self.epoch
        if self.dist.is_main:
            meta = self.metadata(metrics)
            save_model(self.out / "best.safetensors", self.model, meta)
            write_json_copy(self.out / "best.safetensors", meta)

    def _save_last(self, metrics: dict[str, Any]) -> None:
        from attrnet.train.state import save_last

        if not self.dist.is_main:
            return
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in self.history))
        atomic_write_text(self.out / "weights.jsonl", "".join(json.dumps(w) + "\n" for w in self.weight_log))
        resume = {"epoch": self.epoch, "step": self.step, "best": self.best, "best_epoch": self.best_epoch}
        save_last(self.out / "last.safetensors", model=self.model, optimizer=self.optimizer,
                  weighting_state=self.weighting.state_dict(), method_state=self.method.state_dict(),
                  metadata=self.metadata(metrics), resume=resume)

    # ------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Train to the configured number of epochs; returns the final summary."""
        cfg = self.config
        self.setup()
        self.log(f"training {cfg.arch} ({self.method.name}, {self.weighting.name}) on {len(self.train_set)} images, "
                 f"{self.steps_per_epoch} steps/epoch x {cfg.epochs} epochs, device {self.device}"
                 + (f", {self.dist.world} processes" if self.dist.enabled else ""))
        if not self.weight_log and self.step == 0:
            self.weight_log.append(weights_record(self.weighting, 0, self.schema.names))
        try:
            while self.epoch < cfg.epochs:
                stats = self.train_epoch(self.epoch)
                self.epoch += 1
                metrics, val_loss = self.validate()
                row = {"epoch": self.epoch, "step": self.step, **stats}
                row.update({k: v for k, v in metrics.items() if k not in ("per_column_mA",)})
                row["loss_weights"] = [round(float(w), 6) for w in self.weighting.weights()]
                self.history.append(row)
                self.log(self._summary_line(row))
                self._save_best(metrics, row)
                if val_loss is not None and not cfg.val_every:
                    self._after_validation(val_loss)
                self._save_last(metrics)
            if self.dist.is_main:
                self.topology.save(self.out / "topology.json")
                self.method.finish(self.model, self.out)
            dd.barrier(self.dist)
        finally:
            dd.shutdown(self.dist)
        last = self.history[-1] if self.history else {}
        return {"out": str(self.out), "epochs": self.epoch, "steps": self.step, "best_epoch": self.best_epoch,
                "best": self.best, "best_metric": cfg.best_metric if self.val_set is not None else "train_loss",
                "final": {k: last.get(k) for k in ("train_loss", "val_loss", "mean_accuracy", "mA",
                                                   "instance_f1", "images_per_s")}}

    def _summary_line(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']}/{self.config.epochs}", f"train_loss {row['train_loss']:.4f}"]
        for k in ("val_loss", "mean_accuracy", "mA", "instance_f1"):
            if row.get(k) is not None:
                parts.append(f"{k} {row[k]:.4f}")
        parts.append(f"{row['images_per_s']:.1f} img/s")
        return "  ".join(parts)
