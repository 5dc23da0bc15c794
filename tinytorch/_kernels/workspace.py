"""Scratch memory that compiled kernels reuse from one call to the next.

A convolution needs a column buffer many times the size of its input, on every forward and
backward. Allocating it per call costs more than filling it: a fresh page must be faulted in and
zeroed by the operating system before the kernel can write it (measured ~2.4x slower to touch
than a reused page on the course's VMs). So each buffer is kept, per role, dtype and thread, and
grows when a larger one is asked for.

A scratch array is valid only inside the kernel call that asked for it: the next call overwrites
it. A kernel never returns one (or a view of one) to its caller.
"""

import math
import threading

import numpy as np

_local = threading.local()


def scratch(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype``, with unspecified contents, reused across calls.

    ``role`` names the buffer ("conv.cols"); two buffers needed at the same time need two roles.
    Each thread has its own buffers, so kernels running in different threads never share one.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    key = (role, np.dtype(dtype))
    size = math.prod(shape)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


def release() -> None:
    """Free the calling thread's scratch buffers (they are allocated again when next needed)."""
    _local.__dict__.pop("buffers", None)


def held_bytes() -> int:
    """Bytes of scratch memory the calling thread holds."""
    return sum(b.nbytes for b in _local.__dict__.get("buffers", {}).values())
