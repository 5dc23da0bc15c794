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
