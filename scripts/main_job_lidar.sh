#!/usr/bin/env bash
# The LiDAR cross-scene job (the README main job until issue 20 moved it to scenes): FVMGN and the concat-CNN baseline on the same cross-scene protocol — train on Trento,
# select the checkpoint on held-out Trento pixels, test on the unseen MUUFL scene — then one comparison table.
# Real data: the LiDAR rasters and ground truth of both scenes (shared data pack, $RSMG_DATA_ROOT).
# To keep the job under ~10 minutes on 2 CPU cores it trains 15 epochs and tests on a seeded, stratified 25 %
# sample of MUUFL's labelled pixels (11,566 px); benchmarks/fvmgn_accuracy.py runs the full scene and 3 seeds.
# EPOCHS=30 TARGET_SPLIT=all bash scripts/main_job.sh for the full protocol.
# DTAUG=1 switches DTAug test-time augmentation on (experiments/dtaug/tta.yaml): the source diffusion prior is
# trained first (Trento patches only, PRIOR_EPOCHS=40; an existing prior checkpoint is reused), every run's table
# then shows plain and TTA metrics side by side, and a second comparison table is made from the TTA block.
# TTA costs 4 views x 5 DDIM steps of the prior's UNet per test pixel, so DTAUG=1 tests on 5 % of MUUFL's
# labelled pixels unless TARGET_SPLIT is set.
set -euo pipefail
source "$(dirname "$0")/_main_job_common.sh"
OUT=outputs/main_job_lidar
DTAUG="${DTAUG:-0}"
if [[ "$DTAUG" == 1 ]]; then default_split=fraction:0.05; else default_split=fraction:0.25; fi
common=(--trainer.max_epochs "${EPOCHS:-15}" --data.init_args.target_split "${TARGET_SPLIT:-$default_split}"
        --trainer.logger.init_args.save_dir "$OUT" --trainer.logger.init_args.version seed42 --test_after_fit true)
common+=("${MAIN_JOB_EXTRA_ARGS[@]}")
n=3
if [[ "$DTAUG" == 1 ]]; then
  n=4
  prior=outputs/dtaug_prior_trento_lidar/seed42/checkpoints/last.ckpt   # the path experiments/dtaug/tta.yaml reads
  if [[ -f "$prior" ]]; then
    echo "== 0/$n DTAug prior: reusing $prior (delete it to train a new one)"
  else
    echo "== 0/$n DTAug prior: diffusion model of the Trento source patches"
    .venv/bin/rsmg fit --config experiments/dtaug/prior_trento_lidar.yaml --trainer.max_epochs "${PRIOR_EPOCHS:-40}"
  fi
  common+=(--config experiments/dtaug/tta.yaml)
fi
data=(--config experiments/data/trento_to_muufl_lidar.yaml)
trainer=(--config experiments/trainer/lidar.yaml)
baseline=(.venv/bin/rsmg fit "${data[@]}" --config experiments/model/concat_cnn.yaml "${trainer[@]}" "${common[@]}"
          --trainer.logger.init_args.name baseline)
fvmgn=(.venv/bin/rsmg fit "${data[@]}" --config experiments/model/fvmgn_lidar.yaml "${trainer[@]}" "${common[@]}"
       --trainer.logger.init_args.name fvmgn)
# The two fits are independent. On a GPU node (nvidia-smi finds a GPU) they run at once: the baseline in the
# background (its output in $OUT/baseline.log, its table printed when it ends), FVMGN in the foreground with its
# progress bars. On CPU they run one after the other (two fits on 2 cores only compete). PARALLEL=0|1 forces it.
PARALLEL="${PARALLEL:-auto}"
if [[ "$PARALLEL" == auto ]]; then
  if nvidia-smi -L >/dev/null 2>&1; then PARALLEL=1; else PARALLEL=0; fi
fi
run_two_fits "$PARALLEL" "$OUT" "$n" baseline "baseline (concat CNN): Trento -> MUUFL" fvmgn "FVMGN: Trento -> MUUFL" \
  baseline fvmgn
echo "== 3/$n comparison table"
.venv/bin/rsmg report "$OUT/baseline/seed42" "$OUT/fvmgn/seed42" --out "$OUT/report" --title "Trento -> MUUFL (unseen), LiDAR"
if [[ "$DTAUG" == 1 ]]; then
  echo "== 4/$n comparison table with DTAug TTA"
  .venv/bin/rsmg report "$OUT/baseline/seed42" "$OUT/fvmgn/seed42" --block tta --out "$OUT/report_tta" \
    --title "Trento -> MUUFL (unseen), LiDAR, with DTAug TTA"
fi
