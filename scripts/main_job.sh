#!/usr/bin/env bash
# The README's main job: FVMGN and the concat-CNN baseline on the same cross-scene protocol — train on Trento,
# select the checkpoint on held-out Trento pixels, test on the unseen MUUFL scene — then one comparison table.
# Real data: the LiDAR rasters and ground truth of both scenes (shared data pack, $RSMG_DATA_ROOT).
# To keep the job under ~10 minutes on 2 CPU cores it trains 15 epochs and tests on a seeded, stratified 25 %
# sample of MUUFL's labelled pixels (11,566 px); benchmarks/fvmgn_accuracy.py runs the full scene and 3 seeds.
# EPOCHS=30 TARGET_SPLIT=all bash scripts/main_job.sh for the full protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
export RSMG_DATA_ROOT="${RSMG_DATA_ROOT:-../shared/data}"
export HF_HUB_OFFLINE=1 PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
OUT=outputs/main_job
common=(--trainer.max_epochs "${EPOCHS:-15}" --data.init_args.target_split "${TARGET_SPLIT:-fraction:0.25}"
        --trainer.logger.init_args.save_dir "$OUT" --trainer.logger.init_args.version seed42 --test_after_fit true)
echo "== 1/3 baseline (concat CNN): Trento -> MUUFL"
.venv/bin/rsmg fit --config experiments/baseline/trento_to_muufl.yaml "${common[@]}" --trainer.logger.init_args.name baseline
echo "== 2/3 FVMGN: Trento -> MUUFL"
.venv/bin/rsmg fit --config experiments/fvmgn/trento_to_muufl_lidar.yaml "${common[@]}" --trainer.logger.init_args.name fvmgn
echo "== 3/3 comparison table"
.venv/bin/rsmg report "$OUT/baseline/seed42" "$OUT/fvmgn/seed42" --out "$OUT/report" --title "Trento -> MUUFL (unseen), LiDAR"
