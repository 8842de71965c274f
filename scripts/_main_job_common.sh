# Sourced by scripts/main_job.sh and scripts/main_job_lidar.sh: the environment both jobs run in, and the
# "two independent fits, then a table" runner they share.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export RSMG_DATA_ROOT="${RSMG_DATA_ROOT:-../shared/data}"
export HF_HUB_OFFLINE=1 PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
read -r -a MAIN_JOB_EXTRA_ARGS <<< "${MAIN_JOB_EXTRA:-}"   # extra CLI options for every fit, e.g. a timing callback

# run_two_fits PARALLEL OUT STEPS NAME_A LABEL_A NAME_B LABEL_B CMD_A CMD_B
# CMD_A / CMD_B name arrays holding the two fit commands. With PARALLEL=1 fit A runs in the background (its output
# in OUT/NAME_A.log, its table printed when it ends) while fit B shows its progress bars in the foreground; a
# failed background fit stops the job with the end of its log. Otherwise they run one after the other.
run_two_fits() {
  local parallel=$1 out=$2 steps=$3 name_a=$4 label_a=$5 name_b=$6 label_b=$7
  local -n cmd_a=$8 cmd_b=$9
  if [[ "$parallel" == 1 ]]; then
    mkdir -p "$out"
    echo "== 1/$steps $label_a, in the background (output: $out/$name_a.log)"
    "${cmd_a[@]}" > "$out/$name_a.log" 2>&1 &
    local pid=$!
    # shellcheck disable=SC2064  # the pid is fixed now, on purpose
    trap "kill $pid 2>/dev/null || true" EXIT
    echo "== 2/$steps $label_b"
    "${cmd_b[@]}"
    if ! wait "$pid"; then
      echo "$(basename "$0"): the $name_a fit failed; the end of $out/$name_a.log:" >&2
      tail -30 "$out/$name_a.log" >&2
      exit 1
    fi
    trap - EXIT
    echo "== 1/$steps $label_a finished:"
    cat "$out/$name_a/seed42/results.md"
  else
    echo "== 1/$steps $label_a"
    "${cmd_a[@]}"
    echo "== 2/$steps $label_b"
    "${cmd_b[@]}"
  fi
}
