#!/usr/bin/env bash
# The paper's Table 3 on synthetic data (docs/evidence.md,
# "Evidence: the paper's Table 3 (AGW, DDAG, and MSA on AGW's network)"): B, AGW and MSA(AGW) with the
# same seeds on the synthetic SYSU-MM01 of bench/study.sh (200 ids, near-infrared IR cameras),
# configs/tiny.toml's backbone and size (the tiny CNN at 64x32, from scratch), every row's own
# recipe scaled to the same number of epochs (ablate --epochs), evaluated every 2 epochs so that
# the best epoch (selected on the test set, as the reference does) stands beside the last.
#   bash bench/table3_study.sh OUT [--device cpu|cuda] [--jobs N] [--seeds 0,1,2,3,4] [--epochs 20] [--collect]
# (--epochs 20 unless given). Two more rows separate AGW's network from its recipe: AGW-net(Adam) is
# AGW's network and WRT with the base config's recipe (Adam, random erasing), B(SGD) the baseline
# network with AGW's recipe (SGD, 8 x (4 + 4), no random erasing, 81 epochs scaled).
# Resumable: run it again with the same arguments to continue.
source "$(dirname "$0")/study_setup.sh"
"$PY" -m msareid ablate --config configs/tiny.toml --set "data.root=\"$out/data\"" \
  --set "data.cache_dir=\"$out/cache\"" --set "train.device=$device" --set eval.every=2 --epochs 20 "${extra[@]}" \
  --rows table4 --rows table3 --only 'B,AGW,DDAG,MSA(AGW),AGW-net(Adam),B(SGD)' \
  --row 'AGW-net(Adam):model.r2i=false,model.i2r=false,loss.source_loss="none",loss.target_loss="none",model.two_stream=true,model.non_local="one",model.pooling="gem",loss.triplet="wrt"' \
  --row 'B(SGD):model.r2i=false,model.i2r=false,loss.source_loss="none",loss.target_loss="none",train.optimizer="sgd",train.lr=0.1,train.base_lr_factor=0.1,data.random_erasing=0.0,train.epochs=81,train.warmup_epochs=10,train.milestones=[20, 50]' \
  --seeds "$seeds" --jobs "$jobs" --out "$out/ablate"
