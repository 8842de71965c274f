#!/usr/bin/env bash
# Upload offline W&B runs (experiments/logger/wandb.yaml writes them offline) once a network is available.
#
#   bash scripts/wandb_sync.sh [--dry-run] [--project P] [--entity E] [ROOT ...]
#
# ROOT defaults to outputs/ (relative to the current directory). Every offline-run-* directory below ROOT not
# synced yet is passed to `wandb sync`, which marks it synced, so running this again uploads only new runs.
# --dry-run lists the runs that would be uploaded. The upload needs `wandb login` (or WANDB_API_KEY).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
WANDB=${WANDB:-}
if [ -z "$WANDB" ]; then
  if [ -x "$repo/.venv/bin/wandb" ]; then WANDB=$repo/.venv/bin/wandb; else WANDB=wandb; fi
fi
dry=0
extra=()
roots=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    -p|--project|-e|--entity) extra+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "wandb_sync.sh: unknown option $1" >&2; exit 2 ;;
    *) roots+=("$1") ;;
  esac
  shift
done
[ ${#roots[@]} -gt 0 ] || roots=(outputs)
runs=()
for root in "${roots[@]}"; do
  [ -d "$root" ] || { echo "wandb_sync.sh: no directory $root" >&2; exit 1; }
  while IFS= read -r d; do
    # wandb sync leaves <run>/<run>.wandb.synced (or a .synced marker) after a successful upload
    if compgen -G "$d/*.wandb.synced" >/dev/null || [ -e "$d/.synced" ]; then continue; fi
    runs+=("$d")
  done < <(find "$root" -type d -name 'offline-run-*' -prune | sort)
done
if [ ${#runs[@]} -eq 0 ]; then
  echo "wandb_sync.sh: no unsynced offline run under ${roots[*]}"
  exit 0
fi
printf 'wandb_sync.sh: %d offline run(s) to upload:\n' "${#runs[@]}"
printf '  %s\n' "${runs[@]}"
[ "$dry" -eq 0 ] || exit 0
command -v "$WANDB" >/dev/null 2>&1 || { echo "wandb_sync.sh: '$WANDB' not found; pip install wandb" >&2; exit 1; }
"$WANDB" sync "${extra[@]}" "${runs[@]}"
