#!/usr/bin/env bash
# MSA against the baseline on three kinds of IR camera (docs/evidence.md, "Evidence: MSA against the
# baseline"): the study design of bench/study.sh (200 ids, configs/tiny.toml, 40 epochs, 64x32
# from scratch, seeds 0-4, today's defaults) on
#   --camera nir      synthetic SYSU-MM01, near-infrared IR cameras (the files of bench/study.sh)
#   --camera thermal  synthetic SYSU-MM01, thermal IR cameras (synth sysu --ir-camera thermal)
#   --camera regdb    synthetic RegDB (thermal; visible-to-thermal, trial 1; loss weights 13:10:7)
# Rows B and MSA; with --decisions also the open choices settled on near-infrared data:
# MSA(init=dirac) (identity-initialised ISA) and MSA(space=unit) (ISA and SSC on [0, 1] images).
#   bash bench/camera_study.sh OUT --camera thermal [--decisions] [--device cpu|cuda] [--jobs N]
#        [--seeds 0,1,2,3,4] [--collect]
# Resumable: run it again with the same arguments to continue. Use one OUT per camera.
decisions=0 args=()
for a in "$@"; do [ "$a" = --decisions ] && decisions=1 || args+=("$a"); done
set -- "${args[@]}"
source "$(dirname "$0")/study_setup.sh"
base=(--config configs/tiny.toml)
[ "$camera" = regdb ] && base+=(--set data.name=regdb --set data.trial=1 --set loss.alpha=1.3 --set loss.beta=1.0
  --set loss.gamma=0.7)
rows=(--rows table4 --only B,MSA)
[ "$decisions" = 1 ] && rows=(--rows table4 --only 'B,MSA,MSA(init=dirac),MSA(space=unit)'
  --row 'MSA(init=dirac):model.isa_init=dirac' --row 'MSA(space=unit):model.isa_space=unit')
"$PY" -m msareid ablate "${base[@]}" --set "data.root=\"$out/data\"" --set "data.cache_dir=\"$out/cache\"" \
  --set "train.device=$device" "${extra[@]}" "${rows[@]}" --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
