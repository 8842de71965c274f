#!/usr/bin/env bash
# The GPU checks of rsmg in one go, for a CUDA node (CI has no GPU, so these never run there):
#   1. the GPU tests (tests/test_gpu.py: a bf16 fit on the GPU tests like on the CPU; FVMGN forward+backward);
#   2. whole protocols end to end (benchmarks/gpu_protocols.py): the README main job, the DTAug prior, FVMGN with
#      DTAug training views, a plain test and DTAug TTA (K = 4, 5 DDIM steps) on every labelled MUUFL pixel;
#      wall time, samples/s, peak memory and the shares of data wait / step / MWDis / text / prior per stage;
#   3. FVMGN's training step at batch 8192 (benchmarks/gpu_step.py): eager vs fused AdamW vs torch.compile vs
#      CUDA graphs, the GPU busy share, the top kernels and a bandwidth-roofline statement.
# Results: benchmarks/results/gpu/{protocols,step}_<TAG>*.md (TAG: a short name of the GPU, default "gpu").
# Each step has a time limit so one hang cannot eat a short GPU allocation. The older per-step studies
# (fvmgn_speed.py, fvmgn_compile.py) still run on their own.
#
# Usage: RSMG_DATA_ROOT=../shared/data TAG=h200 bash benchmarks/gpu_suite.sh
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
step 120 "$PY" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider -n 0
step 400 "$PY" benchmarks/gpu_protocols.py --name "gpu/protocols_${TAG}"
step 240 "$PY" benchmarks/gpu_step.py --batch 8192 --name "gpu/step_${TAG}_batch8192"
exit $status
