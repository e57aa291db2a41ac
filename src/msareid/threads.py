"""How many CPU threads torch may use in this process, chosen on purpose.

Two processes that each take every core slow each other down many times over (oversubscription),
so every command that computes sets torch's intra-op threads from the cores this process may use
divided among the processes that share them: training ranks on one machine, parallel ablation
jobs. Data-loader workers run single-threaded (their work is per image, in parallel already).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


ENV = "MSAREID_THREADS"  # a parent process (e.g. ``msareid ablate --jobs``) sets it for its children


def threads_for(requested: int = 0, processes: int = 1) -> int:
    """``requested`` when positive, else ``$MSAREID_THREADS`` when set, else the available cores
    shared by ``processes`` (at least 1)."""
    if requested > 0:
        return requested
    from_env = os.environ.get(ENV, "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return max(1, available_cores() // max(1, processes))


def local_processes() -> int:
    """Processes that share this machine's cores: torchrun's ``LOCAL_WORLD_SIZE``, else 1."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def configure(requested: int = 0, processes: int | None = None) -> int:
    """Set torch's intra-op threads for this process; returns the number set."""
    import torch  # here, not at import time: commands that never use torch stay fast to start

    n = threads_for(requested, local_processes() if processes is None else processes)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def single_threaded_worker(_worker_id: int) -> None:
    """``worker_init_fn`` of data loaders: one torch thread a worker."""
    import torch

    torch.set_num_threads(1)
