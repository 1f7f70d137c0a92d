#!/usr/bin/env bash
# The ONE device command behind benchmarks/gpu_many.json (all eight Table-1 configs concurrently on one GPU): checks
# the machine and the token cache, times every concurrency mode of benchmarks/gpu_many.py for SECONDS_EACH (20) s
# each (after --check: two models alone vs together on streams), then trains the eight configs x 122,700 steps with
# the fastest mode until the time left runs out, and records the wall time, or a projection when it is cut short.
# Wall time: ~15 s of checks + ~5 modes x 40-50 s + --full within what is left of TOTAL (500 s), all under
# `timeout 520`: it fits the device call's 540-s timeout. A mode that hangs is killed (with a stack dump in its log)
# and costs only its own time; gpu_many.json is rewritten after every mode. Needs torch, numpy, safetensors, pyyaml
# and tokenizers; the token cache travels as .cache/tokens (git-ignored: pass it in the call's carry), FNB_CACHE_ONLY
# keeps it from being rebuilt. Run folders go to /tmp/fnb-gpu-many; only JSON and logs land in $OUT.
#   run(command="bash benchmarks/gpu_session2.sh", carry=[".cache/tokens"], timeout_s=540)
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 FNB_CACHE_ONLY=1
OUT=${OUT:-benchmarks}; PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv,noheader
command -v nvidia-cuda-mps-control >/dev/null || echo "nvidia-cuda-mps-control: not found (the mps mode will say so)"
$PY -c "import torch, numpy, safetensors, yaml, tokenizers; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" || exit 2
check_cache() { $PY - <<'PYEOF'
from fourier_nb.config import Config
from fourier_nb.cache import cached_eval, cached_pairs
from fourier_nb.data import EVAL_SETS
print('token cache:', len(cached_pairs(Config(train_data='dev-mix'))), 'dev-mix pairs,',
      ', '.join(f"{s} {len(cached_eval(Config(), s)[2])}" for s in EVAL_SETS))   # the sets train_and_eval scores
PYEOF
}
check_cache 2>/dev/null || { echo "no token cache: building it from ${FNB_DATA_DIR:-../shared/data}"; FNB_CACHE_ONLY=0 check_cache; } || exit 2
timeout 520 $PY benchmarks/gpu_many.py --check --seconds "${SECONDS_EACH:-20}" --full --total-s "${TOTAL:-500}" \
  --out "$OUT/gpu_many.json" 2>&1 | tee "$OUT/gpu_many.log"
