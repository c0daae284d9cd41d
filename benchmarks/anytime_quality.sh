#!/usr/bin/env bash
# The horizon-free benchmark (anytime protocol, benchmarks/anytime.py): each horizon-free schedule runs once per
# seed to 2·B0 and is read at B0/4, B0/2, B0 and 2·B0; each schedule told the horizon runs once per budget. One
# lane per seed, the runs in the order of SCHEDULES, one thread each; a run whose result file exists is skipped.
# Results: benchmarks/results/anytime/<family>/<schedule>_b<budget>_seed<N>.json.
#   FAMILY=lm B0=2000 SEEDS="0 1" bash benchmarks/anytime_quality.sh              # F1 (~2.5 h a lane)
#   FAMILY=translation B0=1000 SEEDS="0 1" bash benchmarks/anytime_quality.sh     # F2
#   FAMILY=lm SCHEDULES="autodrop_anytime" bash benchmarks/anytime_quality.sh     # one schedule
# TEXT_DIR (default ../shared/data/translation/multi30k), WARMUP (default 100 steps), BUDGETS (the read points),
# RESULTS, OUTPUTS (folders) and PY may be set; the tests run it on a tiny budget.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-lm}
TEXT_DIR=${TEXT_DIR:-../shared/data/translation/multi30k}
B0=${B0:-2000}
WARMUP=${WARMUP:-100}
SEEDS=${SEEDS:-"0 1"}
SCHEDULES=${SCHEDULES:-"autodrop_anytime autodrop_averaged linear schedule_free_3x constant reduce_lr_on_plateau wsd schedule_free autodrop autodrop_paper constant_average autodrop_anytime_average"}
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-benchmarks/results/anytime/$FAMILY}
OUTPUTS=${OUTPUTS:-outputs/anytime/$FAMILY}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
budgets=${BUDGETS:-"$((B0 / 4)) $((B0 / 2)) $B0 $((2 * B0))"}  # the tests read fewer

run() {  # schedule budget seed [extra arguments]
  local schedule=$1 budget=$2 seed=$3; shift 3
  local name="${schedule}_b${budget}_seed${seed}"
  local result="$RESULTS/$name.json" out="$OUTPUTS/$name"
  if [ -f "$result" ]; then echo "have: $result"; return 0; fi
  rm -rf "$out" && mkdir -p "$out"
  if "$PY" benchmarks/anytime.py --family "$FAMILY" --text_dir "$TEXT_DIR" --schedule "$schedule" \
      --budget "$budget" --seed "$seed" --warmup_steps "$WARMUP" --eval_steps $((B0 / 4)) --result "$result" \
      --output_dir "$out" "$@" \
      > "$out/run.log" 2>&1; then
    echo "done: $name"
  else
    echo "FAILED: $name (see $out/run.log)"
  fi
}

lane() {  # every schedule of one seed, in order
  local seed=$1
  for schedule in $SCHEDULES; do
    case "$schedule" in
      linear|autodrop) for b in $budgets; do run "$schedule" "$b" "$seed"; done ;;
      wsd) for b in $budgets; do
             run wsd "$b" "$seed" --branch_from "$OUTPUTS/constant_b$((2 * B0))_seed${seed}"
           done ;;
      constant) run constant $((2 * B0)) "$seed" --save_at_budgets $budgets ;;
      *) run "$schedule" $((2 * B0)) "$seed" ;;
    esac
  done
}

for seed in $SEEDS; do lane "$seed" & done
wait
