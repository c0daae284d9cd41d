#!/usr/bin/env bash
# Fine-tune MiniLM on real GLUE TSV files, one run per (task, schedule, seed); each run's
# results.json is copied to benchmarks/results/glue/. Same peak LR, warm-up, epochs, batch for all.
#   GLUE_DIR=../shared/data/glue TASKS="mrpc rte" SCHEDULES="autodrop linear" SEEDS="42" bash benchmarks/glue_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
TASKS=${TASKS:-"cola mrpc rte"}
SCHEDULES=${SCHEDULES:-"autodrop linear constant_with_warmup cosine reduce_lr_on_plateau greedy"}
SEEDS=${SEEDS:-42}
EPOCHS=${EPOCHS:-3}
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/results/glue
for task in $TASKS; do
  for schedule in $SCHEDULES; do
    for seed in $SEEDS; do
      out="outputs/glue_quality/$task/$schedule/seed$seed"
      rm -rf "$out" && mkdir -p "$out"
      HF_HUB_OFFLINE=1 "$PY" examples/glue/run_glue.py \
        --glue_dir "$GLUE_DIR" --task_name "$task" --model_name_or_path minilm \
        --output_dir "$out" --do_train --do_eval --lr_scheduler_type "$schedule" \
        --learning_rate 5e-5 --warmup_steps 0.06 --num_train_epochs "$EPOCHS" \
        --per_device_train_batch_size 32 --max_seq_length 128 --seed "$seed" \
        --eval_strategy epoch --save_strategy no --logging_steps 10 --report_to none --disable_tqdm true \
        > "$out/run.log" 2>&1 || { echo "FAILED: $task $schedule $seed (see $out/run.log)"; continue; }
      cp "$out/results.json" "benchmarks/results/glue/${task}_${schedule}_seed${seed}.json"
      if [ -f "$out/autodrop.png" ]; then cp "$out/autodrop.png" "benchmarks/results/glue/${task}_${schedule}_seed${seed}.png"; fi
      tail -n 4 "$out/run.log" | head -n 3
    done
  done
done
