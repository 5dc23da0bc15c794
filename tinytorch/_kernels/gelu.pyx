"""GELU, compiled: one pass per direction, vectorised, all threads.

Same names, arguments and results as in ``reference.py``, which documents them. The NumPy reference
evaluates Cody's erf with boolean masks and about twenty temporaries; on the (B*T, 4*d_model)
activations of a transformer's MLP it was the largest single cost of a training step. Here each
element is one straight-line formula the compiler turns into AVX code:

- float32: branch-free C formulas (``gelumath.pxd``): erf from a rational approximation (absolute
  error 4.2e-7) and the vectorisable ``tt_expf``;
- float64: libm's ``erf`` and ``exp``, exact to rounding, for gradient checks.
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport erf, exp, tanh

from .gelumath cimport tt_gelu_f, tt_gelu_slope_f, tt_gelu_tanh_f, tt_gelu_tanh_slope_f
from .contracts import float_input, gelu_approximation, same_shape

cdef enum:
    # Below PARALLEL_MIN elements one thread does the whole array; above it, threads take CHUNK pieces.
    PARALLEL_MIN = 32768
    CHUNK = 8192

cdef double SQRT_2_OVER_PI = 0.7978845608028654
cdef double INV_SQRT_2 = 0.7071067811865476
cdef double INV_SQRT_2PI = 0.3989422804014327
cdef double GELU_CUBIC = 0.044715


cdef inline double gelu_d(double v, bint tanh_form) noexcept nogil:
    if tanh_form:
        return 0.5 * v * (1 + tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)))
    return 0.5 * v * (1 + erf(v * INV_SQRT_2))


cdef inline double gelu_slope_d(double v, bint tanh_form) noexcept nogil:
    cdef double t
    if tanh_form:
        t = tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))
        return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v)
    return 0.5 * (1 + erf(v * INV_SQRT_2)) + v * INV_SQRT_2PI * exp(-0.5 * v * v)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void _gelu_span(const floating* x, floating* y, Py_ssize_t n, bint tanh_form) noexcept nogil:
    """y = GELU(x) over n elements; the float32 loops are branch-free and vectorise (gelumath.pxd)."""
    cdef Py_ssize_t i
    if floating is float:
        if tanh_form:
            for i in range(n):
                y[i] = tt_gelu_tanh_f(x[i])
        else:
            for i in range(n):
                y[i] = tt_gelu_f(x[i])
    else:
        for i in range(n):
            y[i] = gelu_d(x[i], tanh_form)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void _gelu_grad_span(const floating* x, const floating* g, floating* dx, Py_ssize_t n,
                                 bint tanh_form) noexcept nogil:
    """dx = g * GELU'(x) over n elements."""
    cdef Py_ssize_t i
    if floating is float:
        if tanh_form:
            for i in range(n):
                dx[i] = g[i] * tt_gelu_tanh_slope_f(x[i])
        else:
            for i in range(n):
                dx[i] = g[i] * tt_gelu_slope_f(x[i])
    else:
        for i in range(n):
            dx[i] = g[i] * gelu_slope_d(x[i], tanh_form)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _gelu(const floating[::1] x, floating[::1] y, bint tanh_form) noexcept:
    cdef Py_ssize_t n = x.shape[0], chunk, start
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        if n < PARALLEL_MIN:
            if n:
                _gelu_span(&x[0], &y[0], n, tanh_form)
            return
        for chunk in prange((n + CHUNK - 1) // CHUNK, schedule="static"):
            start = chunk * CHUNK
            _gelu_span(&x[start], &y[start], min(CHUNK, n - start), tanh_form)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _gelu_grad(const floating[::1] x, const floating[::1] g, floating[::1] dx, bint tanh_form) noexcept:
    cdef Py_ssize_t n = x.shape[0], chunk, start
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        if n < PARALLEL_MIN:
            if n:
                _gelu_grad_span(&x[0], &g[0], &dx[0], n, tanh_form)
            return
        for chunk in prange((n + CHUNK - 1) // CHUNK, schedule="static"):
            start = chunk * CHUNK
            _gelu_grad_span(&x[start], &g[start], &dx[start], min(CHUNK, n - start), tanh_form)


def gelu_forward(x, approximate="none"):
    x = float_input("gelu_forward", "x", x)
    tanh_form = gelu_approximation("gelu_forward", approximate) == "tanh"
    y = np.empty_like(x)
    if x.dtype == np.float32:
        _gelu[float](x.reshape(-1), y.reshape(-1), tanh_form)
    else:
        _gelu[double](x.reshape(-1), y.reshape(-1), tanh_form)
    return y


def gelu_backward(x, grad, approximate="none"):
    x = float_input("gelu_backward", "x", x)
    grad = float_input("gelu_backward", "grad", grad, dtype=x.dtype)
    same_shape("gelu_backward", "grad", grad, x.shape)
    tanh_form = gelu_approximation("gelu_backward", approximate) == "tanh"
    dx = np.empty_like(x)
    if x.dtype == np.float32:
        _gelu_grad[float](x.reshape(-1), grad.reshape(-1), dx.reshape(-1), tanh_form)
    else:
        _gelu_grad[double](x.reshape(-1), grad.reshape(-1), dx.reshape(-1), tanh_form)
    return dx
