#!/usr/bin/env bash
# Reproduce docs/results/few_labels.md: label-efficiency curves, k-NN, video-level probes, clusters and one search
# contact sheet, trained vs random init vs pixels, then render the tables with eval.report.
#
#   SHAPES_CKPT=runs/shapes/checkpoints/last.pt BB_CKPT=runs/bb/checkpoints/last.pt bash benchmarks/few_labels.sh
#   ONLY="direction" bash benchmarks/few_labels.sh
#
# Checkpoints: a synthetic:shapes model (SHAPES_CKPT) and a basketball_actions model with data.clip_len=6
# (BB_CKPT); without them the script trains both (STEPS each, 1 thread). Probe sizes are modest (n-train 512,
# n-test 256 for direction; basketball is 226/57 videos); features are cached, so each variant extracts once.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/fewlabels}
STEPS=${STEPS:-2000}
SEEDS=${SEEDS:-3}          # direction (each random-init seed is a fresh network: one extraction per seed)
BB_SEEDS=${BB_SEEDS:-10}   # basketball: 57 test videos, so more draws of the K shots
ONLY=${ONLY:-"direction basketball video_level"}
BASKETBALL=${BASKETBALL:-../shared/data/basketball_actions}
want() { [[ " $ONLY " == *" $1 "* ]]; }
mkdir -p "$OUT"

if [ -z "${SHAPES_CKPT:-}" ] && want direction; then
  SHAPES_CKPT=$OUT/shapes/checkpoints/last.pt
  [ -f "$SHAPES_CKPT" ] || $PY train.py --data synthetic:shapes --out "$OUT/shapes" --steps "$STEPS" --no-progress \
    --set train.threads=1
fi
if [ -z "${BB_CKPT:-}" ] && { want basketball || want video_level; }; then
  BB_CKPT=$OUT/bb/checkpoints/last.pt
  [ -f "$BB_CKPT" ] || $PY train.py --data "$BASKETBALL" --out "$OUT/bb" --steps "$STEPS" --no-progress \
    --set data.clip_len=6 --set train.threads=1
fi

to() { # FILE cmd...: run cmd unless FILE exists (so an interrupted run resumes)
  local f=$1; shift
  if [ -f "$f" ]; then echo "== $f: exists"; else "$@"; fi
}
variant_flags() { case $1 in trained) echo "";; random) echo "--random-init";; pixels) echo "--baseline pixels";; esac; }

curves() { # name ckpt seeds data-args...: linear probe at K = 1, 5, 10, all; k-NN; embed + cluster
  local name=$1 ck=$2 seeds=$3; shift 3
  local dir=$OUT/$name
  mkdir -p "$dir"
  for v in trained random pixels; do
    local f; f=$(variant_flags $v)
    for k in all 1 5 10; do
      to "$dir/probe_${v}_k$k.json" $PY -m eval.linear_probe --checkpoint "$ck" "$@" --seeds "$seeds" --shots $k $f \
        --out "$dir/probe_${v}_k$k.json"
    done
    to "$dir/knn_${v}.json" $PY -m eval.knn --checkpoint "$ck" "$@" --seeds "$seeds" $f --out "$dir/knn_${v}.json"
    to "$dir/emb_${v}.npz" $PY -m eval.embed --checkpoint "$ck" "$@" $f --out "$dir/emb_${v}.npz"
    to "$dir/cluster_${v}.json" $PY -m eval.cluster "$dir/emb_${v}.npz" --out "$dir/cluster_${v}.json"
  done
}

COMMON=(--device cpu --threads 1)
want direction && curves direction "$SHAPES_CKPT" "$SEEDS" --data synthetic:shapes:direction --n-train 512 \
  --n-test 256 "${COMMON[@]}"
want basketball && curves basketball "$BB_CKPT" "$BB_SEEDS" --data "$BASKETBALL" "${COMMON[@]}"
if want basketball; then # k-NN with K labels per class in the bank (k is chosen on a carve, so K >= 2)
  for v in trained random pixels; do
    for k in 5 10 all; do
      to "$OUT/basketball/knn_${v}_k$k.json" $PY -m eval.knn --checkpoint "$BB_CKPT" --data "$BASKETBALL" \
        --seeds "$BB_SEEDS" --shots $k $(variant_flags $v) "${COMMON[@]}" --out "$OUT/basketball/knn_${v}_k$k.json"
    done
  done
fi

if want video_level; then # the centre clip against 3 clips spread over each video, full labels
  dir=$OUT/basketball_video
  mkdir -p "$dir"
  for v in trained random pixels; do
    f=$(variant_flags $v)
    for n in 1 3; do
      to "$dir/probe_${v}_n$n.json" $PY -m eval.linear_probe --checkpoint "$BB_CKPT" --data "$BASKETBALL" --seeds 3 \
        --clips-per-video $n $f "${COMMON[@]}" --out "$dir/probe_${v}_n$n.json"
    done
    to "$dir/knn_${v}_n3.json" $PY -m eval.knn --checkpoint "$BB_CKPT" --data "$BASKETBALL" --seeds 3 \
      --clips-per-video 3 $f "${COMMON[@]}" --out "$dir/knn_${v}_n3.json"
  done
fi

if want basketball; then # one search by example, drawn as a contact sheet
  $PY -m eval.search "$OUT/basketball/emb_trained.npz" --query shooting/shooting_1.mp4 -k 5 \
    --png "$OUT/search_shooting_1.png"
fi
dirs=(); for d in direction basketball basketball_video; do [ -d "$OUT/$d" ] && dirs+=("$OUT/$d"); done
$PY -m eval.report "${dirs[@]}" --out "$OUT/tables.md" --curve-png "$OUT/curves.png" --title "Few labels and no labels"
