#!/usr/bin/env bash
# Multi30k de->en from scratch, one run per (seed, schedule) at equal steps; results and traces of each run go
# to benchmarks/results/translation/multi30k_<schedule>_seed<N>.json (collect_run.py). Test BLEU on test2016
# (sacreBLEU, detokenized, greedy decoding); validation BLEU on 300 pairs every 250 steps.
#   DATA=../shared/data/translation/multi30k SEEDS="42 1" JOBS=2 bash benchmarks/translation_quality.sh
# Schedules: autodrop (the library's defaults), autodrop_paper (--autodrop_preset paper), any Hugging Face
# scheduler name. reduce_lr_on_plateau acts on the validation loss at each evaluation (every 250 steps,
# patience 1, factor 0.5). A run whose result file exists is skipped: delete the file to run it again.
# JOBS=2 runs two at a time with one thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA=${DATA:-../shared/data/translation/multi30k}
SCHEDULES=${SCHEDULES:-"autodrop autodrop_paper linear constant_with_warmup cosine reduce_lr_on_plateau"}
export STEPS=${STEPS:-2000}
SEEDS=${SEEDS:-42}
export PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((JOBS > 1 ? 1 : 2))}

run_one() {
  local seed=$1 variant=$2
  local schedule=$variant extra=()
  case "$variant" in
    autodrop_paper) schedule=autodrop; extra=(--autodrop_preset paper) ;;
    reduce_lr_on_plateau) extra=(--lr_scheduler_kwargs '{"patience": 1, "factor": 0.5}') ;;
  esac
  local out="outputs/translation_quality/$variant/seed$seed"
  local result="benchmarks/results/translation/multi30k_${variant}_seed${seed}.json"
  if [ -f "$result" ]; then echo "have: $result"; return 0; fi
  rm -rf "$out" && mkdir -p "$out"
  HF_HUB_OFFLINE=1 "$PY" examples/translation/run_translation.py \
    --text_dir "$DATA" --source_lang de --target_lang en --output_dir "$out" \
    --vocab_size 8000 --d_model 256 --encoder_layers 3 --decoder_layers 3 --attention_heads 4 --ffn_dim 1024 \
    --do_train --do_eval --do_predict --predict_with_generate --num_beams 1 --max_eval_samples 300 \
    --lr_scheduler_type "$schedule" "${extra[@]}" --learning_rate 1e-3 --warmup_steps 100 --max_steps "$STEPS" \
    --per_device_train_batch_size 64 --per_device_eval_batch_size 64 --seed "$seed" \
    --eval_strategy steps --eval_steps 250 --save_strategy no --logging_steps 50 --report_to none \
    --disable_tqdm true > "$out/run.log" 2>&1 || { echo "FAILED: $variant $seed (see $out/run.log)"; return 0; }
  "$PY" benchmarks/collect_run.py "$out" "$result"
  echo "done: multi30k $variant $seed: $(tr -d '\n ' < "$out/results.json")"
}
export -f run_one

for seed in $SEEDS; do
  for schedule in $SCHEDULES; do echo "$seed $schedule"; done
done | xargs -P "$JOBS" -n 2 bash -c 'run_one "$@"' _
