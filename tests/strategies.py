"""Hypothesis strategies shared by the tests: shapes with size-1 axes, broadcast pairs, non-contiguous arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes; sides start at 1 so size-1 axes are drawn often."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_pairs(max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    """Two shapes that broadcast together (one may have fewer axes or size-1 axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims, max_side=max_side).map(
        lambda s: s.input_shapes
    )


@st.composite
def reduction_axes(draw, ndim: int):
    """An ``axis`` argument for a reduction over ``ndim`` axes: None, an int or a tuple of distinct axes (any sign)."""
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if ndim == 0 or kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim)))


@st.composite
def float64_arrays(
    draw, shape, low: float = -2.0, high: float = 2.0, layout: str | None = None, dtype=np.float64
) -> np.ndarray:
    """A float64 array of ``shape``; ``layout`` is "contiguous", "transposed" or "sliced" (drawn when None).

    ``dtype=np.float32`` gives the same arrays in float32, for value and dtype tests.

    "transposed" builds the array as the transpose of a contiguous one, "sliced" as every second
    element of a larger one: both are non-contiguous views with the requested shape.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layout = layout or draw(st.sampled_from(["contiguous", "transposed", "sliced"]))
    shape = tuple(shape)
    if layout == "transposed" and len(shape) >= 2:
        base = rng.uniform(low, high, size=shape[::-1]).astype(dtype, copy=False)
        return base.T
    if layout == "sliced" and len(shape) >= 1:
        base = rng.uniform(low, high, size=(shape[0] * 2,) + shape[1:]).astype(dtype, copy=False)
        return base[::2]
    return rng.uniform(low, high, size=shape).astype(dtype, copy=False)


def leaf(array: np.ndarray) -> tt.Tensor:
    """A float64 leaf tensor that requires grad, sharing ``array`` (so its layout is kept)."""
    return tt.from_numpy(array, requires_grad=True)
