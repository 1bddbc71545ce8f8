#!/usr/bin/env bash
# Reproduce every training/probe figure in docs/results/eval.md, then render the tables with eval.report.
#
#   bash benchmarks/results.sh                  # everything, into runs/results (about an hour on 2 idle cores)
#   STEPS=200 bash benchmarks/results.sh        # shorter training runs
#   ONLY="shapes mnist" bash benchmarks/results.sh
#   ONLY=collapse COLLAPSE_ALTS="ema" bash benchmarks/results.sh   # one anti-collapse alternative
#
# Each block trains one run, then probes it beside the same architecture at random init and pooled raw
# pixels (3 seeds each), so every trained figure has its baselines from the same protocol and data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/results}
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-3}
ONLY=${ONLY:-"shapes shapes_nomotion mnist basketball basketball_nomotion collapse"}
BASKETBALL=${BASKETBALL:-../shared/data/basketball_actions}
mkdir -p "$OUT"
want() { [[ " $ONLY " == *" $1 "* ]]; }

train() { # name data steps [--set ...]
  local name=$1 data=$2 steps=$3; shift 3
  if [ -f "$OUT/$name/summary.json" ]; then echo "== $name: already trained"; return; fi
  echo "== train $name on $data for $steps steps"
  $PY train.py --data "$data" --out "$OUT/$name" --steps "$steps" --no-progress "$@"
}

probe() { # run task tag [extra args]: trained, random-init and pixels on one labelled task
  local run=$1 task=$2 tag=$3; shift 3
  local ck="$OUT/$run/checkpoints/last.pt"
  mkdir -p "$OUT/$run/eval"
  for variant in trained random_init pixels; do
    local f="$OUT/$run/eval/probe_${tag}_${variant}.json"
    [ -f "$f" ] && continue
    local extra=()
    [ "$variant" = random_init ] && extra=(--random-init)
    [ "$variant" = pixels ] && extra=(--baseline pixels)
    echo "== probe $run on $task ($variant)"
    $PY -m eval.linear_probe --checkpoint "$ck" --data "$task" --out "$f" --seeds "$SEEDS" "${extra[@]}" "$@"
  done
}

if want shapes; then
  train shapes synthetic:shapes "$STEPS"
  probe shapes synthetic:shapes:direction direction
  probe shapes synthetic:shapes:shape shape
  probe shapes synthetic:shapes:speed speed
  $PY -m eval.next_step --checkpoint "$OUT/shapes/checkpoints/last.pt" --data synthetic:shapes \
      --out "$OUT/shapes/eval/next_step.json"
  $PY -m eval.surprise --checkpoint "$OUT/shapes/checkpoints/last.pt" --out "$OUT/shapes/eval/surprise.json"
  $PY -m eval.surprise --checkpoint "$OUT/shapes/checkpoints/last.pt" --random-init \
      --out "$OUT/shapes/eval/surprise_random_init.json"
fi

if want shapes_nomotion; then  # the motion ablation: same steps, seeds and data, motion off
  train shapes_nomotion synthetic:shapes "$STEPS" --set motion=off
  probe shapes_nomotion synthetic:shapes:direction direction
fi

if want mnist; then
  train mnist synthetic:moving_mnist "$STEPS"
  probe mnist synthetic:moving_mnist:digit digit
  $PY -m eval.next_step --checkpoint "$OUT/mnist/checkpoints/last.pt" --data synthetic:moving_mnist \
      --out "$OUT/mnist/eval/next_step.json"
fi

# basketball_actions: clips are mostly 7 frames, so T=6. Self-supervised training sees every clip's video
# (no labels); the probe uses the deterministic stratified 226/57 split.
if want basketball; then
  train basketball "$BASKETBALL" "$STEPS" --set data.clip_len=6
  probe basketball "$BASKETBALL" basketball --clip-len 6
fi
if want basketball_nomotion; then
  train basketball_nomotion "$BASKETBALL" "$STEPS" --set data.clip_len=6 --set motion=off
  probe basketball_nomotion "$BASKETBALL" basketball --clip-len 6
fi

# Anti-collapse ablation (picks the default): the same run with each alternative, probed on direction.
if want collapse; then
  for alt in ${COLLAPSE_ALTS:-none infonce ema}; do
    case $alt in
      none) sets=(--set model.anti_collapse=none) ;;
      infonce) sets=(--set model.anti_collapse=infonce) ;;
      ema) sets=(--set model.target_mode=ema --set model.anti_collapse=none) ;;
    esac
    train "collapse_$alt" synthetic:shapes "$STEPS" --set motion=off "${sets[@]}"
    probe "collapse_$alt" synthetic:shapes:direction direction
  done
fi

$PY -m eval.report "$OUT"/*/ --out "$OUT/RESULTS_tables.md" --png "$OUT/results_probe.png"
echo "tables: $OUT/RESULTS_tables.md"
