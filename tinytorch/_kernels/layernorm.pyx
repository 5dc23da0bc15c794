"""Layer normalisation, compiled: each row read twice and written once, rows in parallel.

Same names, arguments and results as in ``reference.py``, which documents them. A row (one token's
features, a few hundred values) stays in the L1 cache between its passes: the statistics pass, then
the normalise-scale-shift pass; the backward's two row sums and its output likewise. The weight's
and bias's gradients are column sums over all rows, taken in blocks of columns, one block per task.
Sums are kept in double (see loops.pxd).
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from .loops cimport sum_of, sum_of_squared_deviations
from .contracts import epsilon, layer_norm_inputs, layer_norm_saved

cdef enum:
    # Below PARALLEL_MIN elements one thread does all rows: waking the team costs more than it saves.
    PARALLEL_MIN = 32768
    # columns per task of the weight and bias gradients: a few cache lines of every row
    COLUMN_BLOCK = 32


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
cdef void _backward_rows(const floating[:, ::1] g, const floating[:, ::1] x, const floating[::1] mean,
                         const floating[::1] invstd, const floating[::1] weight, bint has_weight,
                         floating[:, ::1] dx) noexcept:
    """dx = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = g * w, row by row."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], r, j
    cdef const floating* w = &weight[0] if has_weight else NULL
    cdef double a0, a1, a2, a3, c0, c1, c2, c3
    cdef floating m, s, mg, mgx, gx, xh
    cdef const floating* gr
    cdef const floating* xr
    cdef floating* dr
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for r in prange(n, schedule="static", use_threads_if=n * d >= PARALLEL_MIN):
            gr = &g[r, 0]
            xr = &x[r, 0]
            dr = &dx[r, 0]
            m = mean[r]
            s = invstd[r]
            # four partial sums of gx and of gx * xhat (see loops.pxd for why)
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = 0
            j = 0
            while j + 4 <= d:
                gx = gr[j] * w[j] if w != NULL else gr[j]
                a0 = a0 + gx
                c0 = c0 + gx * (xr[j] - m)
                gx = gr[j + 1] * w[j + 1] if w != NULL else gr[j + 1]
                a1 = a1 + gx
                c1 = c1 + gx * (xr[j + 1] - m)
                gx = gr[j + 2] * w[j + 2] if w != NULL else gr[j + 2]
                a2 = a2 + gx
                c2 = c2 + gx * (xr[j + 2] - m)
                gx = gr[j + 3] * w[j + 3] if w != NULL else gr[j + 3]
                a3 = a3 + gx
                c3 = c3 + gx * (xr[j + 3] - m)
                j = j + 4
            while j < d:
                gx = gr[j] * w[j] if w != NULL else gr[j]
                a0 = a0 + gx
                c0 = c0 + gx * (xr[j] - m)
                j = j + 1
            mg = <floating>(((a0 + a1) + (a2 + a3)) / d)
            mgx = <floating>(((c0 + c1) + (c2 + c3)) * s / d)  # mean(gx * xhat), xhat = (x - m) * s
            for j in range(d):
                gx = gr[j] * w[j] if w != NULL else gr[j]
                xh = (xr[j] - m) * s
                dr[j] = s * (gx - mg - xh * mgx)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _column_block(const floating[:, ::1] g, const floating[:, ::1] x, const floating[::1] mean,
                        const floating[::1] invstd, Py_ssize_t c0, Py_ssize_t c1, bint with_weight,
                        floating[::1] dw, floating[::1] db) noexcept nogil:
    """dw[c] = sum over rows of g * xhat, db[c] = sum over rows of g, for columns c0 <= c < c1 (<= COLUMN_BLOCK)."""
    cdef double sw[COLUMN_BLOCK]
    cdef double sb[COLUMN_BLOCK]
    cdef Py_ssize_t n = x.shape[0], width = c1 - c0, r, j
    cdef floating m, s
    for j in range(width):
        sw[j] = 0
        sb[j] = 0
    for r in range(n):
        m = mean[r]
        s = invstd[r]
        for j in range(width):
            sb[j] += g[r, c0 + j]
            sw[j] += g[r, c0 + j] * ((x[r, c0 + j] - m) * s)
    for j in range(width):
        db[c0 + j] = <floating>sb[j]
        if with_weight:
            dw[c0 + j] = <floating>sw[j]


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _backward_columns(const floating[:, ::1] g, const floating[:, ::1] x, const floating[::1] mean,
                            const floating[::1] invstd, bint with_weight, floating[::1] dw, floating[::1] db) noexcept:
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], blocks = (d + COLUMN_BLOCK - 1) // COLUMN_BLOCK, k
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for k in prange(blocks, schedule="static", use_threads_if=n * d >= PARALLEL_MIN):
            _column_block(g, x, mean, invstd, k * COLUMN_BLOCK, min(d, (k + 1) * COLUMN_BLOCK), with_weight, dw, db)


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
    dw = np.zeros(d, x.dtype)
    db = np.zeros(d, x.dtype)
    if n and d:
        w = _vector(weight, x.dtype)
        if x.dtype == np.float32:
            _backward_rows[float](grad, x, mean, invstd, w, weight is not None, dx)
            _backward_columns[float](grad, x, mean, invstd, weight is not None, dw, db)
        else:
            _backward_rows[double](grad, x, mean, invstd, w, weight is not None, dx)
            _backward_columns[double](grad, x, mean, invstd, weight is not None, dw, db)
    return dx, (None if weight is None else dw), db
