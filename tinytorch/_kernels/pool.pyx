"""Max, average and global-average pooling, compiled: direct window loops, parallel over image planes.

Same names, arguments and results as in ``reference.py``, which documents them. Each (image,
channel) plane is one task, so a thread reads its windows from a plane that fits in cache, and in
the backward passes no two threads ever add into the same element. Windows are clipped to the
input once per output element (padding never enters the inner loop). The common 2x2, stride-2,
unpadded max-pool has its own loop: four loads and three comparisons per output.
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

from .loops cimport sum_of
from .contracts import argmax_input, float_input, pool_geometry, same_shape, shape_tuple


cdef inline (Py_ssize_t, Py_ssize_t) _clip(Py_ssize_t start, Py_ssize_t length, Py_ssize_t limit) noexcept nogil:
    # The part of the window [start, start + length) inside the input [0, limit): padding is skipped.
    return max(start, 0), min(start + length, limit)


cdef inline bint _beats(floating v, floating best) noexcept nogil:
    # v replaces the running maximum when it is larger, or a NaN while the maximum is not yet NaN
    # (the first NaN wins, as in np.argmax). A select, not a branch (on random data a branch here is
    # mispredicted half the time), in the one form of it that GCC 12 vectorises (measured: 4x faster
    # than the same logic joined with & and |).
    return (v > best) if v == v else (best == best)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _maxpool(const floating[:, ::1] x, Py_ssize_t w, floating[:, ::1] out, int64_t[:, ::1] argmax,
                   Py_ssize_t wo, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                   Py_ssize_t ph, Py_ssize_t pw) noexcept:
    # x: (planes, H*W); out, argmax: (planes, Ho*Wo). The first maximum in row-major order wins; a
    # NaN is the maximum (the first NaN, as np.argmax has it) so it propagates.
    cdef Py_ssize_t h = x.shape[1] // w, ho = out.shape[1] // wo, plane, oh, ow, r0, r1, c0, c1, r, col
    cdef Py_ssize_t best_at
    cdef floating best, v
    cdef bint take
    cdef const floating* src
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(x.shape[0], schedule="static"):
            src = &x[plane, 0]
            for oh in range(ho):
                r0, r1 = _clip(oh * sh - ph, kh, h)
                for ow in range(wo):
                    c0, c1 = _clip(ow * sw - pw, kw, w)
                    best_at = r0 * w + c0
                    best = src[best_at]
                    for r in range(r0, r1):
                        for col in range(c0, c1):
                            v = src[r * w + col]
                            take = _beats(v, best)
                            best = v if take else best
                            best_at = r * w + col if take else best_at
                    out[plane, oh * wo + ow] = best
                    argmax[plane, oh * wo + ow] = best_at


cdef inline void _maxpool_2x2_row(const floating* upper, const floating* lower, floating* dst, int64_t* idx,
                                  Py_ssize_t wo, int width, int top_row) noexcept nogil:
    # One output row of the 2x2, stride-2 case, as a tournament: a b (upper row) and c d (lower row)
    # play in pairs, then the winners play. Each game keeps the earlier candidate unless the later
    # one beats it (_beats), which gives the same winner as scanning a, b, c, d in order. With no
    # branches, 32-bit offsets beside 32-bit floats, and plain pointer arguments (nothing the
    # stores could alias), the compiler vectorises the loop.
    cdef Py_ssize_t ow
    cdef int first_pair, second_pair
    cdef bint take
    cdef floating m1, m2
    for ow in range(wo):
        take = _beats(upper[2 * ow + 1], upper[2 * ow])
        m1 = upper[2 * ow + 1] if take else upper[2 * ow]
        first_pair = <int>take
        take = _beats(lower[2 * ow + 1], lower[2 * ow])
        m2 = lower[2 * ow + 1] if take else lower[2 * ow]
        second_pair = width + <int>take
        take = _beats(m2, m1)
        dst[ow] = m2 if take else m1
        idx[ow] = top_row + 2 * <int>ow + (second_pair if take else first_pair)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _maxpool_2x2(const floating[:, ::1] x, Py_ssize_t w, floating[:, ::1] out, int64_t[:, ::1] argmax,
                       Py_ssize_t wo) noexcept:
    cdef Py_ssize_t ho = out.shape[1] // wo, plane, oh
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(x.shape[0], schedule="static"):
            for oh in range(ho):
                _maxpool_2x2_row(&x[plane, 2 * oh * w], &x[plane, (2 * oh + 1) * w], &out[plane, oh * wo],
                                 &argmax[plane, oh * wo], wo, <int>w, <int>(2 * oh * w))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _maxpool_grad(const floating[:, ::1] grad_out, const int64_t[:, ::1] argmax,
                              floating[:, ::1] grad_x) noexcept:
    # grad_x[plane, argmax[plane, q]] += grad_out[plane, q]; returns how many indices fell outside
    # the plane (those are skipped: a caller's bad argmax must not write outside grad_x).
    cdef Py_ssize_t size = grad_x.shape[1], plane, q, at, bad = 0
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(grad_x.shape[0], schedule="static"):
            dst = &grad_x[plane, 0]
            memset(dst, 0, size * sizeof(floating))
            for q in range(grad_out.shape[1]):
                at = argmax[plane, q]
                if at < 0 or at >= size:
                    bad += 1
                else:
                    dst[at] += grad_out[plane, q]
        return bad


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _avgpool(const floating[:, ::1] x, Py_ssize_t w, floating[:, ::1] out, Py_ssize_t wo,
                   Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept:
    # Sum of the window's in-bounds part divided by the full KH*KW (padding counts as zeros).
    cdef Py_ssize_t h = x.shape[1] // w, ho = out.shape[1] // wo, plane, oh, ow, r0, r1, c0, c1, r, col
    cdef floating total, scale = 1.0 / (kh * kw)
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(x.shape[0], schedule="static"):
            for oh in range(ho):
                r0, r1 = _clip(oh * sh - ph, kh, h)
                for ow in range(wo):
                    c0, c1 = _clip(ow * sw - pw, kw, w)
                    total = 0
                    for r in range(r0, r1):
                        for col in range(c0, c1):
                            total = total + x[plane, r * w + col]
                    out[plane, oh * wo + ow] = total * scale


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _avgpool_grad(const floating[:, ::1] grad_out, Py_ssize_t wo, floating[:, ::1] grad_x, Py_ssize_t w,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept:
    cdef Py_ssize_t h = grad_x.shape[1] // w, ho = grad_out.shape[1] // wo, plane, oh, ow, r0, r1, c0, c1, r, col
    cdef floating share, scale = 1.0 / (kh * kw)
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(grad_x.shape[0], schedule="static"):
            dst = &grad_x[plane, 0]
            memset(dst, 0, grad_x.shape[1] * sizeof(floating))
            for oh in range(ho):
                r0, r1 = _clip(oh * sh - ph, kh, h)
                for ow in range(wo):
                    c0, c1 = _clip(ow * sw - pw, kw, w)
                    share = grad_out[plane, oh * wo + ow] * scale
                    for r in range(r0, r1):
                        for col in range(c0, c1):
                            dst[r * w + col] += share


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _plane_means(const floating[:, ::1] x, floating[::1] out) noexcept:
    cdef Py_ssize_t plane, size = x.shape[1]
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(x.shape[0], schedule="static"):
            out[plane] = <floating>(sum_of(&x[plane, 0], size) / size)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _spread_means(const floating[::1] grad_out, floating[:, ::1] grad_x) noexcept:
    cdef Py_ssize_t plane, q, size = grad_x.shape[1]
    cdef floating share
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for plane in prange(grad_x.shape[0], schedule="static"):
            share = grad_out[plane] / size
            for q in range(size):
                grad_x[plane, q] = share


def _planes(a):
    """View an (N, C, A, B) C-contiguous array as (N*C, A*B): one row per image plane."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2] * a.shape[3])


def maxpool2d_forward(x, kernel, stride, padding):
    x = float_input("maxpool2d_forward", "x", x, ndim=4)
    window, stride, padding, (ho, wo) = pool_geometry("maxpool2d_forward", x.shape, kernel, stride, padding)
    n, c, h, w = x.shape
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    argmax = np.empty((n, c, ho, wo), dtype=np.int64)
    if out.size == 0:
        return out, argmax
    xp, op, ap = _planes(x), _planes(out), _planes(argmax)
    if window == (2, 2) and stride == (2, 2) and padding == (0, 0):
        if x.dtype == np.float32:
            _maxpool_2x2[float](xp, w, op, ap, wo)
        else:
            _maxpool_2x2[double](xp, w, op, ap, wo)
    elif x.dtype == np.float32:
        _maxpool[float](xp, w, op, ap, wo, *window, *stride, *padding)
    else:
        _maxpool[double](xp, w, op, ap, wo, *window, *stride, *padding)
    return out, argmax


def maxpool2d_backward(grad_out, argmax, input_shape):
    kernel = "maxpool2d_backward"
    grad_out = float_input(kernel, "grad_out", grad_out, ndim=4)
    n, c, h, w = shape_tuple(kernel, "input_shape", input_shape, 4)
    same_shape(kernel, "grad_out", grad_out, (n, c) + grad_out.shape[2:])
    argmax = argmax_input(kernel, argmax, grad_out.shape)
    if grad_out.size == 0:
        return np.zeros((n, c, h, w), dtype=grad_out.dtype)
    grad_x = np.empty((n, c, h, w), dtype=grad_out.dtype)  # each plane is zeroed by the kernel
    if grad_out.dtype == np.float32:
        bad = _maxpool_grad[float](_planes(grad_out), _planes(argmax), _planes(grad_x))
    else:
        bad = _maxpool_grad[double](_planes(grad_out), _planes(argmax), _planes(grad_x))
    if bad:
        raise ValueError(f"{kernel}: argmax holds indices outside the {h}x{w} input plane")
    return grad_x


def avgpool2d_forward(x, kernel, stride, padding):
    x = float_input("avgpool2d_forward", "x", x, ndim=4)
    window, stride, padding, (ho, wo) = pool_geometry("avgpool2d_forward", x.shape, kernel, stride, padding)
    out = np.empty(x.shape[:2] + (ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    if x.dtype == np.float32:
        _avgpool[float](_planes(x), x.shape[3], _planes(out), wo, *window, *stride, *padding)
    else:
        _avgpool[double](_planes(x), x.shape[3], _planes(out), wo, *window, *stride, *padding)
    return out


def avgpool2d_backward(grad_out, input_shape, kernel, stride, padding):
    name = "avgpool2d_backward"
    grad_out = float_input(name, "grad_out", grad_out, ndim=4)
    input_shape = shape_tuple(name, "input_shape", input_shape, 4)
    window, stride, padding, (ho, wo) = pool_geometry(name, input_shape, kernel, stride, padding)
    same_shape(name, "grad_out", grad_out, input_shape[:2] + (ho, wo))
    grad_x = np.empty(input_shape, dtype=grad_out.dtype)  # each plane is zeroed by the kernel
    if grad_x.size == 0:
        return grad_x
    w = input_shape[3]
    if grad_out.dtype == np.float32:
        _avgpool_grad[float](_planes(grad_out), wo, _planes(grad_x), w, *window, *stride, *padding)
    else:
        _avgpool_grad[double](_planes(grad_out), wo, _planes(grad_x), w, *window, *stride, *padding)
    return grad_x


def global_avgpool2d_forward(x):
    x = float_input("global_avgpool2d_forward", "x", x, ndim=4)
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"global_avgpool2d_forward: x of shape {x.shape} has empty planes")
    out = np.empty(x.shape[:2], dtype=x.dtype)
    if out.size == 0:
        return out
    if x.dtype == np.float32:
        _plane_means[float](_planes(x), out.reshape(-1))
    else:
        _plane_means[double](_planes(x), out.reshape(-1))
    return out


def global_avgpool2d_backward(grad_out, input_shape):
    grad_out = float_input("global_avgpool2d_backward", "grad_out", grad_out, ndim=2)
    n, c, h, w = shape_tuple("global_avgpool2d_backward", "input_shape", input_shape, 4)
    same_shape("global_avgpool2d_backward", "grad_out", grad_out, (n, c))
    grad_x = np.empty((n, c, h, w), dtype=grad_out.dtype)
    if grad_x.size == 0:
        return grad_x
    if grad_out.dtype == np.float32:
        _spread_means[float](grad_out.reshape(-1), _planes(grad_x))
    else:
        _spread_means[double](grad_out.reshape(-1), _planes(grad_x))
    return grad_x
