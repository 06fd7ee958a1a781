"""Training-step speed of one configuration, on in-memory tensors (no data loading), for the benchmark suite.

One step is what `attrnet.train.Trainer` does per batch: normalise, forward,
masked per-attribute losses, the weighting's combination, backward, AdamW
step (alphas of cross-stitch units at a higher learning rate), plus, for
AWMT, the no-grad forward of a validation batch. Run it as a subprocess so
peak memory is per configuration:

    python -m attrnet.bench.train_speed '{"method": "cross-stitch", "columns": "groups", ...}'

prints one JSON object: images_per_s, step_ms, params, and the config.
``"keep_freed_memory": false`` leaves glibc's malloc at its defaults (for the
side-by-side row of the suite; `attrnet train` always keeps freed memory on CPU).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

import torch

__all__ = ["build", "celeba_groups", "DEFAULTS", "main", "measure"]

DEFAULTS: dict[str, Any] = {"arch": "tiny", "method": "shared", "weighting": "equal", "columns": "groups",
                            "img_size": 64, "batch_size": 32, "steps": 5, "warmup": 1, "threads": None,
                            "device": "cpu", "keep_freed_memory": True}


def celeba_groups() -> dict[str, list[str]]:
    """The planted attribute groups of the synthetic CelebA data."""
    from attrnet.data.synth import faces as synth_faces
    from attrnet.data.synth.common import groups_of

    return groups_of(synth_faces.SPECS)


def build(cfg: dict[str, Any]):
    """(model, schema) for a config: shared trunk, or cross-stitch over groups / per-attribute columns."""
    from attrnet.core import topology as T
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.schema import complete_groups, preset

    schema = preset("celeba")
    widths = backbone(cfg["arch"]).widths
    if cfg["method"] == "shared":
        topo = T.shared(cfg["arch"], widths, schema.names)
    elif cfg["method"] == "cross-stitch":
        groups = ({a: [a] for a in schema.names} if cfg["columns"] == "per-attribute"
                  else complete_groups(celeba_groups(), schema))
        topo = T.cross_stitch(cfg["arch"], widths, groups)
    else:
        raise ValueError(f"unknown method {cfg['method']!r}")
    return MultiTaskNet(topo, schema), schema


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    from attrnet.core.input_spec import InputSpec
    from attrnet.train.weighting import make_weighting
    from attrnet.train.data import normalise
    from attrnet.train.losses import AttributeLoss, task_means

    cfg = {**DEFAULTS, **cfg}
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(0)
    dev = torch.device(cfg["device"])
    if dev.type == "cpu" and cfg["keep_freed_memory"]:
        from attrnet.train.host_memory import keep_freed_memory

        keep_freed_memory()  # as `attrnet train` does
    model, schema = build(cfg)
    model.to(dev).train()
    spec = InputSpec(cfg["img_size"], cfg["img_size"])
    loss_fn = AttributeLoss(schema).to(dev)
    weighting = make_weighting(cfg["weighting"], len(schema.attributes), awmt_k=10)
    if hasattr(weighting, "to"):
        weighting = weighting.to(dev)
    alphas = {id(p) for p in model.alpha_parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in alphas], "lr": 1e-3}]
    if alphas:
        groups.append({"params": model.alpha_parameters(), "lr": 1e-1})
    if weighting.parameters():
        groups.append({"params": weighting.parameters(), "lr": 1e-3})
    opt = torch.optim.AdamW(groups)
    b, s = cfg["batch_size"], cfg["img_size"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=gen).to(dev)
    y = torch.randint(0, 2, (b, schema.num_columns), generator=gen).float().to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step() -> None:
        losses, mask = loss_fn(model(normalise(x, spec)), y)
        tl, present = task_means(losses, mask)
        loss = weighting.combine(tl, present)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if weighting.needs_val_batch:
            model.eval()
            with torch.no_grad():
                vl, vm = loss_fn(model(normalise(x, spec)), y)
            model.train()
            weighting.observe_val(task_means(vl, vm)[0])

    for _ in range(cfg["warmup"]):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    sync()
    dt = time.perf_counter() - t0
    return {**cfg, "images_per_s": b * cfg["steps"] / dt, "step_ms": 1e3 * dt / cfg["steps"],
            "params": model.num_parameters(), "columns_k": model.topology.num_leaves,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None}


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0]) if argv else {}
    sys.stdout.write(json.dumps(measure(cfg)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
