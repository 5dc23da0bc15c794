"""The int8 kernels of the quantized layers, compiled: the same integers as ``reference.py``, faster.

Same names, arguments and results as the reference twins (``int8_linear``, ``int8_conv2d``,
``int8_requantize``, ``int8_maxpool2d``), which document the contracts. Every result is an exact
integer, so the twins agree bit for bit; two routes reach those integers:

* **Integer dot products** (``int8_linear`` with few rows, e.g. batch 1). Each weight row is read
  once as int8 and multiplied by the input held as int16 (x - x_zero), pairs of products summed
  into int32 lanes (AVX2 ``vpmaddwd``: 16 multiply-adds per instruction; a plain loop elsewhere).
  A matrix-vector product is bound by reading the weights, and int8 weights are a quarter of
  float32's bytes: this is where int8 beats float32 on a CPU without VNNI.
* **float32 BLAS on int8 values** (``int8_linear`` with many rows, ``int8_conv2d``). A compute-bound
  product runs fastest on OpenBLAS's sgemm, which no int8 loop here can match on AVX2 (fbgemm needs
  hand-blocked ``vpmaddubsw`` kernels and 7-bit activations to do it). int8 values converted to
  float32 multiply exactly (|x * w| <= 128 * 128 = 2**14), and a sum of at most 1,024 such
  products never leaves the integers float32 holds exactly (|sum| <= 2**24), whatever order BLAS
  adds them in. So the reduction is cut into chunks of at most 1,024, each chunk's float32 result
  converted to int32 exactly and the chunks added in int32: int32-accumulation semantics at sgemm
  speed. The zero point is handled as sum(x * w) - x_zero * sum(w), so the raw int8 values (not
  x - x_zero, which can reach 255) enter the product.

``int8_requantize`` and ``int8_maxpool2d`` are plain parallel loops over (image, channel) planes.
"""

import numpy as np
cimport cython
from cython.parallel cimport parallel, prange
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from .int8_contracts import conv_inputs, linear_inputs, maxpool_inputs, requantize_inputs
from .workspace import scratch

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__AVX2__)
    #include <immintrin.h>
    /* sum of a[i] * b[i], a int16 and b int8, accumulated in int32 lanes: vpmaddwd adds pairs of
       16-bit products, |pair| <= 2 * 255 * 128, so no lane can overflow before the final sum. */
    static inline int32_t tt_dot_s16_s8(const int16_t* a, const int8_t* b, Py_ssize_t n) {
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        Py_ssize_t i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b + i)));
            __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b + i + 16)));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)(a + i)), b0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i*)(a + i + 16)), b1));
        }
        __m256i acc = _mm256_add_epi32(acc0, acc1);
        __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4E));
        half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xB1));
        int32_t total = _mm_cvtsi128_si32(half);
        for (; i < n; i++) total += (int32_t)a[i] * (int32_t)b[i];
        return total;
    }
    #else
    static inline int32_t tt_dot_s16_s8(const int16_t* a, const int8_t* b, Py_ssize_t n) {
        int32_t total = 0;
        for (Py_ssize_t i = 0; i < n; i++) total += (int32_t)a[i] * (int32_t)b[i];
        return total;
    }
    #endif

    /* out[i] = clamp(((acc[i] * m + 2**(s-1)) >> s) + zero, low, 127), the contract of int8_requantize;
       written without branches so that the compiler may vectorise it. */
    static inline void tt_requantize_row(const int32_t* acc, int8_t* out, Py_ssize_t n, int64_t m, int s,
                                         int64_t zero, int64_t low) {
        const int64_t rounding = (int64_t)1 << (s - 1);
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t v = (((int64_t)acc[i] * m + rounding) >> s) + zero;
            v = v < low ? low : v;
            v = v > 127 ? 127 : v;
            out[i] = (int8_t)v;
        }
    }

    /* 2x2 windows, stride 2, no padding: out[i, j] = max of in[2i..2i+1, 2j..2j+1]. */
    static inline void tt_max2x2_row(const int8_t* top, const int8_t* bottom, int8_t* out, Py_ssize_t wo) {
        for (Py_ssize_t j = 0; j < wo; j++) {
            int8_t a = top[2 * j] > top[2 * j + 1] ? top[2 * j] : top[2 * j + 1];
            int8_t b = bottom[2 * j] > bottom[2 * j + 1] ? bottom[2 * j] : bottom[2 * j + 1];
            out[j] = a > b ? a : b;
        }
    }
    """
    int32_t tt_dot_s16_s8(const int16_t* a, const int8_t* b, Py_ssize_t n) nogil
    void tt_requantize_row(const int32_t* acc, int8_t* out, Py_ssize_t n, int64_t m, int s, int64_t zero, int64_t low) nogil
    void tt_max2x2_row(const int8_t* top, const int8_t* bottom, int8_t* out, Py_ssize_t wo) nogil

#: Longest reduction a float32 product may cover and stay exact (see the module docstring).
EXACT_DEPTH = 1024
#: int8_linear takes the integer route up to this many rows, the float32 route above.
INTEGER_ROUTE_MAX_ROWS = 8

cdef enum:
    FAILED = 1  # a thread could not allocate its padded plane


# -- int8_linear ------------------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _linear_integer(const int16_t[:, ::1] xs, const int8_t[:, ::1] w, const int32_t[::1] bias, bint has_bias,
                          int32_t[:, ::1] out) noexcept:
    # out[r, f] = bias[f] + xs[r] . w[f]; each task is one weight row, read once for every input row.
    cdef Py_ssize_t n = xs.shape[0], k = xs.shape[1], f_count = w.shape[0], f, r
    cdef int32_t b
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for f in prange(f_count, schedule="static"):
            b = bias[f] if has_bias else 0
            for r in range(n):
                out[r, f] = b + tt_dot_s16_s8(&xs[r, 0], &w[f, 0], k)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _add_rows(const float[:, ::1] product, int32_t[:, ::1] out, const int32_t[::1] offset, bint first) noexcept:
    # out[r, f] (=, or +=) offset[f] + product[r, f]; each product is an exact integer below 2**24.
    cdef Py_ssize_t n = out.shape[0], f_count = out.shape[1], r, f
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for r in prange(n, schedule="static"):
            if first:
                for f in range(f_count):
                    out[r, f] = offset[f] + <int32_t>product[r, f]
            else:
                for f in range(f_count):
                    out[r, f] += <int32_t>product[r, f]


def _offsets(weight2d, x_zero, bias):
    """bias[f] - x_zero * sum(weight[f]): what the raw-value products miss, per output channel."""
    offset = -x_zero * weight2d.sum(axis=1, dtype=np.int64)
    if bias is not None:
        offset += bias
    return offset.astype(np.int32)


def int8_linear(x, x_zero, weight, bias):
    x, x_zero, weight, bias = linear_inputs("int8_linear", x, x_zero, weight, bias)
    n, k = x.shape
    f = weight.shape[0]
    if n == 0 or f == 0 or k == 0:
        out = np.zeros((n, f), dtype=np.int32)
        if bias is not None:
            out += bias
        return out
    out = np.empty((n, f), dtype=np.int32)
    if n <= INTEGER_ROUTE_MAX_ROWS:
        xs = x.astype(np.int16)
        xs -= x_zero
        has_bias = bias is not None
        _linear_integer(xs, weight, bias if has_bias else np.zeros(1, np.int32), has_bias, out)
        return out
    offset = _offsets(weight, x_zero, bias)
    xf = scratch("int8.xf", (n, k), np.float32)
    wf = scratch("int8.wf", (f, k), np.float32)
    np.copyto(xf, x)
    np.copyto(wf, weight)
    product = scratch("int8.product", (n, f), np.float32)
    for start in range(0, k, EXACT_DEPTH):
        stop = min(start + EXACT_DEPTH, k)
        np.matmul(xf[:, start:stop], wf[:, start:stop].T, out=product)
        _add_rows(product, out, offset, start == 0)
    return out


# -- int8_conv2d ------------------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _im2col(const int8_t[:, :, :, ::1] x, float[:, ::1] cols, int8_t pad_value, Py_ssize_t kh, Py_ssize_t kw,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept:
    # cols[(c, i, j), n*P + oh*Wo + ow] = xpad[n, c, oh*sh + i, ow*sw + j] as float32, the padding
    # holding pad_value (the zero point). One task is one (image, channel) plane, copied into the
    # thread's padded plane buffer first, so the window rows need no bounds tests.
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], p = ho * wo
    cdef Py_ssize_t hp = h + 2 * ph, wp = w + 2 * pw, task, ni, ci, i, j, oh, ow, r
    cdef float* dst
    cdef const int8_t* src
    cdef int8_t* padded = NULL
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            padded = <int8_t*>malloc(hp * wp * sizeof(int8_t))
            if padded != NULL:
                memset(padded, pad_value, hp * wp)  # the border keeps the zero point
            for task in prange(n * c, schedule="static"):
                if padded == NULL:
                    status |= FAILED
                    continue
                ni = task // c
                ci = task - ni * c
                for r in range(h):
                    memcpy(&padded[(r + ph) * wp + pw], &x[ni, ci, r, 0], w)
                for i in range(kh):
                    for j in range(kw):
                        dst = &cols[(ci * kh + i) * kw + j, ni * p]
                        for oh in range(ho):
                            src = &padded[(oh * sh + i) * wp + j]
                            if sw == 1:  # a plain widening copy, which the compiler vectorises
                                for ow in range(wo):
                                    dst[oh * wo + ow] = src[ow]
                            else:
                                for ow in range(wo):
                                    dst[oh * wo + ow] = src[ow * sw]
            free(padded)
        return status


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _add_planes(const float[:, ::1] product, int32_t[:, :, ::1] out, const int32_t[::1] offset, bint first) noexcept:
    # out[n, f, :] (=, or +=) offset[f] + product[f, n*P : (n+1)*P]: (F, N*P) back to NCHW order.
    cdef Py_ssize_t n = out.shape[0], f_count = out.shape[1], p = out.shape[2], task, ni, fi, q
    cdef int32_t b
    cdef const float* src
    cdef int32_t* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(n * f_count, schedule="static"):
            ni = task // f_count
            fi = task - ni * f_count
            src = &product[fi, ni * p]
            dst = &out[ni, fi, 0]
            if first:
                b = offset[fi]
                for q in range(p):
                    dst[q] = b + <int32_t>src[q]
            else:
                for q in range(p):
                    dst[q] += <int32_t>src[q]


def int8_conv2d(x, x_zero, weight, bias, stride, padding):
    x, x_zero, weight, bias, stride, padding, (ho, wo) = conv_inputs(
        "int8_conv2d", x, x_zero, weight, bias, stride, padding
    )
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    k = c * kh * kw
    out = np.empty((n, f, ho, wo), dtype=np.int32)
    if out.size == 0:
        return out
    weight2d = weight.reshape(f, k)
    offset = _offsets(weight2d, x_zero, bias)
    cols = scratch("int8.cols", (k, n * ho * wo), np.float32)
    status = _im2col(x, cols, x_zero, kh, kw, stride[0], stride[1], padding[0], padding[1], ho, wo)
    if status:
        raise MemoryError(f"int8_conv2d: could not allocate a padded plane of {x.shape[2:]} per thread")
    wf = scratch("int8.wf", (f, k), np.float32)
    np.copyto(wf, weight2d)
    product = scratch("int8.product", (f, n * ho * wo), np.float32)
    out3 = out.reshape(n, f, ho * wo)
    for start in range(0, k, EXACT_DEPTH):
        stop = min(start + EXACT_DEPTH, k)
        np.matmul(wf[:, start:stop], cols[start:stop], out=product)
        _add_planes(product, out3, offset, start == 0)
    return out


# -- int8_requantize --------------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _requantize(const int32_t[:, :, ::1] acc, const int32_t[::1] multiplier, const int32_t[::1] shift,
                      int out_zero, int low, int8_t[:, :, ::1] out) noexcept:
    # One task is one (image, channel) plane: one multiplier and shift for all of it.
    cdef Py_ssize_t n = acc.shape[0], f_count = acc.shape[1], p = acc.shape[2], task, ni, fi
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(n * f_count, schedule="static"):
            ni = task // f_count
            fi = task - ni * f_count
            tt_requantize_row(&acc[ni, fi, 0], &out[ni, fi, 0], p, multiplier[fi], shift[fi], out_zero, low)


def int8_requantize(acc, multiplier, shift, out_zero, relu=False):
    acc, multiplier, shift, out_zero = requantize_inputs("int8_requantize", acc, multiplier, shift, out_zero)
    out = np.empty(acc.shape, dtype=np.int8)
    if out.size == 0:
        return out
    n, f = acc.shape[:2]
    _requantize(acc.reshape(n, f, -1), multiplier, shift, out_zero, out_zero if relu else -128, out.reshape(n, f, -1))
    return out


# -- int8_maxpool2d ---------------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _maxpool(const int8_t[:, :, :, ::1] x, int8_t[:, :, :, ::1] out, Py_ssize_t kh, Py_ssize_t kw,
                   Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept:
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t ho = out.shape[2], wo = out.shape[3], task, ni, ci, oh, ow, i, j, r, col
    cdef int8_t best, v
    cdef bint two_by_two = kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(n * c, schedule="static"):
            ni = task // c
            ci = task - ni * c
            if two_by_two:  # the common pooling: branch-free, vectorisable
                for oh in range(ho):
                    tt_max2x2_row(&x[ni, ci, 2 * oh, 0], &x[ni, ci, 2 * oh + 1, 0], &out[ni, ci, oh, 0], wo)
                continue
            for oh in range(ho):
                for ow in range(wo):
                    best = -128  # the padding's value: never above a real one
                    for i in range(kh):
                        r = oh * sh - ph + i
                        if r < 0 or r >= h:
                            continue
                        for j in range(kw):
                            col = ow * sw - pw + j
                            if col < 0 or col >= w:
                                continue
                            v = x[ni, ci, r, col]
                            if v > best:
                                best = v
                    out[ni, ci, oh, ow] = best


def int8_maxpool2d(x, kernel, stride, padding):
    x, window, stride, padding, (ho, wo) = maxpool_inputs("int8_maxpool2d", x, kernel, stride, padding)
    out = np.empty((x.shape[0], x.shape[1], ho, wo), dtype=np.int8)
    if out.size:
        _maxpool(x, out, window[0], window[1], stride[0], stride[1], padding[0], padding[1])
    return out
