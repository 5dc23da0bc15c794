"""2-D convolution, compiled: each thread runs im2col, the products and col2im for its own images.

Same names, arguments and results as in ``reference.py``, which documents them. With K = C*KH*KW
input values per window and P = Ho*Wo windows per image, an image's windows form a column matrix
``cols`` (K, P), and the convolution is three matrix products:

    forward          out (F, P)     = W (F, K)    @ cols (K, P)
    weight gradient  dW (F, K)     += g (F, P)    @ cols.T          summed over the images
    input gradient   dcols (K, P)   = W.T (K, F)  @ g (F, P)        then col2im: added back onto x

A batch of at least MIN_IMAGES_PER_THREAD images per thread is done image by image: each OpenMP
thread takes its share of the images and, for each, copies the windows out (im2col) into its own
buffer, multiplies with a one-thread BLAS call (gemm.pxd), and unpacks the product into NCHW with
the bias added (forward), or adds the window gradients back onto the input (backward); small maps
are grouped so that a product has at least MIN_TASK_COLUMNS columns. Each thread sums the weight
gradient of its images into a block of its own, added up at the end. An image's columns (295 KB
for 32 channels at 16x16) stay in the thread's cache from im2col to the products to col2im,
where the whole batch's columns (19 MB) went out to memory and back at every step. Measured on the
32->64 channel 16x16 convolution (batch 64, forward and backward, each side in its own process, 7
rounds): 23.7 -> 19.0 ms on the first call after a pause, 23.1 -> 17.5 ms back to back.

On that path, a 3x3 stride-1 convolution (most of the CIFAR networks') whose planes are at least
WINOGRAD_MIN_SIDE pixels a side, with at least WINOGRAD_MIN_CHANNELS input channels, goes through
Winograd's F(2x2, 3x3) instead (winograd.pxd): each task's images are cut into 4x4 tiles and
transformed, and 16 products over the channels replace the windows' product, with 16
multiplications per 2x2 block of outputs where the windows take 36. The backward does the same for the input gradient (the output gradient convolved by the
flipped filters) and, with the adjoint transforms, for the filters' gradient. Measured on the
airbench network's 3x3 layers at batch 512 (forward and backward, each way in its own process,
`python -m benchmarks.winograd`, results/winograd.md): 1.33x (24->64 channels at 31x31) to 1.67x
(128->128 at 7x7) faster than the windows'; on 3x3 planes, where a 2x2 block overhangs by more than
half, no faster, so they keep the windows.

Smaller batches, which would leave a thread idle, and a process without a BLAS to call from the
threads, take the whole batch at once: ``cols`` (K, N*P) and three large products on the matmul
kernel, a chunk of images at a time when the columns would pass COLS_BUDGET_BYTES, with ``cols``
and the packed gradient in reused scratch buffers (see workspace.py). Everything returned is
freshly allocated.

The evaluation-mode ``conv2d_fused_forward`` unpacks the product straight into the ReLU'd and
max-pooled output (a batch norm comes folded into the filters), so the full-size activations are
never written; ``conv2d_forward`` uses the same unpacking without ReLU and pool.
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from .gemm cimport NO_TRANS, TRANS, blas_gemm, blas_ready, one_thread_blas_begin, one_thread_blas_end, one_thread_blas_worker
from .loops cimport sum_of
from .winograd cimport tile_count, tiled_plane, winograd_conv, winograd_filter_grads
from .contracts import channel_vector, conv2d_fused_inputs, conv2d_inputs, float_input, same_shape
from .workspace import scratch
from .parallel import get_num_threads
from . import gemm


cdef enum:
    FAILED = 1  # a thread could not allocate its working buffers

# The column buffer of one call holds K = C*KH*KW values for every output position of the batch: for
# the first 3x3 convolution of a 256-image CIFAR batch at 31x31 and 24 channels, 212 MB. Batches whose
# buffer would be larger are done this many bytes' worth of images at a time (the products stay large
# enough for BLAS: at least 20,000 columns in every case the course runs).
COLS_BUDGET_BYTES = 64 << 20

# A batch of at least this many images per thread is done image by image (see the module's
# docstring); smaller batches, which would leave a thread idle, go through whole-batch products.
MIN_IMAGES_PER_THREAD = 4
# Images are grouped so that each task's products have at least this many columns (output positions):
# per-image products of an 8x8 map (64 columns) ran a sixth slower than four images' (one thread's BLAS).
MIN_TASK_COLUMNS = 256

# On the image-by-image path, 3x3 stride-1 convolutions whose input and output planes are at least
# WINOGRAD_MIN_SIDE pixels a side, with at least WINOGRAD_MIN_CHANNELS input channels, go through
# Winograd's F(2x2, 3x3) (winograd.pxd), forward and backward. Smaller planes waste most of a tile
# (a 3x3 plane: no faster); fewer channels make products too thin (3 channels at 32x32: twice as slow
# as the windows, 8: a little faster, 16: 1.7x). WINOGRAD = False keeps every convolution on the windows.
WINOGRAD = True
WINOGRAD_MIN_SIDE = 4
WINOGRAD_MIN_CHANNELS = 8


cdef struct Geometry:
    Py_ssize_t h, w      # input plane
    Py_ssize_t kh, kw    # window
    Py_ssize_t sh, sw    # stride
    Py_ssize_t ph, pw    # padding
    Py_ssize_t ho, wo    # output plane


cdef Geometry _geometry(x, window, stride, padding, out_size):
    cdef Geometry g
    g.h, g.w = x.shape[2], x.shape[3]
    g.kh, g.kw = window
    g.sh, g.sw = stride
    g.ph, g.pw = padding
    g.ho, g.wo = out_size
    return g


@cython.cdivision(True)
cdef inline void _plane_windows(const floating* plane, floating* padded, floating* dst, Py_ssize_t ld,
                                Geometry g) noexcept nogil:
    # dst[(i*KW + j)*ld + oh*Wo + ow] = padded plane[oh*sh + i, ow*sw + j]: one input plane's rows of
    # the column matrix. The plane is copied into ``padded`` first (whose border must be zero), then
    # every window row is a plain copy from there, with no bounds tests (rows are short: Wo is 8 to 32).
    cdef Py_ssize_t wp = g.w + 2 * g.pw, i, j, oh, ow, r
    cdef floating* out
    cdef const floating* src
    for r in range(g.h):
        memcpy(&padded[(r + g.ph) * wp + g.pw], &plane[r * g.w], g.w * sizeof(floating))
    for i in range(g.kh):
        for j in range(g.kw):
            out = dst + (i * g.kw + j) * ld
            for oh in range(g.ho):
                src = &padded[(oh * g.sh + i) * wp + j]
                if g.sw == 1:
                    for ow in range(g.wo):
                        out[oh * g.wo + ow] = src[ow]
                else:
                    for ow in range(g.wo):
                        out[oh * g.wo + ow] = src[ow * g.sw]


@cython.cdivision(True)
cdef inline void _plane_window_grads(const floating* src, Py_ssize_t ld, floating* padded, floating* plane,
                                     Geometry g) noexcept nogil:
    # The adjoint of _plane_windows: every window value is added back where it was read, into
    # ``padded`` (zeroed here), whose interior is then copied out to the plane (the padding's share
    # is dropped). Input elements no window reads (stride larger than the kernel) get zero.
    cdef Py_ssize_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw, i, j, oh, ow, r
    cdef floating* dst
    cdef const floating* row
    memset(padded, 0, hp * wp * sizeof(floating))
    for i in range(g.kh):
        for j in range(g.kw):
            row = src + (i * g.kw + j) * ld
            for oh in range(g.ho):
                dst = &padded[(oh * g.sh + i) * wp + j]
                if g.sw == 1:
                    for ow in range(g.wo):
                        dst[ow] += row[oh * g.wo + ow]
                else:
                    for ow in range(g.wo):
                        dst[ow * g.sw] += row[oh * g.wo + ow]
    for r in range(g.h):
        memcpy(&plane[r * g.w], &padded[(r + g.ph) * wp + g.pw], g.w * sizeof(floating))


cdef inline void _group_windows(const floating* images, Py_ssize_t count, Py_ssize_t channels, floating* padded,
                                floating* cols, Geometry g) noexcept nogil:
    # The column matrix (K, count*P) of ``count`` consecutive images of ``channels`` planes each:
    # image i's windows in columns [i*P, (i+1)*P).
    cdef Py_ssize_t p = g.ho * g.wo, width = count * p, kk = g.kh * g.kw, plane = g.h * g.w, ni, ci
    for ni in range(count):
        for ci in range(channels):
            _plane_windows(images + (ni * channels + ci) * plane, padded, cols + ci * kk * width + ni * p, width, g)


cdef inline void _group_window_grads(const floating* cols, Py_ssize_t count, Py_ssize_t channels, floating* padded,
                                     floating* grads, Geometry g) noexcept nogil:
    # The adjoint of _group_windows: the window gradients cols (K, count*P) added back onto the
    # ``count`` consecutive image gradients at ``grads`` (each plane written whole).
    cdef Py_ssize_t p = g.ho * g.wo, width = count * p, kk = g.kh * g.kw, plane = g.h * g.w, ni, ci
    for ni in range(count):
        for ci in range(channels):
            _plane_window_grads(cols + ci * kk * width + ni * p, width, padded, grads + (ni * channels + ci) * plane, g)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, Geometry g) noexcept:
    # cols[(c, i, j), n*P + oh*Wo + ow] = xpad[n, c, oh*sh + i, ow*sw + j], one (image, channel) plane a task
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], p = g.ho * g.wo, kk = g.kh * g.kw, task, ni, ci
    cdef floating* padded = NULL  # each thread allocates its own in the parallel block
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            padded = <floating*>calloc((g.h + 2 * g.ph) * (g.w + 2 * g.pw), sizeof(floating))  # the border stays zero
            for task in prange(n * c, schedule="static"):
                if padded == NULL:
                    status |= FAILED
                    continue
                ni = task // c
                ci = task - ni * c
                _plane_windows(&x[ni, ci, 0, 0], padded, &cols[ci * kk, ni * p], cols.shape[1], g)
            free(padded)
        return status


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] gx, Geometry g) noexcept:
    # The adjoint of _im2col. One task owns one (image, channel) plane, so overlapping windows never race.
    cdef Py_ssize_t n = gx.shape[0], c = gx.shape[1], p = g.ho * g.wo, kk = g.kh * g.kw, task, ni, ci
    cdef floating* padded = NULL  # each thread allocates its own in the parallel block
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            padded = <floating*>malloc((g.h + 2 * g.ph) * (g.w + 2 * g.pw) * sizeof(floating))
            for task in prange(n * c, schedule="static"):
                if padded == NULL:
                    status |= FAILED
                    continue
                ni = task // c
                ci = task - ni * c
                _plane_window_grads(&cols[ci * kk, ni * p], cols.shape[1], padded, &gx[ni, ci, 0, 0], g)
            free(padded)
        return status


cdef inline bint _beats(floating v, floating best) noexcept nogil:
    # v replaces the running maximum when larger, or when it is a NaN and the maximum is not yet one
    # (so a NaN propagates, as in maxpool2d_forward). Written as pool.pyx's _beats: the select form
    # GCC vectorises, where a branch would be mispredicted half the time on real activations.
    return (v > best) if v == v else (best == best)


cdef inline void _bias_relu_span(const floating* src, floating* dst, Py_ssize_t count, floating b,
                                 bint relu) noexcept nogil:
    cdef Py_ssize_t q
    cdef floating v
    if relu:  # two loops, so that neither tests the flag per element
        for q in range(count):
            v = src[q] + b
            dst[q] = 0 if v <= 0 else v  # a NaN fails the test and passes through, as in relu_forward
    else:
        for q in range(count):
            dst[q] = src[q] + b


cdef inline void _pool2x2_row(const floating* upper, const floating* lower, floating* dst, Py_ssize_t wq,
                              floating b, bint relu) noexcept nogil:
    # One pooled row of a 2x2 window: the maxima of the two rows' column pairs, then of those two.
    # The bias is added after the maximum: rounding is monotonic, so max(a) + b == max(a + b) exactly,
    # and ReLU commutes with the maximum too.
    cdef Py_ssize_t j
    cdef floating m1, m2, v
    for j in range(wq):
        m1 = upper[2 * j + 1] if _beats(upper[2 * j + 1], upper[2 * j]) else upper[2 * j]
        m2 = lower[2 * j + 1] if _beats(lower[2 * j + 1], lower[2 * j]) else lower[2 * j]
        v = (m2 if _beats(m2, m1) else m1) + b
        dst[j] = v if not relu else (0 if v <= 0 else v)


cdef inline void _unpack_plane(const floating* plane, floating* dst, floating b, bint relu, Py_ssize_t ho,
                               Py_ssize_t wo, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t hq, Py_ssize_t wq) noexcept nogil:
    # dst[i, j] = relu(max of the (ph, pw) window at (i ph, j pw) of plane (Ho, Wo) + b): the
    # product's plane is read once and only the pooled plane is written, where the unfused layers
    # write and read the full plane three more times (batch norm, ReLU, pool).
    cdef Py_ssize_t i, j, a, c
    cdef floating best, v
    cdef const floating* row
    if ph == 1 and pw == 1:
        _bias_relu_span(plane, dst, ho * wo, b, relu)
    elif ph == 2 and pw == 2:
        for i in range(hq):
            _pool2x2_row(plane + 2 * i * wo, plane + (2 * i + 1) * wo, dst + i * wq, wq, b, relu)
    else:
        for i in range(hq):
            for j in range(wq):
                best = plane[i * ph * wo + j * pw]
                for a in range(ph):
                    row = plane + (i * ph + a) * wo + j * pw
                    for c in range(pw):
                        best = row[c] if _beats(row[c], best) else best
                v = best + b
                dst[i * wq + j] = v if not relu else (0 if v <= 0 else v)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _unpack_relu_pool(const floating[:, ::1] product, const floating[::1] bias, bint has_bias, bint relu,
                            Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t ph, Py_ssize_t pw,
                            floating[:, :, :, ::1] out) noexcept:
    # out[n, f] = the unpacked plane product[f, n*P:(n+1)*P], one (image, filter) plane a task
    cdef Py_ssize_t n = out.shape[0], f = out.shape[1], hq = out.shape[2], wq = out.shape[3]
    cdef Py_ssize_t p = ho * wo, task, ni, fi
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(n * f, schedule="static"):
            ni = task // f
            fi = task - ni * f
            _unpack_plane(&product[fi, ni * p], &out[ni, fi, 0, 0], bias[fi] if has_bias else 0, relu,
                          ho, wo, ph, pw, hq, wq)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _forward_by_images(const floating[:, :, :, ::1] x, const floating[:, ::1] filters, const floating[::1] bias,
                            bint has_bias, bint relu, Py_ssize_t pool_h, Py_ssize_t pool_w, Geometry g,
                            Py_ssize_t group, const floating[:, :, ::1] tiled, bint by_tiles,
                            floating[:, :, :, ::1] out) noexcept:
    # Each task is ``group`` images, start to end on one thread: their columns (K, group*P), the
    # product W @ cols (F, group*P) with a one-thread BLAS call, then unpacked into out. With
    # ``by_tiles`` (a 3x3, stride-1 convolution) the product comes from Winograd's tiles instead
    # (winograd.pxd; ``tiled`` holds the transformed filters). The buffers are the thread's own and
    # stay in its cache.
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], f = filters.shape[0], k = filters.shape[1]
    cdef Py_ssize_t p = g.ho * g.wo, hq = out.shape[2], wq = out.shape[3]
    cdef Py_ssize_t tiles = tile_count(g.ho, g.wo)
    cdef Py_ssize_t tasks = (n + group - 1) // group, task, first, count, width, ni, fi
    cdef floating* cols = NULL  # each thread allocates its own buffers in the parallel block
    cdef floating* product = NULL
    cdef floating* padded = NULL
    cdef floating* transformed = NULL
    cdef bint single = floating is float
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            product = <floating*>malloc(f * group * p * sizeof(floating))
            if by_tiles:  # the input's tiles, then the 16 products
                cols = <floating*>malloc(16 * (c + f) * group * tiles * sizeof(floating))
                transformed = cols + 16 * c * group * tiles
                padded = <floating*>calloc(tiled_plane(g.ho, g.wo, c, f), sizeof(floating))
            else:
                cols = <floating*>malloc(k * group * p * sizeof(floating))
                padded = <floating*>calloc((g.h + 2 * g.ph) * (g.w + 2 * g.pw), sizeof(floating))  # the border stays zero
            if threadid() > 0:
                one_thread_blas_worker()
            for task in prange(tasks, schedule="static"):
                if cols == NULL or product == NULL or padded == NULL:
                    status |= FAILED
                    continue
                first = task * group
                count = min(group, n - first)
                width = count * p
                if by_tiles:
                    winograd_conv(single, &x[first, 0, 0, 0], count, c, c * g.h * g.w, g.h * g.w, g.h, g.w, g.ph, g.pw,
                                  &tiled[0, 0, 0], f, product, p, width, padded, cols, transformed)
                else:
                    _group_windows(&x[first, 0, 0, 0], count, c, padded, cols, g)
                    blas_gemm(single, NO_TRANS, NO_TRANS, f, width, k, &filters[0, 0], k, cols, width, 0.0, product, width)
                for ni in range(count):
                    for fi in range(f):
                        _unpack_plane(product + fi * width + ni * p, &out[first + ni, fi, 0, 0],
                                      bias[fi] if has_bias else 0, relu, g.ho, g.wo, pool_h, pool_w, hq, wq)
            free(cols)
            free(product)
            free(padded)
        return status


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _backward_by_images(const floating[:, :, :, ::1] x, const floating[:, ::1] filters,
                             const floating[:, :, ::1] grad_out, Geometry g, Py_ssize_t group,
                             floating[:, :, ::1] weight_parts, double[:, ::1] bias_parts, bint want_bias,
                             floating[:, :, :, ::1] grad_x, bint want_input) noexcept:
    # Each task is ``group`` images on one thread: their columns, their output gradient g (F,
    # group*P; an image's own (F, P) block of grad_out when the group is one image, else packed),
    # the thread's weight gradient += g @ cols.T, and, when asked, the window gradients W.T @ g
    # (into the spent columns) added back onto grad_x. Each thread sums into its own block of
    # weight_parts and bias_parts (added up by the caller): no two threads write the same memory.
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], f = filters.shape[0], k = filters.shape[1]
    cdef Py_ssize_t p = g.ho * g.wo, plane = (g.h + 2 * g.ph) * (g.w + 2 * g.pw)
    cdef Py_ssize_t tasks = (n + group - 1) // group, task, first, count, width, ni, fi
    cdef int t
    cdef floating* cols = NULL  # each thread allocates its own buffers in the parallel block
    cdef floating* packed = NULL
    cdef floating* padded = NULL
    cdef floating* summed = NULL
    cdef const floating* grad
    cdef bint single = floating is float
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            t = threadid()
            cols = <floating*>malloc(k * group * p * sizeof(floating))
            packed = NULL  # a task of one image reads its output gradient in place
            if group > 1:
                packed = <floating*>malloc(f * group * p * sizeof(floating))
            padded = <floating*>calloc(plane, sizeof(floating))  # the border stays zero
            summed = <floating*>malloc(plane * sizeof(floating))
            if t > 0:
                one_thread_blas_worker()
            for task in prange(tasks, schedule="static"):
                if cols == NULL or (group > 1 and packed == NULL) or padded == NULL or summed == NULL:
                    status |= FAILED
                    continue
                first = task * group
                count = min(group, n - first)
                width = count * p
                _group_windows(&x[first, 0, 0, 0], count, c, padded, cols, g)
                if count == 1:
                    grad = &grad_out[first, 0, 0]
                else:
                    for fi in range(f):
                        for ni in range(count):
                            memcpy(packed + fi * width + ni * p, &grad_out[first + ni, fi, 0], p * sizeof(floating))
                    grad = packed
                if want_bias:
                    for fi in range(f):
                        bias_parts[t, fi] += sum_of(grad + fi * width, width)
                blas_gemm(single, NO_TRANS, TRANS, f, k, width, grad, width, cols, width, 1.0, &weight_parts[t, 0, 0], k)
                if want_input:
                    blas_gemm(single, TRANS, NO_TRANS, k, width, f, &filters[0, 0], k, grad, width, 0.0, cols, width)
                    _group_window_grads(cols, count, c, summed, &grad_x[first, 0, 0, 0], g)
            free(cols)
            free(packed)
            free(padded)
            free(summed)
        return status


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _backward_by_tiles(const floating[:, :, :, ::1] x, const floating[:, :, ::1] grad_out, Geometry g,
                            Py_ssize_t group, floating[:, :, :, ::1] du_parts, double[:, ::1] bias_parts,
                            bint want_bias, floating[:, :, :, ::1] grad_x, bint want_input,
                            const floating[:, :, ::1] tiled) noexcept:
    # The backward of a 3x3, stride-1 convolution through Winograd's tiles (winograd.pxd), ``group``
    # images a task on one thread: the gradient of the transformed filters summed into the thread's
    # du_parts[t] (16, C, F), the bias's into bias_parts[t] (the caller adds them up and turns du
    # into the filters' gradient), and, when asked, the input gradient: the output gradient
    # convolved by the flipped, transposed filters, whose transform ``tiled`` (16, F, C) holds.
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], f = grad_out.shape[1], p = g.ho * g.wo
    cdef Py_ssize_t tiles = tile_count(g.ho, g.wo), input_tiles = tile_count(g.h, g.w)
    cdef Py_ssize_t tasks = (n + group - 1) // group, task, first, count, ni, fi
    cdef int t
    cdef floating* padded = NULL  # each thread allocates its own buffers in the parallel block
    cdef floating* grad_padded = NULL
    cdef floating* v = NULL
    cdef floating* z = NULL
    cdef floating* input_padded = NULL
    cdef floating* input_v = NULL
    cdef bint single = floating is float
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            t = threadid()
            padded = <floating*>calloc(tiled_plane(g.ho, g.wo, c, 0), sizeof(floating))
            grad_padded = <floating*>calloc(4 * tiles * f, sizeof(floating))
            v = <floating*>malloc(16 * group * tiles * c * sizeof(floating))
            z = <floating*>malloc(16 * group * tiles * f * sizeof(floating))
            input_padded = NULL
            input_v = NULL
            if want_input:  # the input gradient's tiles, then the 16 products
                input_padded = <floating*>calloc(tiled_plane(g.h, g.w, f, c), sizeof(floating))
                input_v = <floating*>malloc(16 * (f + c) * group * input_tiles * sizeof(floating))
            if t > 0:
                one_thread_blas_worker()
            for task in prange(tasks, schedule="static"):
                if (padded == NULL or grad_padded == NULL or v == NULL or z == NULL
                        or (want_input and (input_padded == NULL or input_v == NULL))):
                    status |= FAILED
                    continue
                first = task * group
                count = min(group, n - first)
                if want_bias:
                    for ni in range(count):
                        for fi in range(f):
                            bias_parts[t, fi] += sum_of(&grad_out[first + ni, fi, 0], p)
                winograd_filter_grads(single, &x[first, 0, 0, 0], &grad_out[first, 0, 0], count, c, f, g.h, g.w,
                                      g.ph, g.pw, &du_parts[t, 0, 0, 0], padded, grad_padded, v, z)
                if want_input:
                    winograd_conv(single, &grad_out[first, 0, 0], count, f, f * p, p, g.ho, g.wo, 2 - g.ph, 2 - g.pw,
                                  &tiled[0, 0, 0], c, &grad_x[first, 0, 0, 0], c * g.h * g.w, g.h * g.w,
                                  input_padded, input_v, input_v + 16 * f * group * input_tiles)
            free(padded)
            free(grad_padded)
            free(v)
            free(z)
            free(input_padded)
            free(input_v)
        return status


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _pack_grad(const floating[:, :, ::1] grad_out, floating[:, ::1] packed, floating[::1] grad_bias,
                     bint want_bias) noexcept:
    # packed[f, n*P : (n+1)*P] = grad_out[n, f, :], and grad_bias[f] = its sum, in the same pass.
    cdef Py_ssize_t n = grad_out.shape[0], f = grad_out.shape[1], p = grad_out.shape[2], fi, ni, q
    cdef double total
    cdef const floating* src
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for fi in prange(f, schedule="static"):
            total = 0
            for ni in range(n):
                src = &grad_out[ni, fi, 0]
                dst = &packed[fi, ni * p]
                for q in range(p):
                    dst[q] = src[q]
                if want_bias:
                    total = total + sum_of(src, p)
            if want_bias:
                grad_bias[fi] = <floating>total


def _check(status, kernel, x):
    if status:
        raise MemoryError(f"{kernel}: could not allocate a thread's working buffers for input of shape {x.shape} "
                          f"(a padded plane, and for a batch done image by image, a task's columns or Winograd tiles "
                          f"and its product)")


def _im2col_into(kernel, x, cols, window, stride, padding, out_size):
    g = _geometry(x, window, stride, padding, out_size)
    if x.dtype == np.float32:
        status = _im2col[float](x, cols, g)
    else:
        status = _im2col[double](x, cols, g)
    _check(status, kernel, x)


def _task_images(n, positions):
    """Images per task when the batch is done image by image on the kernels' threads, or 0 when it
    goes through whole-batch products (no BLAS to call from the threads, or too few images)."""
    threads = get_num_threads()
    if not blas_ready() or n < max(1, MIN_IMAGES_PER_THREAD * threads):
        return 0
    return max(1, min(-(-MIN_TASK_COLUMNS // max(1, positions)), n // (2 * threads)))


def _by_tiles(x, weight, stride, padding, out_size):
    """Whether the image-by-image path takes this convolution through Winograd's tiles."""
    return (WINOGRAD and weight.shape[2:] == (3, 3) and stride == (1, 1) and max(padding) <= 2
            and min(*x.shape[2:], *out_size) >= WINOGRAD_MIN_SIDE and x.shape[1] >= WINOGRAD_MIN_CHANNELS)


def _tiles(out_size):
    """The 2x2 output blocks of Winograd's F(2x2, 3x3) that cover an (Ho, Wo) plane."""
    return tile_count(out_size[0], out_size[1])


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _filter_tiles(const floating[:, :, :, ::1] weight, bint flipped, floating[:, :, ::1] u) noexcept:
    # u[xi, ci, fi] = (G g G^T)[xi // 4, xi % 4] of every kernel g = weight[fi, ci]; with ``flipped``,
    # u[xi, fi, ci] of g = weight[fi, ci] turned by 180 degrees: the input gradient's filters, whose
    # channels are the forward's filters. In double, rounded once at the end.
    cdef Py_ssize_t f = weight.shape[0], c = weight.shape[1], fi, ci, i, j, a, b
    cdef double g[3][3]
    cdef double t[4][3]
    cdef double v[4][4]
    with nogil:
        for fi in range(f):
            for ci in range(c):
                for i in range(3):
                    for j in range(3):
                        g[i][j] = weight[fi, ci, 2 - i, 2 - j] if flipped else weight[fi, ci, i, j]
                for j in range(3):  # G g
                    t[0][j] = g[0][j]
                    t[1][j] = 0.5 * (g[0][j] + g[1][j] + g[2][j])
                    t[2][j] = 0.5 * (g[0][j] - g[1][j] + g[2][j])
                    t[3][j] = g[2][j]
                for a in range(4):  # ... times G^T
                    v[a][0] = t[a][0]
                    v[a][1] = 0.5 * (t[a][0] + t[a][1] + t[a][2])
                    v[a][2] = 0.5 * (t[a][0] - t[a][1] + t[a][2])
                    v[a][3] = t[a][2]
                for a in range(4):
                    for b in range(4):
                        if flipped:
                            u[4 * a + b, fi, ci] = <floating>v[a][b]
                        else:
                            u[4 * a + b, ci, fi] = <floating>v[a][b]


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _filter_grads(const floating[:, :, :, ::1] du_parts, floating[:, :, :, ::1] grad_weight) noexcept:
    # grad_weight[fi, ci] = G^T d G, d[a, b] the sum over the threads' parts of du_parts[:, 4a + b, ci, fi]:
    # the adjoint of _filter_tiles (unflipped). In double, rounded once at the end.
    cdef Py_ssize_t parts = du_parts.shape[0], c = du_parts.shape[2], f = du_parts.shape[3], fi, ci, i, a, b, q
    cdef double d[4][4]
    cdef double t[3][4]
    with nogil:
        for ci in range(c):
            for fi in range(f):
                for a in range(4):
                    for b in range(4):
                        d[a][b] = 0
                        for q in range(parts):
                            d[a][b] += du_parts[q, 4 * a + b, ci, fi]
                for b in range(4):  # G^T d
                    t[0][b] = d[0][b] + 0.5 * (d[1][b] + d[2][b])
                    t[1][b] = 0.5 * (d[1][b] - d[2][b])
                    t[2][b] = 0.5 * (d[1][b] + d[2][b]) + d[3][b]
                for i in range(3):  # ... times G
                    grad_weight[fi, ci, i, 0] = <floating>(t[i][0] + 0.5 * (t[i][1] + t[i][2]))
                    grad_weight[fi, ci, i, 1] = <floating>(0.5 * (t[i][1] - t[i][2]))
                    grad_weight[fi, ci, i, 2] = <floating>(0.5 * (t[i][1] + t[i][2]) + t[i][3])


def _winograd_filters(weight, flipped=False):
    """G g G^T of every 3x3 kernel g of weight (F, C, 3, 3), as the (16, C, F) right matrices of
    winograd.pxd's products; with ``flipped``, the (16, F, C) ones of the input gradient's
    convolution, whose kernels are g turned by 180 degrees."""
    f, c = weight.shape[:2]
    u = np.empty((16, f, c) if flipped else (16, c, f), dtype=weight.dtype)
    if weight.dtype == np.float32:
        _filter_tiles[float](weight, flipped, u)
    else:
        _filter_tiles[double](weight, flipped, u)
    return u


def _winograd_filter_grads(du_parts):
    """The filters' gradient (F, C, 3, 3) from the threads' parts (T, 16, C, F) of the gradient of
    their transforms: G^T du G of each 4x4 block of their sum (the adjoint of _winograd_filters)."""
    _, _, c, f = du_parts.shape
    grad_weight = np.empty((f, c, 3, 3), dtype=du_parts.dtype)
    if du_parts.dtype == np.float32:
        _filter_grads[float](du_parts, grad_weight)
    else:
        _filter_grads[double](du_parts, grad_weight)
    return grad_weight


def _covers_input(x, weight, padding):
    """True when the window is the whole unpadded input: one output position per image, so the
    convolution is a dense layer, (N, C*H*W) @ (C*H*W, F), with no windows to copy out."""
    return padding == (0, 0) and weight.shape[2:] == x.shape[2:]


def _image_chunks(n, per_image):
    """Slices of the batch whose column buffer (``per_image`` bytes an image) fits in COLS_BUDGET_BYTES, one image at least."""
    step = max(1, COLS_BUDGET_BYTES // max(1, per_image))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _unpack_into(product, bias, has_bias, relu, ho, wo, pool, out):
    if out.dtype == np.float32:
        _unpack_relu_pool[float](product, bias, has_bias, relu, ho, wo, pool[0], pool[1], out)
    else:
        _unpack_relu_pool[double](product, bias, has_bias, relu, ho, wo, pool[0], pool[1], out)


def _windowed_forward(kernel, x, weight, bias, has_bias, stride, padding, ho, wo, relu, pool, out):
    """out = unpack(W @ im2col(x)): image by image on the kernels' threads, or a chunk of images at a
    time, so the column buffer stays within its budget."""
    n, c = x.shape[:2]
    f, _, kh, kw = weight.shape
    filters = weight.reshape(f, -1)
    by_tiles = _by_tiles(x, weight, stride, padding, (ho, wo))
    group = _task_images(n, _tiles((ho, wo)) if by_tiles else ho * wo)
    if group:
        g = _geometry(x, (kh, kw), stride, padding, (ho, wo))
        tiled = _winograd_filters(weight) if by_tiles else np.empty((0, 0, 0), x.dtype)
        one_thread_blas_begin()
        try:
            if x.dtype == np.float32:
                status = _forward_by_images[float](x, filters, bias, has_bias, relu, pool[0], pool[1], g, group,
                                                   tiled, by_tiles, out)
            else:
                status = _forward_by_images[double](x, filters, bias, has_bias, relu, pool[0], pool[1], g, group,
                                                    tiled, by_tiles, out)
        finally:
            one_thread_blas_end()
        _check(status, kernel, x)
        return
    for part in _image_chunks(n, c * kh * kw * ho * wo * x.itemsize):
        images = part.stop - part.start
        cols = scratch("conv.cols", (c * kh * kw, images * ho * wo), x.dtype)
        _im2col_into(kernel, x[part], cols, (kh, kw), stride, padding, (ho, wo))
        product = scratch("conv.product", (f, images * ho * wo), x.dtype)
        gemm.matmul(filters, cols, out=product)
        _unpack_into(product, bias, has_bias, relu, ho, wo, pool, out[part])


def conv2d_forward(x, weight, bias, stride, padding):
    x, weight, stride, padding, (ho, wo) = conv2d_inputs("conv2d_forward", x, weight, stride, padding)
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    has_bias = bias is not None
    bias = channel_vector("conv2d_forward", "bias", bias, f, x.dtype) if has_bias else np.zeros(0, x.dtype)
    if _covers_input(x, weight, padding):
        out = np.matmul(x.reshape(n, -1), weight.reshape(f, -1).T)
        if has_bias:
            out += bias
        return out.reshape(n, f, 1, 1)
    out = np.empty((n, f, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    # back to NCHW with the bias added: the fused unpacking, without ReLU or pool
    _windowed_forward("conv2d_forward", x, weight, bias, has_bias, stride, padding, ho, wo, False, (1, 1), out)
    return out


def conv2d_fused_forward(x, weight, bias, stride, padding, relu=False, pool=(1, 1)):
    kernel = "conv2d_fused_forward"
    x, weight, stride, padding, (ho, wo), pool, (hq, wq) = conv2d_fused_inputs(kernel, x, weight, stride, padding, pool)
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    has_bias = bias is not None
    bias = channel_vector(kernel, "bias", bias, f, x.dtype) if has_bias else np.zeros(0, x.dtype)
    out = np.empty((n, f, hq, wq), dtype=x.dtype)
    if out.size == 0:
        return out
    if _covers_input(x, weight, padding):  # a 1x1 output: the pool window can only be 1x1 too
        product = np.matmul(weight.reshape(f, -1), x.reshape(n, -1).T)  # (F, N)
        _unpack_into(product, bias, has_bias, relu, ho, wo, pool, out)
    else:
        _windowed_forward(kernel, x, weight, bias, has_bias, stride, padding, ho, wo, relu, pool, out)
    return out


def _backward_by_tiles_into(x, weight, grad_out, padding, out_size, group, grad_x, grad_bias):
    """conv2d_backward of a 3x3, stride-1 convolution through Winograd's tiles on the kernels' threads;
    grad_x and grad_bias (when not None) are filled."""
    n, f = grad_out.shape[:2]
    c = x.shape[1]
    threads = get_num_threads()
    du_parts = np.zeros((threads, 16, c, f), dtype=x.dtype)
    bias_parts = np.zeros((threads, f if grad_bias is not None else 0))
    g = _geometry(x, (3, 3), (1, 1), padding, out_size)
    grad3 = grad_out.reshape(n, f, -1)
    want_input = grad_x is not None
    target = grad_x if want_input else np.empty((0, 0, 0, 0), x.dtype)
    # the input gradient's filters: each one's kernel flipped, filters and channels swapped
    tiled = _winograd_filters(weight, flipped=True) if want_input else np.empty((0, 0, 0), x.dtype)
    one_thread_blas_begin()
    try:
        if x.dtype == np.float32:
            status = _backward_by_tiles[float](x, grad3, g, group, du_parts, bias_parts, grad_bias is not None,
                                               target, want_input, tiled)
        else:
            status = _backward_by_tiles[double](x, grad3, g, group, du_parts, bias_parts, grad_bias is not None,
                                                target, want_input, tiled)
    finally:
        one_thread_blas_end()
    _check(status, "conv2d_backward", x)
    if grad_bias is not None:
        grad_bias[:] = bias_parts.sum(axis=0)
    return grad_x, _winograd_filter_grads(du_parts), grad_bias


def _backward_by_images_into(x, weight, grad_out, stride, padding, out_size, group, grad_x, grad_bias):
    """conv2d_backward image by image on the kernels' threads; grad_x and grad_bias (when not None) are filled."""
    n, f = grad_out.shape[:2]
    filters = weight.reshape(f, -1)
    threads = get_num_threads()
    weight_parts = np.zeros((threads, *filters.shape), dtype=x.dtype)
    bias_parts = np.zeros((threads, f if grad_bias is not None else 0))
    g = _geometry(x, weight.shape[2:], stride, padding, out_size)
    grad3 = grad_out.reshape(n, f, -1)
    want_input = grad_x is not None
    target = grad_x if want_input else np.empty((0, 0, 0, 0), x.dtype)
    one_thread_blas_begin()
    try:
        if x.dtype == np.float32:
            status = _backward_by_images[float](x, filters, grad3, g, group, weight_parts, bias_parts,
                                                grad_bias is not None, target, want_input)
        else:
            status = _backward_by_images[double](x, filters, grad3, g, group, weight_parts, bias_parts,
                                                 grad_bias is not None, target, want_input)
    finally:
        one_thread_blas_end()
    _check(status, "conv2d_backward", x)
    if grad_bias is not None:
        grad_bias[:] = bias_parts.sum(axis=0)
    return grad_x, weight_parts.sum(axis=0).reshape(weight.shape), grad_bias


def conv2d_backward(x, weight, grad_out, stride, padding, need_input_grad=True, need_bias_grad=True):
    kernel = "conv2d_backward"
    x, weight, stride, padding, (ho, wo) = conv2d_inputs(kernel, x, weight, stride, padding)
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    grad_out = float_input(kernel, "grad_out", grad_out, ndim=4, dtype=x.dtype)
    same_shape(kernel, "grad_out", grad_out, (n, f, ho, wo))
    grad_bias = np.zeros(f, dtype=x.dtype) if need_bias_grad else None
    if grad_out.size == 0:
        grad_x = np.zeros_like(x) if need_input_grad else None
        return grad_x, np.zeros_like(weight), grad_bias
    if _covers_input(x, weight, padding):
        grad2 = grad_out.reshape(n, f)
        if need_bias_grad:
            grad_bias = grad2.sum(axis=0)
        grad_weight = np.matmul(grad2.T, x.reshape(n, -1)).reshape(weight.shape)
        grad_x = np.matmul(grad2, weight.reshape(f, -1)).reshape(x.shape) if need_input_grad else None
        return grad_x, grad_weight, grad_bias

    grad_x = np.empty_like(x) if need_input_grad else None
    by_tiles = _by_tiles(x, weight, stride, padding, (ho, wo))
    group = _task_images(n, _tiles((ho, wo)) if by_tiles else ho * wo)
    if group and by_tiles:
        return _backward_by_tiles_into(x, weight, grad_out, padding, (ho, wo), group, grad_x, grad_bias)
    if group:
        return _backward_by_images_into(x, weight, grad_out, stride, padding, (ho, wo), group, grad_x, grad_bias)

    # A chunk of images at a time, so the column buffer stays within its budget: the weight and bias
    # gradients add up over the chunks, the input gradient is each chunk's own.
    grad_weight = None
    chunk_bias = np.zeros(f if need_bias_grad else 0, x.dtype)
    filters_t = weight.reshape(f, -1).T
    g = _geometry(x, (kh, kw), stride, padding, (ho, wo))
    for part in _image_chunks(n, c * kh * kw * ho * wo * x.itemsize):
        images = part.stop - part.start
        cols = scratch("conv.cols", (c * kh * kw, images * ho * wo), x.dtype)
        _im2col_into(kernel, x[part], cols, (kh, kw), stride, padding, (ho, wo))
        packed = scratch("conv.product", (f, images * ho * wo), x.dtype)
        grad3 = grad_out[part].reshape(images, f, ho * wo)
        if x.dtype == np.float32:
            _pack_grad[float](grad3, packed, chunk_bias, need_bias_grad)
        else:
            _pack_grad[double](grad3, packed, chunk_bias, need_bias_grad)
        if need_bias_grad:
            grad_bias += chunk_bias
        if grad_weight is None:
            grad_weight = gemm.matmul(packed, cols.T)
        else:
            gemm.matmul(packed, cols.T, out=grad_weight, accumulate=True)
        if need_input_grad:
            gemm.matmul(filters_t, packed, out=cols)  # the window gradients, into the spent cols buffer
            if x.dtype == np.float32:
                status = _col2im[float](cols, grad_x[part], g)
            else:
                status = _col2im[double](cols, grad_x[part], g)
            _check(status, kernel, x)
    return grad_x, grad_weight.reshape(weight.shape), grad_bias
