#!/usr/bin/env bash
# AutoDrop on GLUE with a fixed window instead of "auto" (which is 1 step for runs of a few hundred
# steps), everything else as in glue_quality.sh. Tasks run side by side, one thread each.
#   GLUE_DIR=../shared/data/glue TASKS="mrpc rte" WINDOW=8 bash benchmarks/glue_window_ablation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
TASKS=${TASKS:-"mrpc rte"}
WINDOW=${WINDOW:-8}
SEED=${SEED:-42}
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/results/ablations
run() {
  local task=$1
  local out="outputs/glue_window/$task/window$WINDOW/seed$SEED"
  rm -rf "$out" && mkdir -p "$out"
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 "$PY" examples/glue/run_glue.py \
    --glue_dir "$GLUE_DIR" --task_name "$task" --model_name_or_path minilm \
    --output_dir "$out" --do_train --do_eval --lr_scheduler_type autodrop --autodrop_window_size "$WINDOW" \
    --learning_rate 5e-5 --warmup_steps 0.06 --num_train_epochs 3 \
    --per_device_train_batch_size 32 --max_seq_length 128 --seed "$SEED" \
    --eval_strategy epoch --save_strategy no --logging_steps 10 --report_to none --disable_tqdm true \
    > "$out/run.log" 2>&1 || { echo "FAILED: $task (see $out/run.log)"; return; }
  "$PY" benchmarks/collect_run.py "$out" "benchmarks/results/ablations/${task}_autodrop_window${WINDOW}_seed${SEED}.json"
  tail -n 4 "$out/run.log" | head -n 3
}
for task in $TASKS; do run "$task" & done
wait
