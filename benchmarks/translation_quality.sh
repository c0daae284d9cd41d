#!/usr/bin/env bash
# Multi30k de->en from scratch, one run per schedule at equal steps; results and traces of each run go
# to benchmarks/results/translation/ (collect_run.py). Test BLEU on test2016 (sacreBLEU, detokenized, greedy decoding).
# The schedules run side by side, one thread each (2-core machine: no thread oversubscription).
#   DATA=../shared/data/translation/multi30k SCHEDULES="autodrop linear reduce_lr_on_plateau" \
#       STEPS=600 bash benchmarks/translation_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/translation/multi30k}
SCHEDULES=${SCHEDULES:-"autodrop linear reduce_lr_on_plateau"}
STEPS=${STEPS:-600}
SEED=${SEED:-42}
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/results/translation
run() {
  local schedule=$1
  out="outputs/translation_quality/$schedule/seed$SEED"
  rm -rf "$out" && mkdir -p "$out"
  extra=()
  if [ "$schedule" = reduce_lr_on_plateau ]; then extra=(--lr_scheduler_kwargs '{"patience": 1, "factor": 0.5}'); fi
  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 "$PY" examples/translation/run_translation.py \
    --text_dir "$DATA" --source_lang de --target_lang en --output_dir "$out" \
    --vocab_size 8000 --d_model 256 --encoder_layers 3 --decoder_layers 3 --attention_heads 4 --ffn_dim 1024 \
    --do_train --do_eval --do_predict --predict_with_generate --num_beams 1 --max_eval_samples 300 \
    --lr_scheduler_type "$schedule" "${extra[@]}" --learning_rate 1e-3 --warmup_steps 100 --max_steps "$STEPS" \
    --per_device_train_batch_size 64 --per_device_eval_batch_size 64 --seed "$SEED" \
    --eval_strategy steps --eval_steps 150 --save_strategy no --logging_steps 50 --report_to none \
    --disable_tqdm true > "$out/run.log" 2>&1 || { echo "FAILED: $schedule (see $out/run.log)"; return; }
  "$PY" benchmarks/collect_run.py "$out" "benchmarks/results/translation/multi30k_${schedule}_seed${SEED}.json"
  grep -A2 "^| schedule" "$out/run.log"; grep "test BLEU" "$out/run.log"
}
for schedule in $SCHEDULES; do run "$schedule" & done
wait
