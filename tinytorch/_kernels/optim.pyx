"""The optimizer steps, compiled: one fused loop over memory, in place, split across threads.

Same names, arguments and results as in ``reference.py``, which documents them and states the
update formulas (those of torch.optim). The NumPy version walks memory once per operator, with
temporaries; here each element of the parameter, gradient and state is read once and written once,
and a large tensor is cut into blocks of ``BLOCK`` elements, handed out to the threads in contiguous
runs. A tensor of one block runs on the calling thread: waking the others would cost more.
"""

import math

import numpy as np
from cython.parallel cimport prange
cimport cython
from cython cimport floating

from .fusedmath cimport fsqrt

from .optim_contracts import adam_inputs, rmsprop_inputs, sgd_inputs

cdef Py_ssize_t BLOCK = 1 << 15


@cython.cdivision(True)
cdef inline void _sgd_block(floating* p, const floating* g, floating* buf, Py_ssize_t start, Py_ssize_t stop,
                            floating lr, floating momentum, floating keep_grad, floating weight_decay,
                            bint nesterov, bint first_step) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, b
    for i in range(start, stop):
        d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        if buf != NULL:
            b = d if first_step else buf[i] * momentum + keep_grad * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] - lr * d


@cython.cdivision(True)
cdef inline void _adam_block(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                             Py_ssize_t start, Py_ssize_t stop, floating step_size, floating new_grad,
                             floating beta2, floating new_sq, floating eps, floating weight_decay,
                             floating shrink) noexcept nogil:
    # step_size and eps come pre-multiplied by sqrt(1 - beta2**step) (see adam_step), so the update
    # m / (sqrt(v) / bias2_sqrt + eps) costs one division per element instead of two: the vector
    # divider, not memory, had been the limit on two cores.
    cdef Py_ssize_t i
    cdef floating gi, mi, vi, second
    for i in range(start, stop):
        gi = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        mi = m[i] + new_grad * (gi - m[i])
        vi = v[i] * beta2 + new_sq * gi * gi
        m[i] = mi
        v[i] = vi
        second = vi
        if vmax != NULL:
            if vmax[i] > second:
                second = vmax[i]
            vmax[i] = second
        p[i] = p[i] * shrink - step_size * (mi / (fsqrt(second) + eps))


@cython.cdivision(True)
cdef inline void _rmsprop_block(floating* p, const floating* g, floating* sq, floating* buf, floating* gavg,
                                Py_ssize_t start, Py_ssize_t stop, floating lr, floating alpha, floating new_sq,
                                floating eps, floating weight_decay, floating momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating gi, si, ai, d
    for i in range(start, stop):
        gi = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
        si = sq[i] * alpha + new_sq * gi * gi
        sq[i] = si
        if gavg != NULL:  # centered: subtract the squared mean gradient
            ai = gavg[i] + new_sq * (gi - gavg[i])
            gavg[i] = ai
            si = si - ai * ai
        d = gi / (fsqrt(si) + eps)
        if buf != NULL:
            d = buf[i] * momentum + d
            buf[i] = d
        p[i] = p[i] - lr * d


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline floating* _data(floating[::1] x) noexcept nogil:
    return &x[0] if x.shape[0] > 0 else NULL


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _sgd(floating[::1] p, const floating[::1] g, floating[::1] buf, bint has_buf, floating lr,
               floating momentum, floating keep_grad, floating weight_decay, bint nesterov,
               bint first_step) noexcept:
    cdef Py_ssize_t n = p.shape[0], blocks = (n + BLOCK - 1) // BLOCK, c
    cdef floating* b = _data(buf) if has_buf else NULL
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for c in prange(blocks, schedule="static", use_threads_if=blocks > 1):
            _sgd_block(&p[0], &g[0], b, c * BLOCK, min(n, c * BLOCK + BLOCK), lr, momentum, keep_grad, weight_decay,
                       nesterov, first_step)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, floating[::1] vmax,
                bint amsgrad, floating step_size, floating new_grad, floating beta2, floating new_sq,
                floating eps, floating weight_decay, floating shrink) noexcept:
    cdef Py_ssize_t n = p.shape[0], blocks = (n + BLOCK - 1) // BLOCK, c
    cdef floating* most = _data(vmax) if amsgrad else NULL
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for c in prange(blocks, schedule="static", use_threads_if=blocks > 1):
            _adam_block(&p[0], &g[0], &m[0], &v[0], most, c * BLOCK, min(n, c * BLOCK + BLOCK), step_size, new_grad,
                        beta2, new_sq, eps, weight_decay, shrink)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _rmsprop(floating[::1] p, const floating[::1] g, floating[::1] sq, floating[::1] buf, bint has_buf,
                   floating[::1] gavg, bint centered, floating lr, floating alpha, floating new_sq, floating eps,
                   floating weight_decay, floating momentum) noexcept:
    cdef Py_ssize_t n = p.shape[0], blocks = (n + BLOCK - 1) // BLOCK, c
    cdef floating* b = _data(buf) if has_buf else NULL
    cdef floating* a = _data(gavg) if centered else NULL
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for c in prange(blocks, schedule="static", use_threads_if=blocks > 1):
            _rmsprop_block(&p[0], &g[0], &sq[0], b, a, c * BLOCK, min(n, c * BLOCK + BLOCK), lr, alpha, new_sq, eps,
                           weight_decay, momentum)


def _flat(x, like):
    """The flat view of a checked C-contiguous state array, or of ``like`` as an unused placeholder."""
    return (like if x is None else x).reshape(-1)


def sgd_step(param, grad, momentum_buffer, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             first_step=False):
    param, grad, buf = sgd_inputs("sgd_step", param, grad, momentum_buffer, momentum, dampening, nesterov)
    if param.size == 0:
        return
    args = (param.reshape(-1), grad.reshape(-1), _flat(buf, param), buf is not None, lr, momentum, 1 - dampening,
            weight_decay, nesterov, first_step)
    if param.dtype == np.float32:
        _sgd[float](*args)
    else:
        _sgd[double](*args)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay=0.0,
              decoupled_weight_decay=False, max_exp_avg_sq=None):
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step = adam_inputs(
        "adam_step", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step
    )
    if param.size == 0:
        return
    coupled = 0.0 if decoupled_weight_decay else weight_decay  # Adam: added to the gradient
    shrink = 1 - lr * weight_decay if decoupled_weight_decay else 1.0  # AdamW: the parameter shrinks
    bias2_sqrt = math.sqrt(1 - beta2**step)
    # m / (sqrt(v) / bias2_sqrt + eps) == (m * bias2_sqrt) / (sqrt(v) + eps * bias2_sqrt): scaled once here
    args = (param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
            _flat(max_exp_avg_sq, param), max_exp_avg_sq is not None, lr / (1 - beta1**step) * bias2_sqrt,
            1 - beta1, beta2, 1 - beta2, eps * bias2_sqrt, coupled, shrink)
    if param.dtype == np.float32:
        _adam[float](*args)
    else:
        _adam[double](*args)


def rmsprop_step(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 momentum_buffer=None, centered=False, grad_avg=None):
    param, grad, square_avg, buf, grad_avg = rmsprop_inputs(
        "rmsprop_step", param, grad, square_avg, momentum, momentum_buffer, centered, grad_avg
    )
    if param.size == 0:
        return
    args = (param.reshape(-1), grad.reshape(-1), square_avg.reshape(-1), _flat(buf, param), buf is not None,
            _flat(grad_avg, param), grad_avg is not None, lr, alpha, 1 - alpha, eps, weight_decay, momentum)
    if param.dtype == np.float32:
        _rmsprop[float](*args)
    else:
        _rmsprop[double](*args)
