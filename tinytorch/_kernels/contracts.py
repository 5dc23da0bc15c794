"""Input checks shared by every kernel implementation.

A compiled kernel indexes raw memory without bounds checks, so its arguments are checked here, in
Python, before it drops the GIL: a wrong dtype or a shape mismatch becomes a clear error that names
the kernel, never a crash or a silently wrong answer. Non-contiguous input is copied once into a
C-contiguous array rather than rejected.
"""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_input(kernel: str, name: str, x, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array, or raise naming ``kernel`` and ``name``.

    ``ndim`` checks the rank; ``dtype`` (when given) is the dtype ``x`` must share with another
    argument of the same kernel.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}; expected float32 or float64")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but the other inputs are {np.dtype(dtype)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    return np.ascontiguousarray(x)


def same_shape(kernel: str, name: str, x: np.ndarray, expected: tuple[int, ...]) -> None:
    """Raise unless ``x.shape == expected``."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{kernel}: {name} has shape {tuple(x.shape)}; expected {tuple(expected)}")
