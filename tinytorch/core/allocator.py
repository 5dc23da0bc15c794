"""The C allocator's policy for large arrays, set once when TinyTorch is imported.

A training step allocates and frees the same large arrays again and again (activations, their
gradients, im2col columns, attention probabilities). glibc's default hands every block of more
than 128 KiB back to the operating system when it is freed (``mmap``/``munmap``, or trimming the
heap), so the next step's identical array starts as fresh pages, and touching a fresh page costs
a page fault. Measured on the reference CNN's training step (batch 64): 4,585 minor page faults
per step and about 15 % of its time, against none once freed memory is kept for reuse.

:func:`tune_allocator` asks glibc (through ``mallopt``) to serve arrays up to 64 MiB from its
heap and to keep up to 512 MiB of freed memory instead of returning it: what the process
peaked at stays resident, which the peak already paid for. Set ``TINYTORCH_MALLOC=system`` before
importing TinyTorch to keep the C library's own policy (another library's measurements, a
memory-tight machine). Other C libraries (macOS, musl, Windows) are left as they are.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["tune_allocator", "allocator_policy", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20  # blocks up to this size come from the heap, so freeing them keeps their pages
OLD_GLIBC_MMAP_MAX = 32 << 20  # glibc before 2.35 refuses thresholds above half its 64 MiB heap size
TRIM_THRESHOLD = 512 << 20  # freed memory kept at the top of the heap before any is returned

_policy = "system"


def tune_allocator() -> str:
    """Apply the policy above (once per process); returns the policy in force, as :func:`allocator_policy`."""
    global _policy
    if _policy != "system" or os.environ.get("TINYTORCH_MALLOC", "").lower() == "system":
        return _policy
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # glibc answers "glibc 2.x"; other C libraries do not
            return _policy
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (macOS, musl)
        return _policy
    try:
        # The symbols already loaded into this process, glibc's among them (find_library would spawn
        # a subprocess and cost ~20 ms of every import).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask: keep its defaults
        return _policy
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap = next((size for size in (MMAP_THRESHOLD, OLD_GLIBC_MMAP_MAX) if mallopt(M_MMAP_THRESHOLD, size)), None)
    if mmap is None:
        return _policy
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        _policy = f"glibc: heap for blocks up to {mmap >> 20} MiB, keeps {TRIM_THRESHOLD >> 20} MiB freed"
    return _policy


def allocator_policy() -> str:
    """What :func:`tune_allocator` set: ``"system"`` when the C library's own policy is in force."""
    return _policy
