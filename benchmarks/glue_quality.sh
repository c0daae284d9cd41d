#!/usr/bin/env bash
# Fine-tune MiniLM on real GLUE TSV files, one run per (seed, task, schedule); each run's results and
# traces go to benchmarks/results/glue/<task>_<schedule>_seed<N>.json (collect_run.py). The same peak LR,
# warm-up, epochs and batch size for every schedule:
#   GLUE_DIR=../shared/data/glue SEEDS="42 1 2 3 4" JOBS=2 bash benchmarks/glue_quality.sh
#   TASKS=sst2 SCHEDULES="autodrop autodrop_paper linear" SEEDS="42 1" JOBS=2 bash benchmarks/glue_quality.sh
# Runs go seed by seed, so that every finished seed holds all schedules (the comparisons are paired).
# A run whose result file exists is skipped: delete the file to run it again. MODEL (default minilm),
# RESULTS and OUTPUTS (folders) may be set; the tests run this script on a tiny model and task.
# JOBS=2 runs two at a time with one thread each (two 2-thread runs on 2 cores are much slower).
#
# Schedules: autodrop (the library's defaults), autodrop_paper (--autodrop_preset paper: the paper's
# rule), autodrop_anytime (--autodrop_preset anytime --autodrop_stop_when_done: the horizon-free rule, which ends
# the run where it says done), autodrop_anytime_average (the same with the preset anytime_average), linear_3ep (linear over 3 epochs whatever EPOCHS), linear_early_stop
# (EarlyStoppingCallback, patience 2 on the task's metric, the best model restored), schedule_free (Schedule-Free
# AdamW at 3x the peak LR, constant schedule), and any Hugging Face scheduler name (greedy: its defaults).
# The horizon-free benchmark's F3 is MiniLM given 10 epochs:
#   EPOCHS=10 TASKS="mrpc cola" SEEDS=42 RESULTS=benchmarks/results/anytime/glue OUTPUTS=outputs/anytime/glue \
#   SCHEDULES="autodrop_anytime_average linear_3ep linear linear_early_stop reduce_lr_on_plateau schedule_free greedy" \
#   JOBS=2 bash benchmarks/glue_quality.sh
# Batches are padded to their longest sequence and built
# from examples of similar length (--train_sampling_strategy group_by_length): GLUE sentences are short
# and vary a lot in length, so this makes every run 1.5-3 times cheaper, for every schedule alike.
# reduce_lr_on_plateau acts on the dev loss, which the Trainer passes it only at evaluations: it
# evaluates every 10% of training with patience 1 and factor 0.5 (with the Hugging Face defaults,
# patience 10 and one evaluation per epoch, it would never change the LR in 3 epochs); Transformers
# runs it without warm-up. The other schedules evaluate once per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
export GLUE_DIR=${GLUE_DIR:-../shared/data/glue}
TASKS=${TASKS:-"rte mrpc cola"}
SCHEDULES=${SCHEDULES:-"autodrop autodrop_paper linear constant_with_warmup cosine reduce_lr_on_plateau"}
SEEDS=${SEEDS:-42}
export EPOCHS=${EPOCHS:-3}
export PY=${PY:-.venv/bin/python}
export MODEL=${MODEL:-minilm} RESULTS=${RESULTS:-benchmarks/results/glue} OUTPUTS=${OUTPUTS:-outputs/glue_quality}
JOBS=${JOBS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((JOBS > 1 ? 1 : 2))}

run_one() {
  local seed=$1 task=$2 variant=$3
  local schedule=$variant epochs=$EPOCHS lr=5e-5 warmup=0.06 metric=accuracy
  local extra=(--eval_strategy epoch --save_strategy no)
  [ "$task" = cola ] && metric=matthews_correlation
  case "$variant" in
    autodrop_paper) schedule=autodrop; extra+=(--autodrop_preset paper) ;;
    autodrop_anytime) schedule=autodrop; extra+=(--autodrop_preset anytime --autodrop_stop_when_done) ;;
    autodrop_anytime_average) schedule=autodrop; extra+=(--autodrop_preset anytime_average --autodrop_stop_when_done) ;;
    linear_3ep) schedule=linear; epochs=3 ;;
    linear_early_stop) schedule=linear; extra=(--eval_strategy epoch --save_strategy epoch --save_total_limit 1
                       --early_stopping_patience 2 --load_best_model_at_end --metric_for_best_model "$metric") ;;
    schedule_free)  # Transformers hands --warmup_steps to the optimizer as it is: give it steps, not a ratio
      local folder lines
      folder=$(ls "$GLUE_DIR" | grep -ix "$task\|${task/sst2/sst-2}" | head -1)
      lines=$(wc -l < "$GLUE_DIR/$folder/train.tsv")
      schedule=constant; lr=1.5e-4; warmup=$(( (lines + 31) / 32 * epochs * 6 / 100 ))
      extra+=(--optim schedule_free_adamw) ;;
    reduce_lr_on_plateau) extra=(--eval_strategy steps --eval_steps 0.1 --save_strategy no
                          --lr_scheduler_kwargs '{"patience": 1, "factor": 0.5}') ;;
  esac
  local out="$OUTPUTS/$task/$variant/seed$seed" result="$RESULTS/${task}_${variant}_seed${seed}.json"
  if [ -f "$result" ]; then echo "have: $result"; return 0; fi
  rm -rf "$out" && mkdir -p "$out"
  HF_HUB_OFFLINE=1 "$PY" examples/glue/run_glue.py \
    --glue_dir "$GLUE_DIR" --task_name "$task" --model_name_or_path "$MODEL" \
    --output_dir "$out" --do_train --do_eval --lr_scheduler_type "$schedule" \
    --learning_rate "$lr" --warmup_steps "$warmup" --num_train_epochs "$epochs" \
    --per_device_train_batch_size 32 --max_seq_length 128 --train_sampling_strategy group_by_length --seed "$seed" "${extra[@]}" \
    --logging_steps 10 --report_to none --disable_tqdm true \
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
