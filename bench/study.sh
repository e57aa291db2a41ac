#!/usr/bin/env bash
# The evidence study behind docs/evidence.md, "Decisions, with evidence": Table 4's rows and the open
# choices of the paper (ISA initialisation, ISA pixel space, random erasing before or after ISA),
# every row with the same seeds, on a synthetic SYSU-MM01 (200 ids, near-infrared IR cameras)
# with configs/tiny.toml (40 epochs) and identity-initialised ISA (the default when the study
# was run; the rows "(init=default)" measure PyTorch's initialisation, today's default).
#   bash bench/study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds 0,1,2,3,4] [--set KEY=VALUE ...] [--collect]
# Resumable: run it again with the same arguments to continue (--collect: tables of the finished
# runs only, training nothing). Works from a clone without
# installing (PYTHONPATH=src).
source "$(dirname "$0")/study_setup.sh"
"$PY" -m msareid ablate --config configs/tiny.toml --set "data.root=\"$out/data\"" \
  --set "data.cache_dir=\"$out/cache\"" --set "train.device=$device" --set model.isa_init=dirac "${extra[@]}" \
  --rows table4 \
  --row "B+ISA(init=default):model.r2i=true,model.i2r=true,loss.source_loss=none,loss.target_loss=none,model.isa_init=default" \
  --row "MSA(init=default):model.isa_init=default" \
  --row "MSA(space=unit):model.isa_space=unit" \
  --row "MSA(erasing after ISA):data.erasing_stage=after_isa" \
  --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
