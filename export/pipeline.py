"""`export_checkpoint`: checkpoint -> folded module -> ONNX (fp32/fp16/int8) -> engine / Triton.

Every option is validated by the library (`ExportOptions`, `export_checkpoint`), so Python callers
get the command line's one-line errors. Nothing is written before parity passes: a corrupt
checkpoint (InputError) or a parity failure (ParityError) leaves no output file behind
(docs/architecture.md, Exported models; docs/export.md).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, get_args

import numpy as np

from attrnet.core.errors import InputError, NotAvailableError
from attrnet.core.fileio import atomic_path, atomic_write_text, check_writable
from attrnet.core.input_spec import InputSpec, parse_img_size
from attrnet.core.model_card import default_thresholds
from attrnet.export import onnx_graph, ort_session, parity, quantize, trt_engine, triton
from attrnet.export.fold import FoldReport, MixRule, ModeRule, fold_model

__all__ = ["FOLD_MODES", "FORMATS", "INSTANCES", "MIX_RULES", "PRECISIONS", "ExportOptions", "calibration_images",
           "default_output", "default_timing_cache", "export_checkpoint", "fold_stats", "unfolded_ops"]

FORMATS = ("onnx", "engine", "triton")
PRECISIONS = ("fp32", "fp16", *quantize.INT8_PRECISIONS)
FOLD_MODES: tuple[str, ...] = get_args(ModeRule)
MIX_RULES: tuple[str, ...] = get_args(MixRule)
INSTANCES = ("gpu", "cpu")


@dataclass
class ExportOptions:
    """What `export_checkpoint` writes and how: the options of `attrnet export` (`mode` is --fold-mode).

    `batch` takes a `BatchProfile` or the command line's text (``"1:16:64"``; ``8`` means 1:8:8), `img_size` a
    (height, width) pair or ``"S"`` / ``"HxW"``; `workspace` is in bytes. Text is parsed here;
    `export_checkpoint` validates every field.
    """
    format: str = "onnx"
    precision: str = "fp32"
    trt: bool = False  # with format "triton": put a TensorRT plan in the repository
    data: str | None = None
    calib: Path | None = None
    batch: trt_engine.BatchProfile | str | int = trt_engine.DEFAULT_BATCH
    img_size: tuple[int, int] | str | None = None
    out: Path | None = None
    logits: bool = False
    mode: ModeRule = "measure"
    mix: MixRule = "flops"
    parity_images: int = 64
    calib_images: int = 128
    instance: str = "gpu"
    workspace: int = trt_engine.DEFAULT_WORKSPACE
    timing_cache: Path | None = None  # None: default_timing_cache(output)

    def __post_init__(self) -> None:
        if isinstance(self.batch, (str, int)):
            self.batch = trt_engine.parse_batch(str(self.batch))
        if isinstance(self.img_size, str):
            self.img_size = parse_img_size(self.img_size)


def default_output(checkpoint: Path, opts: ExportOptions) -> Path:
    """best.onnx, best.fp16.onnx, best.int8.onnx, best.<precision>.engine, <run>/triton."""
    stem, where = checkpoint.stem, checkpoint.parent
    if opts.format == "triton":
        return where / "triton"
    if opts.format == "engine":
        return where / f"{stem}.{opts.precision}.engine"
    return where / (f"{stem}.onnx" if opts.precision == "fp32" else f"{stem}.{opts.precision}.onnx")


def default_timing_cache(out: Path) -> Path:
    """The TensorRT timing cache of one export, ``<output>.timing.cache`` beside the engine (or beside the
    Triton repository folder): rebuilding that output reuses it, unrelated builds never share one."""
    return out.parent / f"{out.name}.timing.cache"


def _validate(opts: ExportOptions) -> None:
    """InputError (naming the command line's flag) for the first bad option; NotAvailableError when an
    engine is asked for and TensorRT is not installed."""
    _validate_choices(opts)
    if opts.parity_images < 1 or opts.workspace < 1:
        raise InputError("--parity-images and --workspace must be positive")
    if not isinstance(opts.batch, trt_engine.BatchProfile):
        raise InputError(f"--batch takes MIN:OPT:MAX or N, got {opts.batch!r}")
    if opts.img_size is not None:
        parse_img_size("x".join(str(n) for n in opts.img_size))  # the command line's range check and message
    if opts.precision in quantize.INT8_PRECISIONS and opts.calib is None and opts.data is None:
        raise InputError(f"--precision {opts.precision} needs calibration images: --calib DIR or --data SPEC")
    needs_trt = opts.format == "engine" or (opts.format == "triton" and opts.trt)
    if needs_trt and opts.precision == "int8-cpu":
        raise InputError("--precision int8-cpu is ONNX Runtime's CPU layout; TensorRT takes --precision int8")
    if opts.format == "triton" and opts.trt and opts.batch.min > 1:
        raise InputError(f"--format triton --trt needs --batch MIN 1: Triton sends the plan batches down to 1, "
                         f"below the profile's minimum {opts.batch.min}")
    if needs_trt and not trt_engine.available():
        raise NotAvailableError(trt_engine.NOT_INSTALLED)


def _validate_choices(opts: ExportOptions) -> None:
    if opts.format not in FORMATS:
        raise InputError(f"unknown --format {opts.format!r} (choose from {', '.join(FORMATS)})")
    if opts.precision not in PRECISIONS:
        raise InputError(f"unknown --precision {opts.precision!r} (choose from {', '.join(PRECISIONS)})")
    if opts.mode not in FOLD_MODES:
        raise InputError(f"unknown --fold-mode {opts.mode!r} (measure, flops, grouped or dense)")
    if opts.mix not in MIX_RULES:
        raise InputError(f"unknown --mix {opts.mix!r} (flops, fold or keep)")
    if opts.instance not in INSTANCES:
        raise InputError(f"unknown --instance {opts.instance!r} (gpu or cpu)")


def fold_stats(model: Any, folded: Any, graph: Any, spec: InputSpec, report: FoldReport) -> dict[str, Any]:
    """Ops (ONNX nodes), FLOPs and parameters before and after folding, and the choices."""
    import torch

    from attrnet.export.cost import count_flops

    ops_before = unfolded_ops(model, spec)
    ops_after = onnx_graph.op_counts(graph)
    return {
        "ops_before": sum(ops_before.values()) if ops_before else None,  # None: does not export unfolded
        "ops_after": sum(ops_after.values()),
        "ops_after_by_type": ops_after,
        "flops_before": count_flops(model, torch.zeros(1, 3, spec.height, spec.width)),
        "flops_after": count_flops(folded, torch.zeros(1, spec.height, spec.width, 3, dtype=torch.uint8)),
        "params_before": int(sum(p.numel() for p in model.parameters())),
        "params_after": int(sum(p.numel() for p in folded.parameters())),
        "choices": report.to_dict(),
    }


def unfolded_ops(model: Any, spec: InputSpec) -> dict[str, int] | None:
    """ONNX node counts of the trained model exported unfolded (same uint8 input and probs output)."""
    from attrnet.export.runtime import UnfoldedNet

    try:
        with _silenced_fds():
            graph = onnx_graph.trace_to_onnx(UnfoldedNet(copy.deepcopy(model), spec), spec.height, spec.width)
    except Exception:  # noqa: BLE001 - the count is informative only
        return None
    return onnx_graph.op_counts(graph)


@contextlib.contextmanager
def _silenced_fds() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null for the duration (the exporter's C++ logger writes
    the whole graph to stdout when it fails, which would corrupt --json output)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, copy_fd in zip((1, 2), saved):
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


def calibration_images(opts: ExportOptions, spec: InputSpec, warn: Callable[[str], None]) -> np.ndarray:
    """uint8 calibration images from --calib or the train split of --data (unreadable ones skipped)."""
    if opts.calib is not None:
        return quantize.load_image_folder(opts.calib, spec, opts.calib_images, warn)
    images, _ = parity.dataset_images(opts.data, spec, "train", opts.calib_images, "calibration", warn)
    return images


def export_checkpoint(checkpoint: str | Path, opts: ExportOptions,
                      log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Export `checkpoint` as `opts` say; returns a JSON-able summary (paths, folding, parity).

    The options are validated before the checkpoint is read; progress and the parity report go to `log`.
    """
    from attrnet.train.checkpoint import load_model

    checkpoint = Path(checkpoint)
    if opts.trt and opts.format == "onnx":  # --trt alone means an engine
        opts = dataclasses.replace(opts, format="engine")
    _validate(opts)
    model, meta = load_model(checkpoint)
    spec = InputSpec.from_dict(meta["input"])
    if opts.img_size is not None:
        spec = dataclasses.replace(spec, height=opts.img_size[0], width=opts.img_size[1])
    meta = {**meta, "input": spec.to_dict()}
    out = _output_path(checkpoint, opts)

    log(f"folding {checkpoint.name} ({meta.get('arch')}, {model.topology.branch_counts()} branches per stage)")
    folded, report = fold_model(model, spec, mode=opts.mode, mix=opts.mix, with_logits=opts.logits)
    log(report.summary())
    fp32_graph = onnx_graph.trace_to_onnx(folded, spec.height, spec.width)
    stats = fold_stats(model, folded, fp32_graph, spec, report)
    onnx_meta = onnx_graph.onnx_metadata(meta, onnx_graph.file_sha256(checkpoint),
                                         export={"precision": opts.precision, "opset": onnx_graph.OPSET})
    graph, cpu_disabled = _final_graph(fp32_graph, folded, spec, opts, onnx_meta["export"], log)
    onnx_graph.set_metadata(graph, onnx_meta)
    onnx_graph.check(graph)

    check = _parity_check(model, folded, graph, cpu_disabled, spec, meta, opts, log)
    written, rep = _write(out, graph, onnx_meta, opts, spec, model.schema.num_columns, check, log)
    for p in written:
        log(f"wrote {p}")
    return {"checkpoint": str(checkpoint), "format": opts.format, "precision": opts.precision,
            "outputs": [str(p) for p in written], "input": spec.to_dict(), "fold": stats, "parity": rep.to_dict()}


def _output_path(checkpoint: Path, opts: ExportOptions) -> Path:
    """Where the export goes; InputError when --out does not suit the format (checked before folding)."""
    out = Path(opts.out) if opts.out is not None else default_output(checkpoint, opts)
    if opts.format != "triton" and out.is_dir():
        raise InputError("--out is a folder; give the output file's path", out)
    if opts.format == "triton" and out.exists() and not out.is_dir():
        raise InputError("--out must name the Triton repository folder, not a file", out)
    check_writable(out / "config.pbtxt" if opts.format == "triton" else out)
    return out


def _final_graph(fp32_graph: Any, folded: Any, spec: InputSpec, opts: ExportOptions, export_meta: dict[str, Any],
                 log: Callable[[str], None]) -> tuple[Any, list[str]]:
    """The graph at `opts.precision`, and the ONNX Runtime optimizers measured slower for it on the CPU
    provider (int8 only; `quantize.quantize_and_tune` records them in `export_meta` too)."""
    if opts.precision == "fp16":
        return onnx_graph.trace_to_onnx(folded, spec.height, spec.width, half=True), []
    if opts.precision not in quantize.INT8_PRECISIONS:
        return fp32_graph, []
    log(f"calibrating {opts.precision} on {'--calib ' + str(opts.calib) if opts.calib else opts.data}")
    calib = calibration_images(opts, spec, log)
    return quantize.quantize_and_tune(fp32_graph, calib, opts.precision, export_meta, log)


Check = Callable[[dict[str, parity.Runner]], parity.ParityReport]


def _parity_check(model: Any, folded: Any, graph: Any, cpu_disabled: list[str], spec: InputSpec,
                  meta: dict[str, Any], opts: ExportOptions, log: Callable[[str], None]) -> Check:
    """A function comparing the folded module, ONNX Runtime on `graph` and any extra runners with the
    trained model; it logs the report (its note included, so that is printed once) and raises
    ParityError beyond the tolerances."""
    images, labels, source, note = parity.parity_inputs(spec, opts.data, opts.parity_images, log)
    reference = parity.torch_reference(model, spec, images)
    sess = ort_session.session(graph, disabled_optimizers=cpu_disabled)
    runners: dict[str, parity.Runner] = {
        "folded": lambda x: _run_folded(folded, x),
        "onnxruntime": lambda x: ort_session.run_probs(sess, x),
    }
    thresholds = meta.get("thresholds") or default_thresholds(model.schema)

    def check(extra: dict[str, parity.Runner]) -> parity.ParityReport:
        ref_acc, results = parity.compare(reference, {**runners, **extra}, images, model.schema, thresholds, labels)
        rep = parity.ParityReport(opts.precision, len(images), source, note, ref_acc, results)
        log(rep.summary())
        parity.enforce(rep)
        return rep

    return check


def _write(out: Path, graph: Any, onnx_meta: dict[str, Any], opts: ExportOptions, spec: InputSpec, columns: int,
           check: Check, log: Callable[[str], None]) -> tuple[list[Path], parity.ParityReport]:
    """Check parity (on the engine too when one is built), then write the files; returns their paths."""
    if opts.format == "onnx":
        rep = check({})
        return [onnx_graph.save(graph, out)], rep
    onnx_bytes = graph.SerializeToString()
    if not opts.trt and opts.format == "triton":
        rep = check({})
        return _write_triton(out, "onnx", onnx_bytes, opts, spec, columns), rep
    plan, rep = _engine_with_parity(onnx_bytes, opts, spec, out, check, log)
    if opts.format == "triton":
        return _write_triton(out, "plan", plan, opts, spec, columns), rep
    outputs = ["probs", "logits"] if opts.logits else ["probs"]
    side = trt_engine.sidecar(onnx_meta, opts.precision, opts.batch, spec.height, spec.width, columns,
                              outputs, _sha(onnx_bytes), trt_engine.trt_version())
    with atomic_path(out) as tmp:
        tmp.write_bytes(plan)
    sidecar_path = Path(str(out) + ".json")
    atomic_write_text(sidecar_path, _json(side))
    return [out, sidecar_path], rep


def _engine_with_parity(onnx_bytes: bytes, opts: ExportOptions, spec: InputSpec, out: Path, check: Check,
                        log: Callable[[str], None]) -> tuple[bytes, parity.ParityReport]:
    """Build the plan (TF32 allowed for fp16 and int8 files only), then check TensorRT's outputs too."""
    from attrnet.export.trt_runner import EngineRunner

    plan = trt_engine.build_engine(onnx_bytes, opts.batch, spec.height, spec.width,
                                   timing_cache=opts.timing_cache or default_timing_cache(out),
                                   workspace=opts.workspace, tf32=opts.precision != "fp32", log=log)
    runner = EngineRunner(plan)
    rep = check({"tensorrt": runner.run})
    del runner
    return plan, rep


def _run_folded(folded: Any, images: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = [folded(torch.from_numpy(images[i:i + 64])) for i in range(0, len(images), 64)]
    return torch.cat([o[0] if isinstance(o, tuple) else o for o in out]).numpy()


def _write_triton(repo: Path, kind: str, model_bytes: bytes, opts: ExportOptions, spec: InputSpec,
                  columns: int) -> list[Path]:
    max_batch = opts.batch.max
    config = triton.config_text(kind, spec.height, spec.width, columns, max_batch,
                                [opts.batch.opt, max_batch], logits=opts.logits, instance=opts.instance)
    return triton.write_repository(repo, kind, model_bytes, config)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"
