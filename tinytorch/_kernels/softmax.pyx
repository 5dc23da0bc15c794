"""Softmax and log-softmax over the last axis, compiled: one fused pass per row, rows in parallel.

Same names, arguments and results as in ``reference.py``, which documents them. The NumPy version
makes five passes over memory (max, subtract, exp, sum, divide) and allocates four temporaries;
here each row is read twice and written once, with no temporaries, and rows run on all threads.
"""

import numpy as np
from cython.parallel cimport prange
cimport cython
from cython cimport floating

from .fusedmath cimport fexp, flog
from .loops cimport sum_of, sum_of_centred_products

from .contracts import float_input, same_shape

# Below this many elements, waking a second thread costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 32768


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _softmax_rows(const floating[:, ::1] x, floating[:, ::1] y, bint take_log) noexcept:
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1], i, j
    cdef floating m, total
    cdef const floating* xr
    cdef floating* yr
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for i in prange(rows, schedule="static", use_threads_if=rows * n >= PARALLEL_MIN_ELEMENTS):
            xr = &x[i, 0]
            yr = &y[i, 0]
            m = xr[0]
            for j in range(1, n):
                if xr[j] > m:
                    m = xr[j]
            # exp into the output row first (a loop the compiler vectorises), then sum it.
            for j in range(n):
                yr[j] = fexp(xr[j] - m)
            total = <floating>sum_of(yr, n)
            if take_log:
                # (x - m) - log(total), not x - (m + log(total)): with logits near 1000 the second form
                # rounds m + log(total) to float32 first and loses the small log term (error ~1e-5).
                total = flog(total)
                for j in range(n):
                    yr[j] = (xr[j] - m) - total
            else:
                total = 1 / total
                for j in range(n):
                    yr[j] = yr[j] * total


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _softmax_grad_rows(const floating[:, ::1] y, const floating[:, ::1] g, floating[:, ::1] dx, bint from_log) noexcept:
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], i, j
    cdef floating acc
    cdef const floating* yr
    cdef const floating* gr
    cdef floating* dr
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for i in prange(rows, schedule="static", use_threads_if=rows * n >= PARALLEL_MIN_ELEMENTS):
            yr = &y[i, 0]
            gr = &g[i, 0]
            dr = &dx[i, 0]
            if from_log:
                acc = <floating>sum_of(gr, n)
                for j in range(n):
                    dr[j] = gr[j] - fexp(yr[j]) * acc
            else:
                acc = <floating>sum_of_centred_products(gr, yr, n, 0.0)
                for j in range(n):
                    dr[j] = yr[j] * (gr[j] - acc)


def _as_rows(a):
    """View an (..., n) C-contiguous array as (rows, n); a 0-length last axis stays 0 columns."""
    n = a.shape[-1] if a.ndim else 1
    return a.reshape(-1, n)


def _forward(kernel, x, bint take_log):
    x = float_input(kernel, "x", x)
    if x.ndim == 0:
        raise ValueError(f"{kernel}: x must have at least one axis, got a 0-d array")
    y = np.empty_like(x)
    if x.size == 0:
        return y
    if x.dtype == np.float32:
        _softmax_rows[float](_as_rows(x), _as_rows(y), take_log)
    else:
        _softmax_rows[double](_as_rows(x), _as_rows(y), take_log)
    return y


def _backward(kernel, y, grad, bint from_log):
    y = float_input(kernel, "y", y)
    grad = float_input(kernel, "grad", grad, dtype=y.dtype)
    same_shape(kernel, "grad", grad, y.shape)
    dx = np.empty_like(y)
    if y.size == 0:
        return dx
    if y.dtype == np.float32:
        _softmax_grad_rows[float](_as_rows(y), _as_rows(grad), _as_rows(dx), from_log)
    else:
        _softmax_grad_rows[double](_as_rows(y), _as_rows(grad), _as_rows(dx), from_log)
    return dx


def softmax_forward(x):
    return _forward("softmax_forward", x, False)


def softmax_backward(y, grad):
    return _backward("softmax_backward", y, grad, False)


def log_softmax_forward(x):
    return _forward("log_softmax_forward", x, True)


def log_softmax_backward(y, grad):
    return _backward("log_softmax_backward", y, grad, True)
