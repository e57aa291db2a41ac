#!/usr/bin/env bash
# The evidence study behind the README's "Decisions, with evidence": Table 4's rows and the open
# choices of the paper (ISA initialisation, ISA pixel space, random erasing before or after ISA),
# every row with the same seeds, on a synthetic SYSU-MM01 (200 ids, near-infrared IR cameras)
# with configs/tiny.toml (40 epochs) and identity-initialised ISA (the default when the study
# was run; the rows "(init=default)" measure PyTorch's initialisation, today's default).
#   bash bench/study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds 0,1,2,3,4] [--set KEY=VALUE ...] [--collect]
# Resumable: run it again with the same arguments to continue (--collect: tables of the finished
# runs only, training nothing). Works from a clone without
# installing (PYTHONPATH=src).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash bench/study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...]}
shift
device=cpu jobs=2 seeds=0,1,2,3,4 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    --collect) extra+=(--collect); shift ;;
    *) echo "study.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$out"
[ -d "$out/data" ] || "$PY" -m msareid synth sysu --out "$out/data" --ids 200 --rgb-images 4 --ir-images 6 --seed 0 \
  --workers "$(nproc)"
"$PY" -m msareid ablate --config configs/tiny.toml --set "data.root=\"$out/data\"" \
  --set "data.cache_dir=\"$out/cache\"" --set "train.device=$device" --set model.isa_init=dirac "${extra[@]}" \
  --rows table4 \
  --row "B+ISA(init=default):model.r2i=true,model.i2r=true,loss.source_loss=none,loss.target_loss=none,model.isa_init=default" \
  --row "MSA(init=default):model.isa_init=default" \
  --row "MSA(space=unit):model.isa_space=unit" \
  --row "MSA(erasing after ISA):data.erasing_stage=after_isa" \
  --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
