#!/usr/bin/env bash
# Channel augmentation (CAJ) with and without MSA on synthetic data (docs/evidence.md,
# "Evidence: channel augmentation, with and without MSA"): B, B+CA, MSA and MSA+CA with the same seeds on the synthetic SYSU-MM01 of
# bench/study.sh (200 ids, near-infrared IR cameras), configs/tiny.toml's backbone and size (the
# tiny CNN at 64x32, from scratch), every row's schedule scaled to the same number of epochs.
#   bash bench/channel_study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds 0,1,2,3,4] [--epochs 20] [--collect]
# (--epochs 20 unless given; add --set 'model.two_stream=true' etc. to change every row alike).
# The AGW rows of `--rows channel` are left out on the CPU (AGW's 81-epoch SGD recipe scaled to 20
# epochs is studied in bench/table3_study.sh); add them with --only on a GPU.
# Resumable: run it again with the same arguments to continue.
source "$(dirname "$0")/study_setup.sh"
"$PY" -m msareid ablate --config configs/tiny.toml --set "data.root=\"$out/data\"" \
  --set "data.cache_dir=\"$out/cache\"" --set "train.device=$device" --epochs 20 "${extra[@]}" \
  --rows channel --only 'B,B+CA,MSA,MSA+CA' --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
