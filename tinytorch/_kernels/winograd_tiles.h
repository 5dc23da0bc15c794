/* The per-tile transforms of Winograd's F(2x2, 3x3) (winograd.pxd), for float (_f) and double (_d).
 *
 * Each function transforms one tile for n channels at once: the channels are the inner, contiguous
 * axis (winograd.pxd lays the images out channels-last first), so every line of the loop body is
 * one vector instruction over 8 or 16 channels. They are C rather than Cython for `restrict`: the
 * 16 inputs and 16 outputs are separate arrays, which the compiler cannot prove by itself, and
 * without that proof it kept the loops scalar.
 */
#include <stddef.h>

#define WINOGRAD_TILES(T, S)                                                                          \
/* v[xi * stride + i] = (B^T d B)[xi / 4][xi % 4] of channel i, where the 4x4 patch d has         */  \
/* d[a][b] at p[a * row + b * col + i].                                                           */  \
static inline void winograd_input_tile_##S(const T* restrict p, ptrdiff_t row, ptrdiff_t col,          \
                                           T* restrict v, ptrdiff_t stride, ptrdiff_t n) {            \
    const T* restrict p0 = p;                                                                          \
    const T* restrict p1 = p + row;                                                                    \
    const T* restrict p2 = p + 2 * row;                                                                \
    const T* restrict p3 = p + 3 * row;                                                                \
    _Pragma("omp simd")                                                                                \
    for (ptrdiff_t i = 0; i < n; i++) {                                                                \
        T r[4][4]; /* the rows of B^T d */                                                             \
        for (int b = 0; b < 4; b++) {                                                                  \
            T d0 = p0[b * col + i], d1 = p1[b * col + i], d2 = p2[b * col + i], d3 = p3[b * col + i];  \
            r[0][b] = d0 - d2;                                                                         \
            r[1][b] = d1 + d2;                                                                         \
            r[2][b] = d2 - d1;                                                                         \
            r[3][b] = d1 - d3;                                                                         \
        }                                                                                              \
        for (int a = 0; a < 4; a++) { /* times B */                                                    \
            v[(4 * a) * stride + i] = r[a][0] - r[a][2];                                               \
            v[(4 * a + 1) * stride + i] = r[a][1] + r[a][2];                                           \
            v[(4 * a + 2) * stride + i] = r[a][2] - r[a][1];                                           \
            v[(4 * a + 3) * stride + i] = r[a][1] - r[a][3];                                           \
        }                                                                                              \
    }                                                                                                  \
}                                                                                                      \
                                                                                                       \
/* The 2x2 outputs A^T m A of channel i, where m[a][b] = m[(4 a + b) * stride + i], to             */  \
/* y[a * row + b * col + i].                                                                      */  \
static inline void winograd_output_tile_##S(const T* restrict m, ptrdiff_t stride, T* restrict y,       \
                                            ptrdiff_t row, ptrdiff_t col, ptrdiff_t n) {               \
    _Pragma("omp simd")                                                                                \
    for (ptrdiff_t i = 0; i < n; i++) {                                                                \
        T s[4], t[4]; /* the rows of A^T m */                                                          \
        for (int b = 0; b < 4; b++) {                                                                  \
            T m0 = m[b * stride + i], m1 = m[(4 + b) * stride + i];                                    \
            T m2 = m[(8 + b) * stride + i], m3 = m[(12 + b) * stride + i];                             \
            s[b] = m0 + m1 + m2;                                                                       \
            t[b] = m1 - m2 - m3;                                                                       \
        }                                                                                              \
        y[i] = s[0] + s[1] + s[2]; /* times A */                                                       \
        y[col + i] = s[1] - s[2] - s[3];                                                               \
        y[row + i] = t[0] + t[1] + t[2];                                                               \
        y[row + col + i] = t[1] - t[2] - t[3];                                                         \
    }                                                                                                  \
}                                                                                                      \
                                                                                                       \
/* The adjoint of the output transform: z[xi * stride + i] = (A g A^T)[xi / 4][xi % 4] of           */  \
/* channel i, where the 2x2 block g has g[a][b] at p[a * row + b * col + i].                       */  \
static inline void winograd_gradient_tile_##S(const T* restrict p, ptrdiff_t row, ptrdiff_t col,       \
                                              T* restrict z, ptrdiff_t stride, ptrdiff_t n) {          \
    _Pragma("omp simd")                                                                                \
    for (ptrdiff_t i = 0; i < n; i++) {                                                                \
        T g00 = p[i], g01 = p[col + i], g10 = p[row + i], g11 = p[row + col + i];                      \
        T r[4][2] = {{g00, g01}, {g00 + g10, g01 + g11}, {g00 - g10, g01 - g11}, {-g10, -g11}};        \
        for (int a = 0; a < 4; a++) { /* the rows of A g, times A^T */                                 \
            z[(4 * a) * stride + i] = r[a][0];                                                         \
            z[(4 * a + 1) * stride + i] = r[a][0] + r[a][1];                                           \
            z[(4 * a + 2) * stride + i] = r[a][0] - r[a][1];                                           \
            z[(4 * a + 3) * stride + i] = -r[a][1];                                                    \
        }                                                                                              \
    }                                                                                                  \
}

WINOGRAD_TILES(float, f)
WINOGRAD_TILES(double, d)
