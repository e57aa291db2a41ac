"""One process or many: the rank, world size and device of this process, from torchrun's variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    group: bool = False  # a process group exists (torchrun launched this process, even as one rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Training goes through DistributedDataParallel and collectives (under torchrun)."""
        return self.group

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def resolve_device(name: str, local_rank: int = 0, hint: str = 'pass device="cpu"') -> torch.device:
    """``auto`` is the local GPU when there is one, else the CPU; a bare ``cuda`` is this process's
    own GPU (``cuda:LOCAL_RANK``), so DDP gets a device index under torchrun. ``hint`` (how to ask
    for the CPU instead) ends the message of a :class:`~msareid.errors.DeviceError`."""
    asked = name
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda":
        name = f"cuda:{local_rank}"
    from msareid.errors import DeviceError, UserError

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {asked!r} was asked for but no CUDA device is available", hint)
    return device


def setup(device: str = "auto") -> DistEnv:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, ...), if any.

    NCCL on GPUs, gloo on CPUs. A process started without torchrun needs no process group; under
    torchrun even one rank joins one, so one GPU exercises the same DDP and NCCL code as many.
    """
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank, 'set train.device = "cpu"')
    if launched and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local_rank, dev, group=launched or world > 1)


def cleanup(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()
