"""The C allocator of a training process: keep freed memory for the next step.

A training step allocates and frees the same large activation buffers again and again. glibc's
``malloc`` serves every block above 32 MB with a fresh ``mmap`` and returns it to the system on
``free``, so each step touches those pages anew: hundreds of thousands of page faults a step, each
page zeroed by the kernel (bench/README.md: the tiny CNN's MSA step spent about 40% of its time
there). Serving every block from the heap and never trimming it removes that cost; the process
keeps its peak memory, which a training process reaches at every step anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory (no mmap for large blocks, no trimming).

    Returns whether it applied (False off Linux/glibc, where nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
