"""`attrnet export`: fold a checkpoint and write ONNX (fp32/fp16/int8), a TensorRT engine or a Triton repository."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, info, permit_outside_paths, print_json, result

__all__ = ["export"]


def export(
    checkpoint: Annotated[str, typer.Argument(help="A .safetensors checkpoint (e.g. runs/x/best.safetensors).")],
    *,
    fmt: Annotated[str, typer.Option("--format", help="onnx | engine | triton.")] = "onnx",
    trt: Annotated[bool, typer.Option("--trt", help="TensorRT: same as --format engine; with --format triton, "
                                      "put a TensorRT plan in the repository instead of the ONNX file.")] = False,
    precision: Annotated[str, typer.Option("--precision", help="fp32 | fp16 | int8 (QDQ, symmetric, statically "
                                           "calibrated; TensorRT and ONNX Runtime) | int8-cpu (uint8 activations; "
                                           "ONNX Runtime CPU only).")] = "fp32",
    data: Annotated[Optional[str], typer.Option("--data", help="Dataset FORMAT:PATH: parity on its val (else test) "
                                                "split; int8 calibrates on its train split unless --calib.")] = None,
    calib: Annotated[Optional[Path], typer.Option("--calib", help="Folder of images to calibrate int8 on.")] = None,
    batch: Annotated[str, typer.Option("--batch", help="Batch range MIN:OPT:MAX (TensorRT profile, Triton "
                                       "max_batch_size and preferred sizes).")] = "1:16:64",
    img_size: Annotated[Optional[str], typer.Option("--img-size", help="Input size S or HxW (default: the "
                                                    "checkpoint's).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output file (for triton: the repository folder). "
                                                "Default: beside the checkpoint.")] = None,
    logits: Annotated[bool, typer.Option("--logits", help="Also output `logits`.")] = False,
    fold_mode: Annotated[str, typer.Option("--fold-mode", help="Per branched stage: measure (time each "
                                           "form, keep the fastest) | flops | grouped | dense.")] = "measure",
    mix: Annotated[str, typer.Option("--mix", help="Cross-stitch units: flops (fold, or keep as a matmul/1x1 conv, "
                                     "whichever costs fewer FLOPs) | fold | keep.")] = "flops",
    parity_images: Annotated[int, typer.Option("--parity-images", help="Images used for the parity check.")] = 64,
    instance: Annotated[str, typer.Option("--instance", help="Triton instance_group kind: gpu | cpu.")] = "gpu",
    workspace_mib: Annotated[int, typer.Option("--workspace", help="TensorRT workspace limit in MiB.")] = 1024,
    timing_cache: Annotated[Optional[Path], typer.Option("--timing-cache", help="TensorRT timing cache file "
                                                         "(default: trt.timing.cache beside the output).")] = None,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help=ALLOW_OUTSIDE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Fold a trained model into one static graph and export it, checking parity first."""
    permit_outside_paths(allow_outside)
    from attrnet.export.pipeline import ExportOptions, export_checkpoint

    opts = ExportOptions(
        format=fmt, precision=precision, trt=trt, data=data, calib=calib, batch=batch, img_size=img_size, out=out,
        logits=logits, mode=fold_mode, mix=mix, parity_images=parity_images, instance=instance,  # type: ignore[arg-type]
        workspace=workspace_mib << 20, timing_cache=timing_cache,
    )
    summary = export_checkpoint(checkpoint, opts, log=info)
    if as_json:
        print_json(summary)
        return
    f = summary["fold"]
    before = f["ops_before"] if f["ops_before"] is not None else "n/a (the trained model does not export as is)"
    info(f"ops (ONNX nodes) {before} -> {f['ops_after']}; "
         f"GFLOPs/image {f['flops_before'] / 1e9:.4f} -> {f['flops_after'] / 1e9:.4f}; "
         f"params {f['params_before']} -> {f['params_after']}")
    for p in summary["outputs"]:
        result(str(p))
