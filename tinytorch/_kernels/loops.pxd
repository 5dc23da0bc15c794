# Inline reductions shared by the compiled kernels; each module that cimports them compiles its own copy.
#
# A plain `total += p[i]` loop runs one addition per floating-point latency (about 4 cycles): the
# compiler may not reorder the additions without -ffast-math, so it neither pipelines nor vectorises
# the loop. Eight independent partial sums (combined at the end) let it do both. Sums are kept in
# double, so float32 statistics over millions of values stay accurate.

from cython cimport floating


cdef inline double sum_of(const floating* p, Py_ssize_t n) noexcept nogil:
    """p[0] + ... + p[n-1]."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        a0 = a0 + p[i]
        a1 = a1 + p[i + 1]
        a2 = a2 + p[i + 2]
        a3 = a3 + p[i + 3]
        a4 = a4 + p[i + 4]
        a5 = a5 + p[i + 5]
        a6 = a6 + p[i + 6]
        a7 = a7 + p[i + 7]
        i = i + 8
    while i < n:
        a0 = a0 + p[i]
        i = i + 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


cdef inline double sum_of_squared_deviations(const floating* p, Py_ssize_t n, double mean) noexcept nogil:
    """(p[0] - mean)^2 + ... + (p[n-1] - mean)^2."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, d0, d1, d2, d3
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        d0 = p[i] - mean
        d1 = p[i + 1] - mean
        d2 = p[i + 2] - mean
        d3 = p[i + 3] - mean
        a0 = a0 + d0 * d0
        a1 = a1 + d1 * d1
        a2 = a2 + d2 * d2
        a3 = a3 + d3 * d3
        i = i + 4
    while i < n:
        d0 = p[i] - mean
        a0 = a0 + d0 * d0
        i = i + 1
    return (a0 + a1) + (a2 + a3)


cdef inline double sum_of_centred_products(const floating* g, const floating* p, Py_ssize_t n, double mean) noexcept nogil:
    """g[0] * (p[0] - mean) + ... + g[n-1] * (p[n-1] - mean)."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        a0 = a0 + g[i] * (p[i] - mean)
        a1 = a1 + g[i + 1] * (p[i + 1] - mean)
        a2 = a2 + g[i + 2] * (p[i + 2] - mean)
        a3 = a3 + g[i + 3] * (p[i + 3] - mean)
        i = i + 4
    while i < n:
        a0 = a0 + g[i] * (p[i] - mean)
        i = i + 1
    return (a0 + a1) + (a2 + a3)


cdef struct TwoSums:
    double plain
    double centred


cdef inline TwoSums weighted_sums(const floating* g, const floating* w, const floating* p, Py_ssize_t n,
                                  floating mean) noexcept nogil:
    """The sums of g[i] * w[i] and of g[i] * w[i] * (p[i] - mean): a layer norm's backward, for one row.

    Returned as one struct, so that a prange body assigning it gets a copy per thread (Cython
    privatises assigned variables, not what is written through a pointer or into an array)."""
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0
    cdef floating v0, v1, v2, v3
    cdef Py_ssize_t i = 0
    cdef TwoSums out
    while i + 4 <= n:
        v0 = g[i] * w[i]
        v1 = g[i + 1] * w[i + 1]
        v2 = g[i + 2] * w[i + 2]
        v3 = g[i + 3] * w[i + 3]
        a0 = a0 + v0
        a1 = a1 + v1
        a2 = a2 + v2
        a3 = a3 + v3
        c0 = c0 + v0 * (p[i] - mean)
        c1 = c1 + v1 * (p[i + 1] - mean)
        c2 = c2 + v2 * (p[i + 2] - mean)
        c3 = c3 + v3 * (p[i + 3] - mean)
        i = i + 4
    while i < n:
        v0 = g[i] * w[i]
        a0 = a0 + v0
        c0 = c0 + v0 * (p[i] - mean)
        i = i + 1
    out.plain = (a0 + a1) + (a2 + a3)
    out.centred = (c0 + c1) + (c2 + c3)
    return out
