#!/usr/bin/env bash
# Fine-tune MiniLM on real GLUE TSV files, one run per (task, schedule, seed); each run's results and
# traces go to benchmarks/results/glue/ (collect_run.py). Same peak LR, warm-up, epochs, batch for all.
#   GLUE_DIR=../shared/data/glue TASKS="mrpc rte" SCHEDULES="autodrop linear" SEEDS="42" bash benchmarks/glue_quality.sh
# JOBS=2 runs two at a time with one thread each (two 2-thread runs on 2 cores are much slower).
# WINDOW=8 gives AutoDrop a fixed window instead of "auto" (1 step for runs of a few hundred steps);
# such runs are named autodrop_window8 and go to benchmarks/results/ablations/:
#   TASKS="mrpc rte" SCHEDULES=autodrop WINDOW=8 JOBS=2 bash benchmarks/glue_quality.sh
#
# reduce_lr_on_plateau and greedy act on the dev loss, which the Trainer passes them only at
# evaluations: they evaluate every 10% of training with patience 1 (with the Hugging Face defaults,
# patience 10 and one evaluation per epoch, they would never change the LR in 3 epochs), and
# greedy gets min_lr 0 (its default floor, 1e-3, is 20x the peak LR and would raise it at its first
# reduction). Transformers runs both without warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
TASKS=${TASKS:-"cola mrpc rte"}
SCHEDULES=${SCHEDULES:-"autodrop linear constant_with_warmup cosine reduce_lr_on_plateau greedy"}
SEEDS=${SEEDS:-42}
export EPOCHS=${EPOCHS:-3}
export PY=${PY:-.venv/bin/python}
export WINDOW=${WINDOW:-}
JOBS=${JOBS:-1}
if [ "$JOBS" -gt 1 ]; then export OMP_NUM_THREADS=1; fi

run_one() {
  local task=$1 schedule=$2 seed=$3
  local variant=$schedule results=glue
  local extra=(--eval_strategy epoch)
  case "$schedule" in
    reduce_lr_on_plateau) extra=(--eval_strategy steps --eval_steps 0.1 --lr_scheduler_kwargs '{"patience": 1, "factor": 0.5}') ;;
    greedy) extra=(--eval_strategy steps --eval_steps 0.1 --lr_scheduler_kwargs '{"patience": 1, "min_lr": 0.0}') ;;
    autodrop) if [ -n "$WINDOW" ]; then
        extra+=(--autodrop_window_size "$WINDOW"); variant=autodrop_window$WINDOW; results=ablations
      fi ;;
  esac
  local out="outputs/glue_quality/$task/$variant/seed$seed"
  rm -rf "$out" && mkdir -p "$out"
  HF_HUB_OFFLINE=1 "$PY" examples/glue/run_glue.py \
    --glue_dir "$GLUE_DIR" --task_name "$task" --model_name_or_path minilm \
    --output_dir "$out" --do_train --do_eval --lr_scheduler_type "$schedule" \
    --learning_rate 5e-5 --warmup_steps 0.06 --num_train_epochs "$EPOCHS" \
    --per_device_train_batch_size 32 --max_seq_length 128 --seed "$seed" "${extra[@]}" \
    --save_strategy no --logging_steps 10 --report_to none --disable_tqdm true \
    > "$out/run.log" 2>&1 || { echo "FAILED: $task $variant $seed (see $out/run.log)"; return 0; }
  "$PY" benchmarks/collect_run.py "$out" "benchmarks/results/$results/${task}_${variant}_seed${seed}.json"
  echo "done: $task $variant $seed: $(tr -d '\n ' < "$out/results.json")"
}
export -f run_one

for task in $TASKS; do
  for schedule in $SCHEDULES; do
    for seed in $SEEDS; do echo "$task $schedule $seed"; done
  done
done | xargs -P "$JOBS" -n 3 bash -c 'run_one "$@"' _
