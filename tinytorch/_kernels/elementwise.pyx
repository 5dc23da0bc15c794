"""ReLU and batch normalisation, compiled: few passes over memory, all threads, no temporaries.

Same names, arguments and results as in ``reference.py``, which documents them. NumPy's versions
are single-threaded and build a temporary per operator (batch-norm's forward makes six passes
over the activation); these read each input the fewest times the arithmetic allows and write the
result once. Batch-norm works channel by channel, one channel per task: a channel's values are
re-read from cache, not memory, for its second pass. Sums are taken in double (see loops.pxd).
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from .loops cimport sum_of, sum_of_centred_products, sum_of_squared_deviations
from .contracts import batchnorm_inputs, epsilon, float_input, same_shape

cdef enum:
    # Below PARALLEL_MIN elements one thread does the whole ReLU: waking the team costs more than it
    # saves. Above it, threads take CHUNK-element pieces.
    PARALLEL_MIN = 32768
    CHUNK = 16384


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void _relu_span(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = 0 if x[i] <= 0 else x[i]  # a NaN fails the test and passes through, as in np.maximum


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void _relu_grad_span(const floating* y, const floating* g, floating* dx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(n):
        v = g[i]  # loaded unconditionally, so the select needs no branch and the loop vectorises
        dx[i] = v if y[i] > 0 else 0


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _relu(const floating[::1] x, floating[::1] y) noexcept:
    cdef Py_ssize_t n = x.shape[0], chunk, start
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        if n < PARALLEL_MIN:
            _relu_span(&x[0], &y[0], n)
            return
        for chunk in prange((n + CHUNK - 1) // CHUNK, schedule="static"):
            start = chunk * CHUNK
            _relu_span(&x[start], &y[start], min(CHUNK, n - start))


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _relu_grad(const floating[::1] y, const floating[::1] g, floating[::1] dx) noexcept:
    cdef Py_ssize_t n = y.shape[0], chunk, start
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        if n < PARALLEL_MIN:
            _relu_grad_span(&y[0], &g[0], &dx[0], n)
            return
        for chunk in prange((n + CHUNK - 1) // CHUNK, schedule="static"):
            start = chunk * CHUNK
            _relu_grad_span(&y[start], &g[start], &dx[start], min(CHUNK, n - start))


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _bn_train(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta, double eps,
                    floating[:, :, ::1] y, floating[::1] mean_out, floating[::1] invstd_out) noexcept:
    # x, y: (N, C, L). Per channel: the mean, then the squared deviations from it (two passes: one
    # pass of sum and sum of squares cancels catastrophically when the mean is large), then y.
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1], size = x.shape[2], c, i, q
    cdef double count = n * size, total, deviation, mean, invstd
    cdef floating fmean, scale, shift
    cdef const floating* src
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for c in prange(channels, schedule="static"):
            total = 0
            for i in range(n):
                total = total + sum_of(&x[i, c, 0], size)
            mean = total / count
            deviation = 0
            for i in range(n):
                deviation = deviation + sum_of_squared_deviations(&x[i, c, 0], size, mean)
            invstd = 1 / sqrt(deviation / count + eps)
            fmean = <floating>mean
            scale = <floating>(invstd * gamma[c])
            shift = beta[c]
            for i in range(n):
                src = &x[i, c, 0]
                dst = &y[i, c, 0]
                for q in range(size):
                    dst[q] = (src[q] - fmean) * scale + shift
            mean_out[c] = fmean
            invstd_out[c] = <floating>invstd


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _bn_affine(const floating[:, :, ::1] x, const floating[::1] scale, const floating[::1] shift,
                     floating[:, :, ::1] y) noexcept:
    # y[n, c, :] = x[n, c, :] * scale[c] + shift[c], one (n, c) plane per task.
    cdef Py_ssize_t channels = x.shape[1], size = x.shape[2], task, i, c, q
    cdef const floating* src
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(x.shape[0] * channels, schedule="static"):
            i = task // channels
            c = task - i * channels
            src = &x[i, c, 0]
            dst = &y[i, c, 0]
            for q in range(size):
                dst[q] = src[q] * scale[c] + shift[c]


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _bn_grad(const floating[:, :, ::1] g, const floating[:, :, ::1] x, const floating[::1] mean_in,
                   const floating[::1] invstd_in, const floating[::1] gamma, floating[:, :, ::1] dx,
                   floating[::1] dgamma_out, floating[::1] dbeta_out) noexcept:
    # dx = gamma * invstd / M * (M g - dbeta - xhat dgamma) = k_g * g - k_0 - k_x * (x - mean)
    cdef Py_ssize_t n = x.shape[0], channels = x.shape[1], size = x.shape[2], c, i, q
    cdef double count = n * size, dbeta, dgamma, mean, invstd, k
    cdef floating fmean, k_g, k_0, k_x
    cdef const floating* gs
    cdef const floating* xs
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for c in prange(channels, schedule="static"):
            mean = mean_in[c]
            invstd = invstd_in[c]
            dbeta = 0
            dgamma = 0
            for i in range(n):
                dbeta = dbeta + sum_of(&g[i, c, 0], size)
                dgamma = dgamma + sum_of_centred_products(&g[i, c, 0], &x[i, c, 0], size, mean)
            dgamma = dgamma * invstd
            k = gamma[c] * invstd
            fmean = <floating>mean
            k_g = <floating>k
            k_0 = <floating>(k * dbeta / count)
            k_x = <floating>(k * invstd * dgamma / count)
            for i in range(n):
                gs = &g[i, c, 0]
                xs = &x[i, c, 0]
                dst = &dx[i, c, 0]
                for q in range(size):
                    dst[q] = k_g * gs[q] - k_0 - k_x * (xs[q] - fmean)
            dgamma_out[c] = <floating>dgamma
            dbeta_out[c] = <floating>dbeta


def _as_ncl(a):
    """View an (N, C, ...) C-contiguous array as (N, C, L): each (n, c) pair's values in one row."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def relu_forward(x):
    x = float_input("relu_forward", "x", x)
    y = np.empty_like(x)
    if x.size == 0:
        return y
    if x.dtype == np.float32:
        _relu[float](x.reshape(-1), y.reshape(-1))
    else:
        _relu[double](x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(y, grad):
    y = float_input("relu_backward", "y", y)
    grad = float_input("relu_backward", "grad", grad, dtype=y.dtype)
    same_shape("relu_backward", "grad", grad, y.shape)
    dx = np.empty_like(y)
    if y.size == 0:
        return dx
    if y.dtype == np.float32:
        _relu_grad[float](y.reshape(-1), grad.reshape(-1), dx.reshape(-1))
    else:
        _relu_grad[double](y.reshape(-1), grad.reshape(-1), dx.reshape(-1))
    return dx


def batchnorm_forward_train(x, gamma, beta, eps):
    name = "batchnorm_forward_train"
    x, gamma, beta = batchnorm_inputs(name, x, gamma=gamma, beta=beta)
    eps = epsilon(name, eps)
    if x.size == 0:
        raise ValueError(f"{name}: x of shape {x.shape} has no values to take statistics of")
    y = np.empty_like(x)
    mean = np.empty(x.shape[1], dtype=x.dtype)
    invstd = np.empty(x.shape[1], dtype=x.dtype)
    if x.dtype == np.float32:
        _bn_train[float](_as_ncl(x), gamma, beta, eps, _as_ncl(y), mean, invstd)
    else:
        _bn_train[double](_as_ncl(x), gamma, beta, eps, _as_ncl(y), mean, invstd)
    return y, mean, invstd


def batchnorm_forward_eval(x, running_mean, running_var, gamma, beta, eps):
    name = "batchnorm_forward_eval"
    x, mean, var, gamma, beta = batchnorm_inputs(
        name, x, running_mean=running_mean, running_var=running_var, gamma=gamma, beta=beta
    )
    eps = epsilon(name, eps)
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    y = np.empty_like(x)
    if x.size == 0:
        return y
    if x.dtype == np.float32:
        _bn_affine[float](_as_ncl(x), scale, shift, _as_ncl(y))
    else:
        _bn_affine[double](_as_ncl(x), scale, shift, _as_ncl(y))
    return y


def batchnorm_backward(grad, x, mean, invstd, gamma):
    name = "batchnorm_backward"
    x, mean, invstd, gamma = batchnorm_inputs(name, x, mean=mean, invstd=invstd, gamma=gamma)
    grad = float_input(name, "grad", grad, dtype=x.dtype)
    same_shape(name, "grad", grad, x.shape)
    dx = np.empty_like(x)
    dgamma = np.zeros(x.shape[1], dtype=x.dtype)
    dbeta = np.zeros(x.shape[1], dtype=x.dtype)
    if x.size == 0:
        return dx, dgamma, dbeta
    if x.dtype == np.float32:
        _bn_grad[float](_as_ncl(grad), _as_ncl(x), mean, invstd, gamma, _as_ncl(dx), dgamma, dbeta)
    else:
        _bn_grad[double](_as_ncl(grad), _as_ncl(x), mean, invstd, gamma, _as_ncl(dx), dgamma, dbeta)
    return dx, dgamma, dbeta
