#!/usr/bin/env bash
# F3 of the horizon-free benchmark: MiniLM fine-tuning given too many epochs (10). AutoDrop's anytime rule
# stops where it says done; the others run the usual ways to end a fine-tuning run. Every run evaluates once
# per epoch (and at the step it stops). Results: benchmarks/results/anytime/glue/<task>_<schedule>_seed<N>.json.
#   GLUE_DIR=../shared/data/glue TASKS="mrpc cola" SEEDS="42 1" JOBS=2 bash benchmarks/anytime_glue.sh
# Schedules: autodrop_anytime (--autodrop_preset anytime --autodrop_stop_when_done, 10 epochs), linear
# (10 epochs), linear_3ep (the usual recipe), linear_early_stop (10 epochs, EarlyStoppingCallback with
# patience 2 on the task's metric, best model restored), reduce_lr_on_plateau (patience 1, factor 0.5, on the
# dev loss), greedy (Transformers' GreedyLR, its defaults), schedule_free (Schedule-Free AdamW at 3x the
# peak LR, constant schedule). Peak LR 5e-5, 6% warm-up, batch 32, as benchmarks/glue_quality.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
TASKS=${TASKS:-"mrpc cola"}
SCHEDULES=${SCHEDULES:-"autodrop_anytime linear linear_3ep linear_early_stop reduce_lr_on_plateau schedule_free greedy"}
SEEDS=${SEEDS:-"42 1"}
export EPOCHS=${EPOCHS:-10}
export PY=${PY:-.venv/bin/python}
export MODEL=${MODEL:-minilm} RESULTS=${RESULTS:-benchmarks/results/anytime/glue} OUTPUTS=${OUTPUTS:-outputs/anytime/glue}
JOBS=${JOBS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((JOBS > 1 ? 1 : 2))}

run_one() {
  local seed=$1 task=$2 variant=$3
  local metric=accuracy epochs=$EPOCHS schedule=$variant lr=5e-5 extra=()
  [ "$task" = cola ] && metric=matthews_correlation
  case "$variant" in
    autodrop_anytime) schedule=autodrop; extra=(--autodrop_preset anytime --autodrop_stop_when_done) ;;
    linear_3ep) schedule=linear; epochs=3 ;;
    linear_early_stop) schedule=linear; extra=(--early_stopping_patience 2 --load_best_model_at_end
                       --metric_for_best_model "$metric" --save_strategy epoch --save_total_limit 1) ;;
    reduce_lr_on_plateau) extra=(--lr_scheduler_kwargs '{"patience": 1, "factor": 0.5}') ;;
    schedule_free) schedule=constant; lr=1.5e-4; extra=(--optim schedule_free_adamw) ;;
  esac
  local out="$OUTPUTS/$task/$variant/seed$seed" result="$RESULTS/${task}_${variant}_seed${seed}.json"
  if [ -f "$result" ]; then echo "have: $result"; return 0; fi
  rm -rf "$out" && mkdir -p "$out"
  local save=(--save_strategy no)
  [ "$variant" = linear_early_stop ] && save=()
  HF_HUB_OFFLINE=1 "$PY" examples/glue/run_glue.py \
    --glue_dir "$GLUE_DIR" --task_name "$task" --model_name_or_path "$MODEL" \
    --output_dir "$out" --do_train --do_eval --lr_scheduler_type "$schedule" \
    --learning_rate "$lr" --warmup_steps 0.06 --num_train_epochs "$epochs" --eval_strategy epoch \
    --per_device_train_batch_size 32 --max_seq_length 128 --train_sampling_strategy group_by_length --seed "$seed" \
    "${save[@]}" "${extra[@]}" --logging_steps 10 --report_to none --disable_tqdm true \
    > "$out/run.log" 2>&1 || { echo "FAILED: $task $variant $seed (see $out/run.log)"; return 0; }
  "$PY" benchmarks/collect_run.py "$out" "$result"
  echo "done: $task $variant $seed: $(tr -d '\n ' < "$out/results.json")"
}
export -f run_one

for seed in $SEEDS; do
  for task in $TASKS; do
    for schedule in $SCHEDULES; do echo "$seed $task $schedule"; done
  done
done | xargs -P "$JOBS" -n 3 bash -c 'run_one "$@"' _
