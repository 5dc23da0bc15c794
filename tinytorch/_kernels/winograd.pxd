# Winograd's F(2x2, 3x3) for the 3x3, stride-1 convolutions of conv.pyx: 16 multiplications per
# 2x2 block of outputs and (filter, channel) pair, where the windows' products take 36.
#
# For one channel, the 4x4 input patch d that a 2x2 block of outputs reads, and a 3x3 filter g,
#
#     Y (2x2) = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, on 4x4 matrices)
#
#           [1  0 -1  0]         [ 1    0    0 ]
#     B^T = [0  1  1  0]     G = [1/2  1/2  1/2]     A^T = [1  1  1  0]
#           [0 -1  1  0]         [1/2 -1/2  1/2]           [0  1 -1 -1]
#           [0  1  0 -1]         [ 0    0    1 ]
#
# (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). Summed over the
# channels, each of the 16 elementwise positions xi becomes one matrix product:
#
#     M[xi] (tiles, F) = V[xi] (tiles, C) @ U[xi] (C, F)
#
# with U = G g G^T of every filter (conv.pyx computes it once a call, in NumPy) and V = B^T d B of
# every patch; A^T . A of M's tiles gives the output. B^T and A^T hold only 0 and +-1, so the
# transforms are additions, done a tile at a time for all channels at once (winograd_tiles.h) on a
# channels-last copy of each image; the products are one-thread BLAS calls, like the windows'.
#
# The backward needs no other algorithm. The input gradient is a convolution too: the output
# gradient's, by the filters flipped and with filters and channels swapped (padding 2 - p for
# padding p). The filters' gradient follows from the chain rule through the same formula: with
# Z = A g A^T of every 2x2 block g of the output gradient, dU[xi] (C, F) = V[xi]^T @ Z[xi] summed
# over the tiles, and the filters' gradient is G^T dU G (conv.pyx, in NumPy).
# The transforms are exact in real arithmetic; in floating point they round differently from the
# direct sum, by a few units in the last place of the operands' magnitudes.

from cython cimport floating

from .gemm cimport NO_TRANS, TRANS, blas_gemm


cdef extern from "winograd_tiles.h" nogil:
    void winograd_input_tile_f(const float* p, Py_ssize_t row, Py_ssize_t col, float* v, Py_ssize_t stride,
                               Py_ssize_t n)
    void winograd_input_tile_d(const double* p, Py_ssize_t row, Py_ssize_t col, double* v, Py_ssize_t stride,
                               Py_ssize_t n)
    void winograd_output_tile_f(const float* m, Py_ssize_t stride, float* y, Py_ssize_t row, Py_ssize_t col,
                                Py_ssize_t n)
    void winograd_output_tile_d(const double* m, Py_ssize_t stride, double* y, Py_ssize_t row, Py_ssize_t col,
                                Py_ssize_t n)
    void winograd_gradient_tile_f(const float* p, Py_ssize_t row, Py_ssize_t col, float* z, Py_ssize_t stride,
                                  Py_ssize_t n)
    void winograd_gradient_tile_d(const double* p, Py_ssize_t row, Py_ssize_t col, double* z, Py_ssize_t stride,
                                  Py_ssize_t n)


cdef inline void _channels_last(const floating* image, Py_ssize_t channels, Py_ssize_t channel_stride,
                                Py_ssize_t h, Py_ssize_t w, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t wp,
                                floating* padded) noexcept nogil:
    # padded[((r + ph) * wp + col + pw) * channels + ci] = image[ci * channel_stride + r * w + col]
    cdef Py_ssize_t ci, r, col
    cdef const floating* src
    cdef floating* dst
    for ci in range(channels):
        for r in range(h):
            src = image + ci * channel_stride + r * w
            dst = padded + ((r + ph) * wp + pw) * channels + ci
            for col in range(w):
                dst[col * channels] = src[col]


cdef inline void _channels_first(const floating* y, Py_ssize_t filters, Py_ssize_t wy, Py_ssize_t ho, Py_ssize_t wo,
                                 floating* out, Py_ssize_t filter_stride) noexcept nogil:
    # out[fi * filter_stride + r * wo + col] = y[(r * wy + col) * filters + fi], for r < ho, col < wo
    cdef Py_ssize_t fi, r, col
    cdef const floating* src
    cdef floating* dst
    for fi in range(filters):
        for r in range(ho):
            src = y + r * wy * filters + fi
            dst = out + fi * filter_stride + r * wo
            for col in range(wo):
                dst[col] = src[col * filters]


cdef inline Py_ssize_t tile_count(Py_ssize_t ho, Py_ssize_t wo) noexcept nogil:
    # The 2x2 output blocks that cover an ho x wo plane (those on an odd edge overhang it).
    return ((ho + 1) // 2) * ((wo + 1) // 2)


cdef inline Py_ssize_t tiled_plane(Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t channels, Py_ssize_t filters) noexcept nogil:
    # The values of winograd_conv's ``padded`` for an ho x wo output plane: an input image,
    # channels-last and zero-padded to (2 th + 2) x (2 tw + 2), then its output tiles, (2 th) x (2 tw) x filters.
    cdef Py_ssize_t th = (ho + 1) // 2, tw = (wo + 1) // 2
    return (2 * th + 2) * (2 * tw + 2) * channels + 4 * th * tw * filters


cdef inline void input_tiles(const floating* images, Py_ssize_t count, Py_ssize_t channels,
                             Py_ssize_t image_stride, Py_ssize_t channel_stride, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t ph, Py_ssize_t pw, floating* padded, floating* v) noexcept nogil:
    # v[xi, ni*th*tw + ty*tw + tx, ci] = (B^T d B)[xi // 4, xi % 4] of image ni's channel ci (at
    # images + ni*image_stride + ci*channel_stride), d the 4x4 input patch of the output block at
    # (2 ty, 2 tx), the padding (ph, pw) included. ``padded``: as winograd_conv says.
    cdef Py_ssize_t ho = h + 2 * ph - 2, wo = w + 2 * pw - 2, th = (ho + 1) // 2, tw = (wo + 1) // 2
    cdef Py_ssize_t wp = 2 * tw + 2, tiles = th * tw, ld = count * tiles, ni, ty, tx, col
    for ni in range(count):
        # the image channels-last, then each tile's 16 transformed values for all channels at once
        _channels_last(images + ni * image_stride, channels, channel_stride, h, w, ph, pw, wp, padded)
        for ty in range(th):
            for tx in range(tw):
                col = ni * tiles + ty * tw + tx
                if floating is float:
                    winograd_input_tile_f(padded + (2 * ty * wp + 2 * tx) * channels, wp * channels, channels,
                                          v + col * channels, ld * channels, channels)
                else:
                    winograd_input_tile_d(padded + (2 * ty * wp + 2 * tx) * channels, wp * channels, channels,
                                          v + col * channels, ld * channels, channels)


cdef inline void gradient_tiles(const floating* grads, Py_ssize_t count, Py_ssize_t filters,
                                Py_ssize_t image_stride, Py_ssize_t filter_stride, Py_ssize_t ho, Py_ssize_t wo,
                                floating* padded, floating* z) noexcept nogil:
    # z[xi, ni*th*tw + ty*tw + tx, fi] = (A g A^T)[xi // 4, xi % 4], g the 2x2 block at (2 ty, 2 tx)
    # of the output gradient's plane (ni, fi) (at grads + ni*image_stride + fi*filter_stride), zero
    # where it overhangs the plane. ``padded``: (2 th) x (2 tw) x filters values, zero outside the plane.
    cdef Py_ssize_t th = (ho + 1) // 2, tw = (wo + 1) // 2, tiles = th * tw, ld = count * tiles, ni, ty, tx, col
    for ni in range(count):
        _channels_last(grads + ni * image_stride, filters, filter_stride, ho, wo, 0, 0, 2 * tw, padded)
        for ty in range(th):
            for tx in range(tw):
                col = ni * tiles + ty * tw + tx
                if floating is float:
                    winograd_gradient_tile_f(padded + (4 * ty * tw + 2 * tx) * filters, 2 * tw * filters, filters,
                                             z + col * filters, ld * filters, filters)
                else:
                    winograd_gradient_tile_d(padded + (4 * ty * tw + 2 * tx) * filters, 2 * tw * filters, filters,
                                             z + col * filters, ld * filters, filters)


cdef inline void winograd_conv(bint single, const floating* images, Py_ssize_t count, Py_ssize_t channels,
                               Py_ssize_t image_stride, Py_ssize_t channel_stride, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t ph, Py_ssize_t pw, const floating* u, Py_ssize_t filters,
                               floating* out, Py_ssize_t out_image_stride, Py_ssize_t out_filter_stride,
                               floating* padded, floating* v, floating* m) noexcept nogil:
    # The 3x3, stride-1 convolution (padding ph, pw) of ``count`` images (image ni's channel ci at
    # images + ni*image_stride + ci*channel_stride) by the transformed filters u (16, channels,
    # filters), on the calling thread; output plane (ni, fi), (h + 2 ph - 2) x (w + 2 pw - 2), at
    # out + ni*out_image_stride + fi*out_filter_stride. Buffers: padded, tiled_plane(ho, wo, channels,
    # filters) values, zeroed once by the caller and then left to this function; v 16 x count*th*tw x
    # channels and m 16 x count*th*tw x filters, with th, tw the output's tiles (half its sides, rounded up).
    cdef Py_ssize_t ho = h + 2 * ph - 2, wo = w + 2 * pw - 2, th = (ho + 1) // 2, tw = (wo + 1) // 2
    cdef Py_ssize_t wp = 2 * tw + 2, tiles = th * tw, ld = count * tiles, ni, ty, tx, col, xi
    cdef floating* ys = padded + (2 * th + 2) * wp * channels
    input_tiles(images, count, channels, image_stride, channel_stride, h, w, ph, pw, padded, v)
    for xi in range(16):
        blas_gemm(single, NO_TRANS, NO_TRANS, ld, filters, channels, v + xi * ld * channels, channels,
                  u + xi * channels * filters, filters, 0.0, m + xi * ld * filters, filters)
    for ni in range(count):
        for ty in range(th):
            for tx in range(tw):
                col = ni * tiles + ty * tw + tx
                if floating is float:
                    winograd_output_tile_f(m + col * filters, ld * filters, ys + (4 * ty * tw + 2 * tx) * filters,
                                           2 * tw * filters, filters, filters)
                else:
                    winograd_output_tile_d(m + col * filters, ld * filters, ys + (4 * ty * tw + 2 * tx) * filters,
                                           2 * tw * filters, filters, filters)
        _channels_first(ys, filters, 2 * tw, ho, wo, out + ni * out_image_stride, out_filter_stride)


cdef inline void winograd_filter_grads(bint single, const floating* images, const floating* grads, Py_ssize_t count,
                                       Py_ssize_t channels, Py_ssize_t filters, Py_ssize_t h, Py_ssize_t w,
                                       Py_ssize_t ph, Py_ssize_t pw, floating* du, floating* padded,
                                       floating* grad_padded, floating* v, floating* z) noexcept nogil:
    # du[xi] (channels, filters) += V[xi]^T @ Z[xi] over the tiles of ``count`` images (NCHW at
    # images) and their output gradients (NCHW at grads): the gradient of the transformed filters
    # U = G g G^T, which the caller turns into the filters' own, G^T du G. Buffers: padded as
    # winograd_conv's, grad_padded (2 th) x (2 tw) x filters values zeroed once by the caller, v
    # 16 x count*th*tw x channels, z 16 x count*th*tw x filters.
    cdef Py_ssize_t ho = h + 2 * ph - 2, wo = w + 2 * pw - 2, ld = count * tile_count(ho, wo), xi
    input_tiles(images, count, channels, channels * h * w, h * w, h, w, ph, pw, padded, v)
    gradient_tiles(grads, count, filters, filters * ho * wo, ho * wo, ho, wo, grad_padded, z)
    for xi in range(16):
        blas_gemm(single, TRANS, NO_TRANS, channels, filters, ld, v + xi * ld * channels, channels,
                  z + xi * ld * filters, filters, 1.0, du + xi * channels * filters, filters)
