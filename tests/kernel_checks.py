"""Helpers for the kernel tests: inputs in several memory layouts, per-dtype tolerances, finite differences."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64)
LAYOUTS = ("contiguous", "transposed", "sliced")

# Compiled and reference kernels add the same products in different orders: float32 agrees to a few
# ulps of the largest partial sum, float64 to rounding.
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}


def laid_out(values: np.ndarray, dtype, layout: str) -> np.ndarray:
    """``values`` as ``dtype`` in ``layout``: C-contiguous, Fortran-ordered ("transposed"), or every
    second row of a larger buffer ("sliced"). The last two are non-contiguous views."""
    values = np.asarray(values, dtype=dtype)
    if layout == "transposed" and values.ndim >= 2:
        return np.asfortranarray(values)
    if layout == "sliced" and values.ndim >= 1:
        base = np.zeros((2 * values.shape[0],) + values.shape[1:], dtype=dtype)
        base[::2] = values
        return base[::2]
    return np.ascontiguousarray(values)


@st.composite
def arrays(draw, shape, dtype, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """A uniform random array of ``shape`` and ``dtype`` in a drawn layout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return laid_out(rng.uniform(low, high, size=shape), dtype, draw(st.sampled_from(LAYOUTS)))


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, scale: float = 1.0) -> None:
    """Same shape and dtype, and equal within the dtype's tolerance times ``scale``."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    tol = TOLERANCE[np.dtype(expected.dtype)] * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def numeric_vjp(f: Callable[..., np.ndarray], inputs: list[np.ndarray], cotangent: np.ndarray, eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of L = sum(f(*inputs) * cotangent) with respect to every input (float64)."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    grads = []
    for a in inputs:
        grad = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            original = a[idx]
            a[idx] = original + eps
            plus = np.sum(f(*inputs) * cotangent)
            a[idx] = original - eps
            minus = np.sum(f(*inputs) * cotangent)
            a[idx] = original
            grad[idx] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def assert_vjp(name: str, analytic: list[np.ndarray], numeric: list[np.ndarray], labels: list[str]) -> None:
    """Each backward gradient matches its finite-difference estimate (float64, tolerance 1e-6 + 1e-5 relative)."""
    for label, a, n in zip(labels, analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-6, err_msg=f"{name}: gradient of {label}")


def torch_oracle():
    """PyTorch, imported only for tests that compare against it; the test is skipped when it is absent."""
    return pytest.importorskip("torch", reason="PyTorch is the oracle for these comparisons and is not installed")
