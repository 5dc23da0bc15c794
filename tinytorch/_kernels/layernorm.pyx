"""Layer normalisation, compiled: each row read twice and written once, rows in parallel.

Same names, arguments and results as in ``reference.py``, which documents them. A row (one token's
features, a few hundred values) stays in the L1 cache between its passes: the statistics pass, then
the normalise-scale-shift pass; the backward's two row sums and its output likewise. The weight's
and bias's gradients are column sums over all rows: the backward's second pass over a row adds the
row into its chunk's partial sums, and the chunks' sums are added at the end, in a fixed order.
Sums are kept in double (see loops.pxd).
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from .loops cimport TwoSums, sum_of, sum_of_squared_deviations, weighted_sums
from .contracts import epsilon, layer_norm_inputs, layer_norm_saved

cdef enum:
    # Below PARALLEL_MIN elements one thread does all rows: waking the team costs more than it saves.
    PARALLEL_MIN = 32768
    # rows per task of the backward: each task also sums its rows' weight and bias gradients
    CHUNK_ROWS = 32


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _forward(const floating[:, ::1] x, const floating[::1] weight, bint has_weight, const floating[::1] bias,
                   bint has_bias, double eps, floating[:, ::1] y, floating[::1] mean, floating[::1] invstd) noexcept:
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], r, j
    cdef const floating* w = &weight[0] if has_weight else NULL
    cdef const floating* b = &bias[0] if has_bias else NULL
    cdef double m, s
    cdef floating fm, fs
    cdef const floating* xr
    cdef floating* yr
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for r in prange(n, schedule="static", use_threads_if=n * d >= PARALLEL_MIN):
            xr = &x[r, 0]
            yr = &y[r, 0]
            m = sum_of(xr, d) / d
            s = 1.0 / sqrt(sum_of_squared_deviations(xr, d, m) / d + eps)
            fm = <floating>m
            fs = <floating>s
            mean[r] = fm
            invstd[r] = fs
            if w != NULL and b != NULL:
                for j in range(d):
                    yr[j] = (xr[j] - fm) * fs * w[j] + b[j]
            elif w != NULL:
                for j in range(d):
                    yr[j] = (xr[j] - fm) * fs * w[j]
            elif b != NULL:
                for j in range(d):
                    yr[j] = (xr[j] - fm) * fs + b[j]
            else:
                for j in range(d):
                    yr[j] = (xr[j] - fm) * fs


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _backward(const floating[:, ::1] g, const floating[:, ::1] x, const floating[::1] mean,
                    const floating[::1] invstd, const floating[::1] weight, floating[:, ::1] dx,
                    double[:, ::1] partial) noexcept:
    """dx = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = g * w, row by row; partial[k] gets
    chunk k's column sums of g * xhat (first d) and of g (last d), for the weight and bias gradients."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], chunks = partial.shape[0], k, r, j
    cdef const floating* w = &weight[0]
    cdef TwoSums sums
    cdef floating m, s, mg, mgx, xh
    cdef const floating* gr
    cdef const floating* xr
    cdef floating* dr
    cdef double* pw
    cdef double* pb
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for k in prange(chunks, schedule="static", use_threads_if=n * d >= PARALLEL_MIN):
            pw = &partial[k, 0]
            pb = &partial[k, d]
            for r in range(k * CHUNK_ROWS, min(n, (k + 1) * CHUNK_ROWS)):
                gr = &g[r, 0]
                xr = &x[r, 0]
                dr = &dx[r, 0]
                m = mean[r]
                s = invstd[r]
                sums = weighted_sums(gr, w, xr, d, m)  # of gx and of gx * (x - mean)
                mg = <floating>(sums.plain / d)
                mgx = <floating>(sums.centred * s / d)  # mean(gx * xhat), xhat = (x - m) * s
                for j in range(d):
                    xh = (xr[j] - m) * s
                    dr[j] = s * (gr[j] * w[j] - mg - xh * mgx)
                    pw[j] = pw[j] + gr[j] * xh
                    pb[j] = pb[j] + gr[j]


def _vector(v, dtype):
    """``v``, or a one-element placeholder for an absent weight or bias (a memoryview cannot be None)."""
    return np.zeros(1, dtype) if v is None else v


def layer_norm_forward(x, weight, bias, eps):
    x, weight, bias = layer_norm_inputs("layer_norm_forward", x, weight, bias)
    eps = epsilon("layer_norm_forward", eps)
    n, d = x.shape
    y = np.empty_like(x)
    mean = np.empty(n, x.dtype)
    invstd = np.empty(n, x.dtype)
    if n and d:
        w, b = _vector(weight, x.dtype), _vector(bias, x.dtype)
        if x.dtype == np.float32:
            _forward[float](x, w, weight is not None, b, bias is not None, eps, y, mean, invstd)
        else:
            _forward[double](x, w, weight is not None, b, bias is not None, eps, y, mean, invstd)
    elif n:  # rows of no features: NumPy's mean of nothing is NaN, and so is the reference's
        mean.fill(np.nan)
        invstd.fill(np.nan)
    return y, mean, invstd


def layer_norm_backward(grad, x, mean, invstd, weight):
    grad, x, mean, invstd, weight = layer_norm_saved("layer_norm_backward", grad, x, mean, invstd, weight)
    n, d = x.shape
    dx = np.empty_like(x)
    if not (n and d):
        return dx, (None if weight is None else np.zeros(d, x.dtype)), np.zeros(d, x.dtype)
    # Fixed chunks of rows, not one per thread: the column sums come out the same on any thread count.
    partial = np.zeros(((n + CHUNK_ROWS - 1) // CHUNK_ROWS, 2 * d))
    w = np.ones(d, x.dtype) if weight is None else weight
    if x.dtype == np.float32:
        _backward[float](grad, x, mean, invstd, w, dx, partial)
    else:
        _backward[double](grad, x, mean, invstd, w, dx, partial)
    sums = partial.sum(axis=0).astype(x.dtype)
    return dx, (None if weight is None else sums[:d]), sums[d:]
