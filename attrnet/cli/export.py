"""`attrnet export`: fold a checkpoint and write ONNX (fp32/fp16/int8), a TensorRT engine or a Triton repository."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, info, permit_outside_paths, print_json


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        checkpoint: str = typer.Argument(..., help="A .safetensors checkpoint (e.g. runs/x/best.safetensors)."),
        fmt: str = typer.Option("onnx", "--format", help="onnx | engine | triton."),
        trt: bool = typer.Option(False, "--trt", help="TensorRT: same as --format engine; with --format triton, "
                                 "put a TensorRT plan in the repository instead of the ONNX file."),
        precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | int8 (QDQ, symmetric, statically "
                                      "calibrated; TensorRT and ONNX Runtime) | int8-cpu (uint8 activations; ONNX Runtime CPU only)."),
        data: Optional[str] = typer.Option(None, "--data", help="Dataset FORMAT:PATH: parity on its val (else "
                                           "test) split; int8 calibrates on its train split unless --calib."),
        calib: Optional[Path] = typer.Option(None, "--calib", help="Folder of images to calibrate int8 on."),
        batch: str = typer.Option("1:16:64", "--batch", help="Batch range MIN:OPT:MAX (TensorRT profile, Triton "
                                  "max_batch_size and preferred sizes)."),
        img_size: Optional[str] = typer.Option(None, "--img-size", help="Input size S or HxW (default: the "
                                               "checkpoint's)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output file (for triton: the repository folder). "
                                           "Default: beside the checkpoint."),
        logits: bool = typer.Option(False, "--logits", help="Also output `logits`."),
        fold_mode: str = typer.Option("measure", "--fold-mode", help="Per branched stage: measure (time each "
                                      "form, keep the fastest) | flops | grouped | dense."),
        mix: str = typer.Option("flops", "--mix", help="Cross-stitch units: flops (fold, or keep as a matmul/1x1 conv, whichever "
                                "costs fewer FLOPs) | fold | keep."),
        parity_images: int = typer.Option(64, "--parity-images", help="Images used for the parity check."),
        instance: str = typer.Option("gpu", "--instance", help="Triton instance_group kind: gpu | cpu."),
        workspace_mib: int = typer.Option(1024, "--workspace", help="TensorRT workspace limit in MiB."),
        timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="TensorRT timing cache file "
                                                    "(default: trt.timing.cache beside the output)."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help=ALLOW_OUTSIDE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        """Fold a trained model into one static graph and export it, checking parity first."""
        permit_outside_paths(allow_outside)
        from attrnet.core.errors import InputError
        from attrnet.export.pipeline import ExportOptions, export_checkpoint
        from attrnet.export.trt_engine import parse_batch
        from attrnet.core.input_spec import parse_img_size

        if fold_mode not in ("measure", "flops", "grouped", "dense"):
            raise InputError(f"unknown --fold-mode {fold_mode!r} (measure, flops, grouped or dense)")
        if mix not in ("flops", "fold", "keep"):
            raise InputError(f"unknown --mix {mix!r} (flops, fold or keep)")
        if instance not in ("gpu", "cpu"):
            raise InputError(f"unknown --instance {instance!r} (gpu or cpu)")
        if parity_images < 1 or workspace_mib < 1:
            raise InputError("--parity-images and --workspace must be positive")
        opts = ExportOptions(
            format=fmt, precision=precision, trt=trt, data=data, calib=calib, batch=parse_batch(batch),
            img_size=parse_img_size(img_size) if img_size else None, out=out, logits=logits,
            mode=fold_mode, mix=mix, parity_images=parity_images, instance=instance,  # type: ignore[arg-type]
            workspace=workspace_mib << 20, timing_cache=timing_cache,
        )
        result = export_checkpoint(checkpoint, opts, log=info)
        if as_json:
            print_json(result)
            return
        f = result["fold"]
        before = f["ops_before"] if f["ops_before"] is not None else "n/a (the trained model does not export as is)"
        info(f"ops (ONNX nodes) {before} -> {f['ops_after']}; "
             f"GFLOPs/image {f['flops_before'] / 1e9:.4f} -> {f['flops_after'] / 1e9:.4f}; "
             f"params {f['params_before']} -> {f['params_after']}")
        for p in result["outputs"]:
            typer.echo(p)
