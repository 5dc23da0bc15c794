"""How many OpenMP threads the compiled kernels use (their ``prange`` loops), and whether OpenMP is in.

This module holds no kernel. It compiles with or without OpenMP: the C below asks the compiler
(``_OPENMP`` is defined only under -fopenmp), so a build without OpenMP reports one thread and
ignores requests for more, instead of failing to link ``omp_set_num_threads``.

The setting follows OpenMP's rules: it applies to the calling thread and to the parallel loops it
starts; the ``OMP_NUM_THREADS`` environment variable sets the starting value for every thread.
The large matrix products (the matmul kernel, gemm.pyx) run on these same threads. NumPy's own
products, and the small ones the matmul kernel leaves to it, run on NumPy's BLAS thread pool, sized
by ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` before NumPy is first imported.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int tinytorch_openmp_enabled(void) { return 1; }
    static void tinytorch_set_threads(int n) { omp_set_num_threads(n); }
    static int tinytorch_get_threads(void) { return omp_get_max_threads(); }
    #else
    static int tinytorch_openmp_enabled(void) { return 0; }
    static void tinytorch_set_threads(int n) { (void)n; }
    static int tinytorch_get_threads(void) { return 1; }
    #endif
    """
    int tinytorch_openmp_enabled() nogil
    void tinytorch_set_threads(int n) nogil
    int tinytorch_get_threads() nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP (so their loops can run on several threads)."""
    return bool(tinytorch_openmp_enabled())


def set_num_threads(n):
    """Use ``n`` threads (>= 1) in the kernels' parallel loops; without OpenMP the kernels stay on one."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    tinytorch_set_threads(n)


def get_num_threads():
    """The number of threads the kernels' next parallel loop will use (1 without OpenMP)."""
    return tinytorch_get_threads()
