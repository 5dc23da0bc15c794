"""How long NumPy's BLAS threads spin after a matrix product, set when TinyTorch is imported.

A training step alternates NumPy matrix products (OpenBLAS's thread pool) with TinyTorch's compiled
loops (the OpenMP pool): a convolution is im2col, a product, then col2im; a GPT block is products
between attention, layer norm and GELU. After each product OpenBLAS keeps its worker threads
spinning, ready for the next one, for 2**28 clock ticks (about 0.1 s). On two cores that spinning
thread takes the core an OpenMP thread needs, so every compiled loop that follows a product runs at
about half speed (the GPT step's attention kernels under the profiler: 100 -> 51 ms per step). The OpenMP side already sleeps at once (``OMP_WAIT_POLICY=PASSIVE``, see
:mod:`tinytorch.core.kernels`); this module does the same for OpenBLAS by setting
``OPENBLAS_THREAD_TIMEOUT=4`` (its smallest value, 2**4 ticks). Measured on two cores, each side in
its own process: a 32->64 channel conv forward+backward 27 -> 22 ms, the reference CNN's training
step 84 -> 72 ms, the GPT benchmark's training step 310 -> 275 ms.

The price is a wake-up per multi-threaded product: a step of small products pays it several times
(a 784-128-10 MLP at batch 64: about 0.8 -> 1.1 ms per step).

Since the matmul kernel (``tinytorch/_kernels/gemm.pyx``) runs the framework's large products
from the kernels' own threads, OpenBLAS's pool serves only what is left to ``np.matmul``: stacked
(batched) products, small ones, the NumPy reference backend and a user's own NumPy code. The setting
still matters for those, and it matters where the matmul kernel cannot find its BLAS functions
(``tito system info``, "matrix products").

OpenBLAS reads the variable once, when NumPy loads it, so it counts only if TinyTorch is imported
before NumPy. A value already in the environment wins (``OPENBLAS_THREAD_TIMEOUT=28`` restores
OpenBLAS's own spin). Other BLAS libraries ignore the variable.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV_VAR", "SLEEP_AT_ONCE", "limit_blas_spin", "blas_wait_policy", "blas_threads_sleep"]

ENV_VAR = "OPENBLAS_THREAD_TIMEOUT"
SLEEP_AT_ONCE = "4"  # OpenBLAS clamps the value to 4..30: a thread spins 2**value clock ticks

_policy = "not set"
_sleeps = False


def limit_blas_spin() -> str:
    """Ask OpenBLAS's threads to sleep as soon as a product ends; returns :func:`blas_wait_policy`."""
    global _policy
    if "numpy" in sys.modules:  # NumPy, and its BLAS, loaded before TinyTorch: too late to change
        given = os.environ.get(ENV_VAR)
        # Whether the variable was already set when NumPy loaded cannot be seen from here: say so.
        _policy = f"{ENV_VAR}={given} (NumPy was imported first: in force only if set before that)" if given else (
            "BLAS threads spin after each product (NumPy was imported before TinyTorch; "
            f"import tinytorch first or set {ENV_VAR}={SLEEP_AT_ONCE})"
        )
        return _policy
    global _sleeps
    value = os.environ.setdefault(ENV_VAR, SLEEP_AT_ONCE)
    _policy = f"{ENV_VAR}={value}"
    _sleeps = value.strip().isdigit() and int(value) <= int(SLEEP_AT_ONCE)  # OpenBLAS raises smaller values to 4
    return _policy


def blas_threads_sleep() -> bool:
    """True when OpenBLAS's threads sleep as soon as a product ends (the setting reached NumPy's BLAS)."""
    return _sleeps


def blas_wait_policy() -> str:
    """What :func:`limit_blas_spin` found or set, for reports and ``tito system``."""
    return _policy
