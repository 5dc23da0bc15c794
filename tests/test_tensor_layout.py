"""broadcast_shape and contiguous_strides (lesson 02's exercises) agree with NumPy."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import broadcast_pairs, shapes
from tinytorch.core.tensor import broadcast_shape, contiguous_strides


@given(broadcast_pairs(max_dims=5))
def test_broadcast_shape_matches_numpy(pair):
    a, b = pair
    assert broadcast_shape(a, b) == np.broadcast_shapes(a, b)
    assert broadcast_shape(b, a) == np.broadcast_shapes(a, b)


@given(shapes(max_dims=4, min_side=0), shapes(max_dims=4, min_side=0))
def test_broadcast_shape_fails_exactly_when_numpy_does(a, b):
    try:
        expected = np.broadcast_shapes(a, b)
    except ValueError:
        with pytest.raises(ValueError, match=re.escape(f"broadcast: shapes {a} and {b} cannot be broadcast together")):
            broadcast_shape(a, b)
    else:
        assert broadcast_shape(a, b) == expected


def test_broadcast_shape_error_names_the_axis():
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(3, 2\) cannot .*: axis -2 has sizes 2 and 3"):
        broadcast_shape((2, 3), (3, 2))
    with pytest.raises(ValueError, match=r"shapes \(8, 4, 3\) and \(2, 1\) cannot .*: axis -2 has sizes 4 and 2"):
        broadcast_shape((8, 4, 3), (2, 1))


@given(shapes(max_dims=5, min_side=1, max_side=5), st.sampled_from([np.int8, np.float16, np.float32, np.float64]))
def test_contiguous_strides_match_numpy(shape, dtype):
    array = np.zeros(shape, dtype=dtype)
    assert contiguous_strides(shape, array.itemsize) == array.strides


def test_contiguous_strides_tell_a_view_from_a_contiguous_array():
    x = np.zeros((3, 4), dtype=np.float32)
    assert contiguous_strides(x.T.shape, 4) != x.T.strides
    assert contiguous_strides(np.ascontiguousarray(x.T).shape, 4) == np.ascontiguousarray(x.T).strides
