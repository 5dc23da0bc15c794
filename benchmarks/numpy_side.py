"""NumPy's side: the matrix products alone, on NumPy's BLAS, as floors that no BLAS-based kernel can beat."""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import specs


def describe() -> dict[str, str]:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {"NumPy": f"{np.__version__} (BLAS {blas.get('name', '?')} {blas.get('version', '')})"}


def conv2d_blas_floor(c_in: int, c_out: int, side: int) -> Callable[[], object]:
    """A 3x3 convolution's three matrix products (forward, weight gradient, input gradient) as im2col
    shapes them: (F, 9C) @ (9C, N*S*S) and its two transposes."""
    weight = specs.conv_inputs(c_in, c_out, side)["weight"].reshape(c_out, -1)
    cols = specs.normal((weight.shape[1], specs.BATCH * side * side), 9)
    product = np.empty((c_out, cols.shape[1]), dtype=np.float32)

    def run():
        np.matmul(weight, cols, out=product)  # forward
        np.matmul(product, cols.T)  # weight gradient
        np.matmul(weight.T, product)  # window gradients

    return run
