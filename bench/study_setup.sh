# Sourced by the evidence studies (bench/study.sh, bench/table3_study.sh, bench/camera_study.sh): reads
#   OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...] [--set KEY=VALUE ...] [--epochs N] [--collect]
#       [--camera nir|thermal|regdb]
# into $out, $device, $jobs, $seeds, $camera and the array $extra (ablate options), sets $PY (the
# project's .venv if there is one, the source tree on PYTHONPATH), and writes the study's synthetic
# data to $out/data once: SYSU-MM01 of 200 ids with near-infrared (nir, the default) or thermal IR
# cameras, or RegDB of 200 ids (regdb: thermal, 100 training and 100 test ids, 10 images each).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?usage: bash bench/$(basename "$0") OUT [--device cpu|cuda] [--jobs N] [--seeds S,S,...] [--collect]}
shift
device=cpu jobs=2 seeds=0,1,2,3,4 extra=() camera=nir
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --set) extra+=(--set "$2"); shift 2 ;;
    --epochs) extra+=(--epochs "$2"); shift 2 ;;
    --collect) extra+=(--collect); shift ;;
    --camera) camera=$2; shift 2 ;;
    *) echo "$(basename "$0"): unknown option $1" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$out"
case $camera in
  nir) synth=(sysu --rgb-images 4 --ir-images 6) ;;  # the files of every earlier study, byte for byte
  thermal) synth=(sysu --rgb-images 4 --ir-images 6 --ir-camera thermal) ;;
  regdb) synth=(regdb) ;;
  *) echo "$(basename "$0"): --camera must be nir, thermal or regdb" >&2; exit 2 ;;
esac
[ -d "$out/data" ] || "$PY" -m msareid synth "${synth[@]}" --out "$out/data" --ids 200 --seed 0 --workers "$(nproc)"
