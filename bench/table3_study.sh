#!/usr/bin/env bash
# The paper's Table 3 on synthetic data (README, "Evidence: Table 3"): B, AGW and MSA(AGW) with the
# same seeds on the synthetic SYSU-MM01 of bench/study.sh (200 ids, near-infrared IR cameras),
# configs/tiny.toml's backbone and size (the tiny CNN at 64x32, from scratch), every row's own
# recipe scaled to the same number of epochs (ablate --epochs), evaluated every 2 epochs so that
# the best epoch (selected on the test set, as the reference does) stands beside the last.
#   bash bench/table3_study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds 0,1,2,3,4] [--epochs 20] [--collect]
# Resumable: run it again with the same arguments to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash bench/table3_study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...] [--epochs N]}
shift
device=cpu jobs=2 seeds=0,1,2,3,4 epochs=20 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --collect) extra+=(--collect); shift ;;
    *) echo "table3_study.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$out"
[ -d "$out/data" ] || "$PY" -m msareid synth sysu --out "$out/data" --ids 200 --rgb-images 4 --ir-images 6 --seed 0 \
  --workers "$(nproc)"
"$PY" -m msareid ablate --config configs/tiny.toml --set "data.root=\"$out/data\"" \
  --set "data.cache_dir=\"$out/cache\"" --set "train.device=$device" --set eval.every=2 "${extra[@]}" \
  --rows table4 --rows table3 --only B,AGW,"MSA(AGW)" --epochs "$epochs" \
  --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
