#!/usr/bin/env bash
# The device command behind benchmarks/gpu_train.json: checks the machine, then times every Table-1 config in every
# style. Needs only torch, numpy, tokenizers, safetensors, pyarrow and pyyaml. The data folder travels as .devdata/
# (a copy of ../shared/data, git-ignored, passed in the device call's carry); FNB_DATA_DIR points at it.
#   STEPS=200 bash benchmarks/gpu_session.sh        # results under $OUT (or benchmarks/ without $OUT)
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 FNB_DATA_DIR=${FNB_DATA_DIR:-$PWD/.devdata}
OUT=${OUT:-benchmarks}
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, numpy, tokenizers, safetensors, pyarrow, yaml; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout "${BENCH_S:-300}" $PY benchmarks/gpu_train.py --steps "${STEPS:-200}" --warmup 20 --out "$OUT/gpu_train.json" \
  2>&1 | tee "$OUT/gpu_bench.log"
