"""Fixed heap thresholds for timing torch eager on glibc.

torch eager allocates every activation afresh. glibc serves blocks above its mmap threshold
(128 KiB at start) with a fresh ``mmap`` and page faults on first touch, and raises that
threshold each time such a block is freed, up to 32 MiB: a fresh process runs a model with
large activations slower than one that has already run many, and by how much depends on what
ran before. Measured on a 2-core AMD EPYC VM (torch 2.13, 1 thread, 224x224): MobileNetV2's
paired ratio to a fixed reference read 1.81-2.74x in fresh processes and 1.63x in a process
that had built a latency table, so the drift signature refused a table on the machine that
built it; with the thresholds fixed at start it read 1.59-1.68x in every process
(``results/latency/README.md``, "The drift signature on torch eager").

:func:`pin_malloc_thresholds` fixes them (``mallopt``, which also stops the dynamic
adjustment), once per process, before anything is timed. Elsewhere (no glibc) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024 * 1024
"""Blocks up to this size come from the heap (every activation of the models timed here)."""
MMAP_THRESHOLD_FALLBACK_BYTES = 32 * 1024 * 1024
"""Older glibc refuses thresholds above half its heap size (32 MiB on 64-bit): the most it takes."""
TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024
"""Free heap kept before it is returned to the system."""

_pinned: bool | None = None


def pin_malloc_thresholds() -> bool:
    """Fix glibc's mmap and trim thresholds for this process; True when they are fixed (now or
    before), False where the C library has no ``mallopt`` or refuses the values."""
    global _pinned
    if _pinned is None:
        mmap = (_mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                or _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK_BYTES))
        _pinned = mmap and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return _pinned


def _mallopt(parameter: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    return bool(mallopt is not None and mallopt(parameter, value) == 1)
