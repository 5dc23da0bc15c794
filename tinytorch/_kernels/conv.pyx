"""2-D convolution, compiled: im2col and col2im as parallel loops, the three products on the matmul kernel.

Same names, arguments and results as in ``reference.py``, which documents them. With K = C*KH*KW
input values per window and P = Ho*Wo windows per image, the windows of the whole batch are laid
out as one column matrix ``cols`` (K, N*P), so each product is a single large matrix product, the
shape BLAS runs fastest here (measured against per-image products). A batch whose columns would pass
COLS_BUDGET_BYTES is done a chunk of images at a time, each chunk still one large product:

    forward          out (F, N*P)     = W (F, K)        @ cols (K, N*P)
    weight gradient  dW (F, K)        = g (F, N*P)      @ cols.T
    input gradient   dcols (K, N*P)   = W.T (K, F)      @ g (F, N*P)   then col2im: add back onto x

The products go to ``gemm.matmul``: BLAS, called from the same OpenMP threads that run the loops
(gemm.pyx says why one pool matters). Cython does what BLAS cannot: copy the windows out (im2col), move the product into NCHW order
with the bias added, and add window gradients back onto the input (col2im), each loop parallel
over rows or image planes. ``cols`` and ``g`` live in reused scratch buffers (see workspace.py);
everything returned is freshly allocated.

The evaluation-mode ``conv2d_fused_forward`` unpacks the product straight into the ReLU'd and
max-pooled output (a batch norm comes folded into the filters), so the full-size activations are
never written; ``conv2d_forward`` uses the same unpacking without ReLU and pool.
"""

import numpy as np
cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from .loops cimport sum_of
from .contracts import channel_vector, conv2d_fused_inputs, conv2d_inputs, float_input, same_shape
from .workspace import scratch
from . import gemm


cdef enum:
    FAILED = 1  # a thread could not allocate its padded plane

# The column buffer of one call holds K = C*KH*KW values for every output position of the batch: for
# the first 3x3 convolution of a 256-image CIFAR batch at 31x31 and 24 channels, 212 MB. Batches whose
# buffer would be larger are done this many bytes' worth of images at a time (the products stay large
# enough for BLAS: at least 20,000 columns in every case the course runs).
COLS_BUDGET_BYTES = 64 << 20


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef int _im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, Py_ssize_t kh, Py_ssize_t kw,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept:
    # cols[(c, i, j), n*P + oh*Wo + ow] = xpad[n, c, oh*sh + i, ow*sw + j]. One task is one (image,
    # channel) plane: it is copied into the thread's zero-bordered plane buffer once, then every
    # window row is a plain copy from there, with no bounds tests (rows are short: Wo is 8 to 32).
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], p = ho * wo
    cdef Py_ssize_t hp = h + 2 * ph, wp = w + 2 * pw, task, ni, ci, i, j, oh, ow, r
    cdef floating* dst
    cdef const floating* src
    cdef floating* padded = NULL  # each thread allocates its own in the parallel block
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            padded = <floating*>calloc(hp * wp, sizeof(floating))  # the border stays zero
            for task in prange(n * c, schedule="static"):
                if padded == NULL:
                    status |= FAILED
                    continue
                ni = task // c
                ci = task - ni * c
                for r in range(h):
                    memcpy(&padded[(r + ph) * wp + pw], &x[ni, ci, r, 0], w * sizeof(floating))
                for i in range(kh):
                    for j in range(kw):
                        dst = &cols[(ci * kh + i) * kw + j, ni * p]
                        for oh in range(ho):
                            src = &padded[(oh * sh + i) * wp + j]
                            if sw == 1:
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
cdef int _col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] gx, Py_ssize_t kh, Py_ssize_t kw,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t ho, Py_ssize_t wo) noexcept:
    # The adjoint of _im2col: every window value is added back where it was read, into the thread's
    # padded plane buffer, whose interior is then copied out (the padding's share is dropped). One
    # task owns one (image, channel) plane, so overlapping windows never race; input elements no
    # window reads (stride larger than the kernel) keep the zero they start with.
    cdef Py_ssize_t n = gx.shape[0], c = gx.shape[1], h = gx.shape[2], w = gx.shape[3], p = ho * wo
    cdef Py_ssize_t hp = h + 2 * ph, wp = w + 2 * pw, task, ni, ci, i, j, oh, ow, r
    cdef floating* dst
    cdef const floating* src
    cdef floating* padded = NULL  # each thread allocates its own in the parallel block
    cdef int status = 0
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        with parallel():
            padded = <floating*>malloc(hp * wp * sizeof(floating))
            for task in prange(n * c, schedule="static"):
                if padded == NULL:
                    status |= FAILED
                    continue
                ni = task // c
                ci = task - ni * c
                memset(padded, 0, hp * wp * sizeof(floating))
                for i in range(kh):
                    for j in range(kw):
                        src = &cols[(ci * kh + i) * kw + j, ni * p]
                        for oh in range(ho):
                            dst = &padded[(oh * sh + i) * wp + j]
                            if sw == 1:
                                for ow in range(wo):
                                    dst[ow] += src[oh * wo + ow]
                            else:
                                for ow in range(wo):
                                    dst[ow * sw] += src[oh * wo + ow]
                for r in range(h):
                    memcpy(&gx[ni, ci, r, 0], &padded[(r + ph) * wp + pw], w * sizeof(floating))
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


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _unpack_relu_pool(const floating[:, ::1] product, const floating[::1] bias, bint has_bias, bint relu,
                            Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t ph, Py_ssize_t pw,
                            floating[:, :, :, ::1] out) noexcept:
    # out[n, f, i, j] = relu(max of the (ph, pw) window at (i ph, j pw) of product[f, n*P:(n+1)*P] + bias[f]):
    # the product's (Ho, Wo) plane is read once and only the pooled plane is written, where the
    # unfused layers write and read the full plane three more times (batch norm, ReLU, pool).
    cdef Py_ssize_t n = out.shape[0], f = out.shape[1], hq = out.shape[2], wq = out.shape[3]
    cdef Py_ssize_t p = ho * wo, task, ni, fi, i, j, a, c
    cdef floating b, best, v
    cdef const floating* plane
    cdef const floating* row
    cdef floating* dst
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for task in prange(n * f, schedule="static"):
            ni = task // f
            fi = task - ni * f
            b = bias[fi] if has_bias else 0
            plane = &product[fi, ni * p]
            dst = &out[ni, fi, 0, 0]
            if ph == 1 and pw == 1:
                _bias_relu_span(plane, dst, p, b, relu)
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
        raise MemoryError(f"{kernel}: could not allocate a padded plane of {x.shape[2:]} per thread")


def _im2col_into(kernel, x, cols, window, stride, padding, out_size):
    args = (*window, *stride, *padding, *out_size)
    if x.dtype == np.float32:
        status = _im2col[float](x, cols, *args)
    else:
        status = _im2col[double](x, cols, *args)
    _check(status, kernel, x)


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
    """out = unpack(W @ im2col(x)), a chunk of images at a time, so the column buffer stays within its budget."""
    n, c = x.shape[:2]
    f, _, kh, kw = weight.shape
    filters = weight.reshape(f, -1)
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

    # A chunk of images at a time, so the column buffer stays within its budget: the weight and bias
    # gradients add up over the chunks, the input gradient is each chunk's own.
    grad_weight = None
    grad_x = np.empty_like(x) if need_input_grad else None
    chunk_bias = np.zeros(f if need_bias_grad else 0, x.dtype)
    filters_t = weight.reshape(f, -1).T
    args = (kh, kw, *stride, *padding, ho, wo)
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
                status = _col2im[float](cols, grad_x[part], *args)
            else:
                status = _col2im[double](cols, grad_x[part], *args)
            _check(status, kernel, x)
    return grad_x, grad_weight.reshape(weight.shape), grad_bias
