"""What makes N ranks train the same model as one process: the configured batch is the global
batch, each rank holds an equal share of it, and every statistic that looks across the batch is
computed over the global batch.

- BatchNorm: :func:`synchronise_batchnorm` replaces every BatchNorm layer by one whose training
  statistics are those of the global batch (:class:`GlobalBatchNorm` on the CPU, PyTorch's
  ``SyncBatchNorm`` on GPUs); running statistics are then the same on every rank.
- Hard-example mining: :func:`gather_blocks` gathers the features of all ranks, with gradients, in
  the order one process would hold them, so the triplet losses (Eq. 10, WRT) see every positive
  and negative of the global batch.
- Every other loss is a mean over the rank's images; with equal shares, DistributedDataParallel's
  average of the ranks' gradients is the gradient of the mean over the global batch.

The gradient arithmetic: let every rank r minimise its loss L_r (local means, plus the global
triplet term, computed identically on each rank). The backward pass of a collective sums the
gradients arriving from all ranks, so rank r's parameter gradient holds the derivative of
``sum_s L_s`` through its own images, and DDP's average over ranks yields the derivative of
``mean_s L_s``, which equals the single-process loss of the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def active() -> bool:
    """More than one rank in the default process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of each rank's input is the sum of the gradients of all outputs."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """Stack of every rank's tensor (W, ...); the gradient of a rank's input is the sum over ranks
    of the gradient of its slot (an all-reduce, so it works on gloo as on NCCL)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``tensor`` over ranks (itself when not distributed)."""
    return _AllReduceSum.apply(tensor) if active() else tensor


def gather_blocks(tensor: torch.Tensor, blocks: int) -> torch.Tensor:
    """Every rank's rows of ``tensor``, with gradients, in the order of one process's batch.

    A rank's rows are ``blocks`` equal blocks (RGB, IR, then each generated modality), each holding
    the rank's identities. One process holds block b of every rank together, rank 0's identities
    first; this returns exactly that order. Not distributed: ``tensor`` itself.
    """
    if not active():
        return tensor
    if tensor.shape[0] % blocks:
        raise ValueError(f"{tensor.shape[0]} rows do not split into {blocks} blocks")
    stacked = _AllGather.apply(tensor)  # (W, blocks * n, ...)
    world, n = stacked.shape[0], tensor.shape[0] // blocks
    return stacked.reshape(world, blocks, n, *tensor.shape[1:]).transpose(0, 1).reshape(-1, *tensor.shape[1:])


def average_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a (detached) tensor, for reporting; itself when not distributed."""
    if not active():
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all ranks' images).

    Two collectives a layer: the global mean, then the global mean squared deviation from it (the
    two-pass variance, as one process computes it). Running statistics are updated as
    ``nn.BatchNorm`` does (the unbiased variance, ``momentum`` or the cumulative average), so they
    are the same on every rank. Outside training or with one rank it is plain BatchNorm. Inputs of
    any dimension (N, C, ...) are accepted.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        if not (self.training and active()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        local = torch.tensor([input.numel() // input.shape[1]], dtype=x.dtype, device=x.device)
        sums = all_reduce_sum(torch.cat([x.sum(dims), local]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), float(count.detach()))
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``module`` computing global-batch statistics: PyTorch's ``SyncBatchNorm``
    on a GPU, :class:`GlobalBatchNorm` elsewhere (``SyncBatchNorm`` runs on GPUs only). Parameters
    and buffers are kept (the same tensors), so optimisers built before stay valid."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new_child = _convert(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module
