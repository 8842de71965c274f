#!/usr/bin/env bash
# The GPU checks of rsmg in one go, for a CUDA node (CI has no GPU, so these never run there):
#   1. the GPU tests (tests/test_gpu.py: a bf16 fit on the GPU tests like on the CPU; FVMGN forward+backward);
#   2. FVMGN training speed at the experiment's batch (64) and at large batches (2048, 8192; real data only),
#      bf16 autocast, MFU against a bf16 matmul peak measured in the same run;
#   3. compiled vs eager SFIE at both batches (bf16 autocast): whether torch.compile pays off where the small
#      11×11 maps make eager launch-bound.
# Results: benchmarks/results/{fvmgn_speed,fvmgn_compile}_<TAG>*.md (TAG: a short name of the GPU, default "gpu").
# Each step has a time limit so one hang cannot eat a short GPU allocation.
#
# Usage: RSMG_DATA_ROOT=../shared/data TAG=a100 bash benchmarks/gpu_suite.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TAG=${TAG:-gpu}
export RSMG_DATA_ROOT=${RSMG_DATA_ROOT:-../shared/data} PYTHONUNBUFFERED=1
status=0
step() {  # step <seconds> <command...>: run with a limit, remember a failure, go on
  local limit=$1; shift
  echo "=== $* (limit ${limit} s)"
  local t0=$SECONDS
  timeout "$limit" "$@" || { echo "=== FAILED (rc $?): $*"; status=1; }
  echo "=== took $((SECONDS - t0)) s"
}
step 120 "$PY" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider
step 150 "$PY" benchmarks/fvmgn_speed.py --batch 64 --name "fvmgn_speed_${TAG}_batch64"
step 120 "$PY" benchmarks/fvmgn_speed.py --batch 2048 --skip-generated --name "fvmgn_speed_${TAG}_batch2048"
step 150 "$PY" benchmarks/fvmgn_speed.py --batch 8192 --skip-generated --name "fvmgn_speed_${TAG}_batch8192"
step 180 "$PY" benchmarks/fvmgn_compile.py --batch 64 --name "fvmgn_compile_${TAG}_batch64"
step 180 "$PY" benchmarks/fvmgn_compile.py --batch 2048 --name "fvmgn_compile_${TAG}_batch2048"
exit $status
