#!/usr/bin/env bash
# Idempotent set-up: makes .venv (Python 3.11 preferred) with the pinned torch/torchvision and rsmg[dev].
# Re-running is cheap: the install is skipped when setup.cfg and this script are unchanged since the last success.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3.10 python3; do command -v "$c" >/dev/null 2>&1 && { PY=$c; break; }; done
fi
[ -n "$PY" ] || { echo "setup.sh: no python3 found; install Python >= 3.10" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.rsmg-setup-stamp
want=$(cat setup.cfg scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import rsmg, torch" 2>/dev/null; then
  echo "setup.sh: .venv is up to date"
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[dev]"
versions=$(.venv/bin/python -c 'import torch, rsmg; print("torch", torch.__version__, "rsmg", rsmg.__version__)') || {
  echo "setup.sh: the install finished but .venv cannot import torch and rsmg; see the pip output above" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup.sh: .venv ready ($versions)"
