"""One training step (forward + backward + Adam) of the baseline and of MSA on the same batch.

ResNet-50 (last stride 1) at 288x144, a batch of 6 ids x (4 RGB + 4 IR), on this machine's CPU.
Prints seconds per step, the MSA / baseline ratio, and the share of ISA + SSC (generating R2I and
I2R, the image-level losses and their backward) in the MSA step.
The process keeps freed memory for the next step as ``msareid train`` does (``train.reuse_memory``);
``--no-reuse-memory`` measures glibc's default, which page-faults large activations in anew each step.
Usage: python bench/model_bench.py [--steps 3] [--backbone resnet50] [--height 288 --width 144]
                                   [--no-reuse-memory]
"""

from __future__ import annotations

import argparse
import time

import torch

from msareid.allocator import reuse_freed_memory
from msareid.models import EmbeddingNet, MSANet
from msareid.systems.base import Batch
from msareid.systems.objective import msa_losses


def step_time(model: MSANet, rgb, ir, labels, steps: int) -> float:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3.5e-4, weight_decay=5e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        msa_losses(model, Batch(rgb, ir, labels))["total"].backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps


def isa_ssc_time(model: MSANet, rgb, ir, steps: int) -> float:
    """Generation, L_img and its backward alone (what MSA adds besides the extra images through F)."""
    from msareid.losses.image import ssl_loss, ssl_plus_loss

    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        gen = model.adapt(rgb, ir)
        img = (ssl_loss(ir, gen["r2i"]) + ssl_loss(rgb, gen["i2r"])
               - ssl_plus_loss(rgb, gen["r2i"]) - ssl_plus_loss(ir, gen["i2r"]))
        img.backward()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--no-reuse-memory", action="store_true", help="glibc's default allocator behaviour")
    args = parser.parse_args()
    reused = not args.no_reuse_memory and reuse_freed_memory()
    torch.manual_seed(0)
    p, k = 6, 4
    labels = torch.arange(p).repeat_interleave(k)
    rgb = torch.randn(p * k, 3, args.height, args.width)
    ir = torch.randn(p * k, 3, args.height, args.width)
    print(f"{args.backbone} {args.height}x{args.width}, batch {p} ids x ({k} RGB + {k} IR), "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, freed memory "
          f"{'kept' if reused else 'returned to the system'}")
    baseline = MSANet(EmbeddingNet(args.backbone, 395), r2i=False, i2r=False).train()
    t_base = step_time(baseline, rgb, ir, labels, args.steps)
    print(f"baseline step (48 images through F): {t_base:.2f} s")
    msa = MSANet(EmbeddingNet(args.backbone, 395), r2i=True, i2r=True).train()
    msa.embed.load_state_dict(baseline.embed.state_dict())
    t_msa = step_time(msa, rgb, ir, labels, args.steps)
    t_isa = isa_ssc_time(msa, rgb, ir, args.steps)
    print(f"MSA step (96 images through F): {t_msa:.2f} s; ratio MSA / baseline {t_msa / t_base:.2f}")
    share = 100 * t_isa / t_msa
    print(f"ISA + SSC (generation, L_img, its backward): {t_isa * 1000:.0f} ms = {share:.2f}% of the MSA step")


if __name__ == "__main__":
    main()
