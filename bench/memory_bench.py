"""Peak memory of one MSA training step on the CPU, with and without activation checkpointing.

Each setting runs in a fresh process: ResNet-50 (last stride 1, random weights) at 288 x 144, a
batch of 6 ids x (4 RGB + 4 IR), so 96 images through F with the generated ones; two steps
(forward, backward, Adam), the second timed; the peak resident memory is the kernel's VmHWM.
``--reuse-memory`` keeps freed memory as ``msareid train`` does by default (``train.reuse_memory``).
Usage: python bench/memory_bench.py [--segments 0,2,4,8] [--backbone resnet50] [--model msa|baseline]
                                    [--reuse-memory]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import sys, time, torch
from msareid.systems.base import Batch
from msareid.systems.objective import msa_losses
from msareid.models import EmbeddingNet, MSANet
backbone, segments, msa = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "msa"
if sys.argv[4] == "reuse":
    from msareid.allocator import reuse_freed_memory
    reuse_freed_memory()
torch.manual_seed(0)
model = MSANet(EmbeddingNet(backbone, 395, checkpoint_segments=segments), r2i=msa, i2r=msa).train()
opt = torch.optim.Adam(model.parameters(), 3.5e-4)
rgb, ir = torch.randn(24, 3, 288, 144), torch.randn(24, 3, 288, 144)
labels = torch.arange(6).repeat_interleave(4)
for step in range(2):
    t0 = time.perf_counter()
    terms = msa_losses(model, Batch(rgb, ir, labels))
    opt.zero_grad()
    terms["total"].backward()
    opt.step()
    seconds = time.perf_counter() - t0
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(f"{seconds:.2f} {peak / 1024:.0f}")
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--segments", default="0,2,4,8")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--model", default="msa", choices=("msa", "baseline"))
    p.add_argument("--reuse-memory", action="store_true", help="keep freed memory (train.reuse_memory)")
    args = p.parse_args()
    kept = "kept" if args.reuse_memory else "returned to the system"
    print(f"{args.backbone}, {args.model}, 288 x 144, 6 ids x (4 + 4), freed memory {kept}; "
          "model.checkpoint_segments:")
    for seg in args.segments.split(","):
        out = subprocess.run([sys.executable, "-c", CHILD, args.backbone, seg, args.model,
                              "reuse" if args.reuse_memory else "default"], capture_output=True,
                             text=True, check=True).stdout.split()
        print(f"  {seg:>2}: step {out[0]} s, peak RSS {int(out[1]):,} MB", flush=True)


if __name__ == "__main__":
    main()
