#!/usr/bin/env bash
# Every GPU check of issue 18 in one run of at most about 5 minutes, for a machine with a GPU.
#
#   OUT=/path/to/results bash benchmarks/gpu_check.sh        # from the repository root
#
# Steps, each under its own `timeout` (capped by what is left of TOTAL_S), each
# logged to $OUT/logs/<step>.log; a failing or timed-out step is recorded in
# $OUT/steps.tsv and the run goes on, so one run reports every problem:
#
#   install  python3 -m pip install --no-deps --no-build-isolation -e .
#   env      versions, the GPU, the nvjpeg probe               -> env.txt
#   data     synthetic CelebA-format JPEGs (in the background, while pytest runs)
#   pytest   python -m pytest -m gpu                           -> pytest_gpu.xml
#   train    AMP training of resnet50 at 224, about 100 steps  -> train_amp.json, train_peak.json, train/
#   export   that checkpoint to ONNX fp32 and fp16, parity     -> export_fp32.json, export_fp16.json
#   predict  attrnet predict over the JPEGs, torch on CUDA, nvjpeg -> predict.json
#   suite    benchmarks/run.py --suite gpu (rewritten after each section) -> RESULTS_GPU.md, results_gpu.json
#   summary  the figures above in one page                     -> SUMMARY.md
#
# Settings (environment): PY (python3), TOTAL_S (290 s: two runs and a machine
# start fit in 15 minutes of device time), INSTALL (1), DRY_RUN=1 (the CPU
# plumbing check: tiny sizes on the CPU, the CPU suite's e2e section instead
# of the GPU suite, no install, TOTAL_S 1200). docs/benchmark.md says more.
set -u -o pipefail

: "${OUT:?set OUT to the folder the results go to}"
export PY=${PY:-python3}
DRY_RUN=${DRY_RUN:-0}
if [ "$DRY_RUN" = 1 ]; then
    TOTAL_S=${TOTAL_S:-1200}; INSTALL=${INSTALL:-0}
    export DEVICE=cpu ARCH=tiny SIZE=64 NUM=240 BATCH=32 EPOCHS=1 WORKERS=2 PRED_BATCH=32
    SUITE_ARGS=(--suite cpu --sections e2e --e2e-images 64 --threads 2)
else
    TOTAL_S=${TOTAL_S:-290}; INSTALL=${INSTALL:-1}
    export DEVICE=cuda ARCH=resnet50 SIZE=224 NUM=3200 BATCH=128 EPOCHS=5 WORKERS=12 PRED_BATCH=256
    SUITE_ARGS=(--suite gpu --budget 1)
fi
mkdir -p "$OUT/logs" "$OUT/train"
OUT=$(cd "$OUT" && pwd)
export OUT
WORK=$(mktemp -d "${TMPDIR:-/tmp}/attrnet-gpu-check.XXXXXX")
export WORK
trap 'rm -rf "$WORK"' EXIT
SUMMARY_S=20  # kept back for the summary
DEADLINE=$(( $(date +%s) + TOTAL_S - SUMMARY_S ))
STEPS="$OUT/steps.tsv"
printf 'step\tstatus\tseconds\tlimit\n' > "$STEPS"

# step NAME CAP_S COMMAND...: run COMMAND under `timeout` (CAP_S, or less when TOTAL_S runs out),
# stdout and stderr to logs/NAME.log; record the outcome in steps.tsv and always return 0.
step() {
    local name=$1 cap=$2
    shift 2
    local left=$(( DEADLINE - $(date +%s) ))
    local limit=$(( cap < left ? cap : left ))
    if [ "$limit" -lt 5 ]; then
        printf '%s\tskipped: no time left\t0\t0\n' "$name" >> "$STEPS"
        echo "== $name: skipped, no time left" >&2
        return 0
    fi
    echo "== $name (at most ${limit}s)" >&2
    local t0 rc=0 status=ok
    t0=$(date +%s)
    timeout -k 5 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1 || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status="timed out"
    elif [ "$rc" -ne 0 ]; then
        status="failed (exit $rc)"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" "$limit" >> "$STEPS"
    echo "   $name: $status; last lines of logs/$name.log:" >&2
    tail -n 3 "$OUT/logs/$name.log" | sed 's/^/   | /' >&2
    return 0
}

step_env() {
    "$PY" - <<'EOF' > "$OUT/env.txt"
import importlib.metadata as md
import platform

import torch

for dist in ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "attrnet"):
    try:
        print(f"{dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist} -")
print(f"python {platform.python_version()}")
print(f"cuda available {torch.cuda.is_available()}, torch CUDA {torch.version.cuda}, "
      f"cudnn {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"gpu {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
          f"bf16 {torch.cuda.is_bf16_supported()}")
    from attrnet.serve.gpu import nvjpeg_problem

    print(f"nvjpeg: {nvjpeg_problem('cuda') or 'a probe decode worked'}")
EOF
    local rc=$?
    if command -v nvidia-smi > /dev/null; then nvidia-smi >> "$OUT/env.txt" 2>&1; fi
    cat "$OUT/env.txt"
    return $rc
}

step_data() {
    "$PY" -m attrnet data synth --preset celeba --size "$SIZE" --num "$NUM" --seed 0 --out "$WORK/celeba"
}

# The real `attrnet train` command in this process, then torch's peak GPU memory to train_peak.json.
step_train() {
    cat > "$WORK/peak_gpu_memory.py" <<'EOF'
"""python peak_gpu_memory.py OUT.json ATTRNET-ARGS...: run the attrnet command here, then write torch's peak GPU memory."""
import json
import sys
from pathlib import Path

if __name__ == "__main__":
    import torch

    from attrnet.cli import main

    rc = main(sys.argv[2:])
    peak = {}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak = {"device": torch.cuda.get_device_name(), "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
                "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20}
    Path(sys.argv[1]).write_text(json.dumps(peak) + "\n")
    sys.exit(rc)
EOF
    "$PY" "$WORK/peak_gpu_memory.py" "$OUT/train_peak.json" train --data "celeba:$WORK/celeba" --out "$WORK/run" \
        --arch "$ARCH" --img-size "$SIZE" --epochs "$EPOCHS" --batch-size "$BATCH" --workers "$WORKERS" \
        --device "$DEVICE" --amp --log-every 10 --json > "$OUT/train_amp.json"
    local rc=$?
    cp "$WORK/run/metrics.jsonl" "$WORK/run/config.json" "$OUT/train/" 2> /dev/null
    return $rc
}

step_export() {  # step_export PRECISION
    "$PY" -m attrnet export "$WORK/run/best.safetensors" --precision "$1" --data "celeba:$WORK/celeba" \
        --parity-images 32 --out "$WORK/run/best.$1.onnx" --json > "$OUT/export_$1.json"
}

step_predict() {
    "$PY" -m attrnet predict "$WORK/celeba/img_align_celeba" --model "$WORK/run/best.safetensors" \
        --device "$DEVICE" --batch-size "$PRED_BATCH" --out "$WORK/preds.csv" --json > "$OUT/predict.json"
}

export -f step_env step_data step_train step_export step_predict

if [ "$INSTALL" = 1 ]; then
    step install 60 "$PY" -m pip install --no-deps --no-build-isolation -e .
fi
step env 30 bash -c step_env
step data 150 bash -c step_data &
DATA_PID=$!
step pytest 75 "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$OUT/pytest_gpu.xml"
wait "$DATA_PID"
step train 75 bash -c step_train
step export_fp32 40 bash -c "step_export fp32"
step export_fp16 40 bash -c "step_export fp16"
step predict 40 bash -c step_predict
step suite 600 "$PY" benchmarks/run.py "${SUITE_ARGS[@]}" --out "$OUT/RESULTS_GPU.md" --json "$OUT/results_gpu.json"
DEADLINE=$(( DEADLINE + SUMMARY_S ))
step summary "$SUMMARY_S" "$PY" benchmarks/gpu_check_summary.py "$OUT"
cat "$OUT/SUMMARY.md" 2> /dev/null || cat "$STEPS"
