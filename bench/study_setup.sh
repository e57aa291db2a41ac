# Sourced by the evidence studies (bench/study.sh, bench/table3_study.sh): reads
#   OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...] [--set KEY=VALUE ...] [--epochs N] [--collect]
# into $out, $device, $jobs, $seeds and the array $extra (ablate options), sets $PY (the project's
# .venv if there is one, the source tree on PYTHONPATH), and writes the study's synthetic SYSU-MM01
# (200 ids, near-infrared IR cameras) to $out/data once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?usage: bash bench/$(basename "$0") OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...] [--collect]}
shift
device=cpu jobs=2 seeds=0,1,2,3,4 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    --epochs) extra+=(--epochs "$2"); shift 2 ;;
    --collect) extra+=(--collect); shift ;;
    *) echo "$(basename "$0"): unknown option $1" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$out"
[ -d "$out/data" ] || "$PY" -m msareid synth sysu --out "$out/data" --ids 200 --rgb-images 4 --ir-images 6 --seed 0 \
  --workers "$(nproc)"
