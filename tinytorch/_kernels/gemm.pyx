"""Matrix products on the kernels' own OpenMP threads, through the BLAS that NumPy loaded.

The ``matmul`` kernel (its reference is ``np.matmul``) does the large products of the Dense layers,
of ``Tensor @ Tensor`` and of the convolutions' small batches (larger batches call its one-thread
BLAS from their own loops, image by image: ``gemm.pxd``). Why not just ``np.matmul``: NumPy's
OpenBLAS runs a product on a thread pool of its own, so a convolution, which alternates its copy
loops (OpenMP's threads) with three products, kept three threads busy by turns on two cores: the
main thread, an OpenMP worker and an OpenBLAS worker. Both pools put their threads to sleep between calls
(``OMP_WAIT_POLICY=PASSIVE``, ``OPENBLAS_THREAD_TIMEOUT``), and after a rest (a notebook cell, a
server between requests) Linux wakes a sleeping worker onto the core of the thread that woke it.
``perf sched`` showed the main thread and a worker taking turns on one core while the other core
idled, for the first two calls after a 0.2 s pause: 9 to 12 involuntary context switches per
call, none later, and a 32->64 channel convolution's forward and backward 1.3 to 1.7 times slower
than in a loop.

Here each OpenMP thread computes its own block of the product with a one-thread call of the same
BLAS (``openblas_set_num_threads_local(1)``, OpenBLAS 0.3.27+, put back after), so the products
share the kernels' threads, as PyTorch's share its one pool. That alone does not keep the two
threads apart: they still sleep at every gap inside a layer's work. ``kernels.py`` therefore lets them spin briefly before sleeping (``GOMP_SPINCOUNT``), which
would have taken the core from a waiting OpenBLAS worker before, and no longer does (it does not
when NumPy was imported first: OpenBLAS's threads then spin after NumPy's own products). Measured
(each side in its own process, first call after a 0.2 s pause, 7 rounds, median): the 32->64
convolution 38.9 -> 23.4 ms (PyTorch 24.9), the 64->128 one 39.6 -> 19.3 ms (PyTorch 22.6);
in a loop both stay where they were.

A product is split between the threads by the rows of the result or by its columns, whichever
are more, or, when both are few (a convolution's weight gradient), by the summed axis, each thread
then writing a partial product that is added up after. Operands must be float32 or float64, of
one dtype, with rows or columns contiguous (the layouts BLAS takes); anything else, and products under MIN_WORK multiply-adds, go to
``np.matmul``, as they do before ``install`` is given the BLAS's functions (``kernels.py`` finds
them with ``blas_symbols.py``; ``tito system info`` says where products run).

One limit: in NumPy's OpenBLAS the "local" thread setting is in fact one value for the whole
process, so while a product runs here, a NumPy product in another Python thread runs on one
thread too. It is put back when the last product running here ends. Answers are never affected.
"""

import numpy as np
from cython.parallel cimport parallel
from libc.stdint cimport int64_t, uintptr_t

from .contracts import matmul_inputs

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int tinytorch_gemm_thread(void) { return omp_get_thread_num(); }
    static int tinytorch_gemm_threads(void) { return omp_get_max_threads(); }
    static int tinytorch_gemm_team(void) { return omp_get_num_threads(); }
    #else
    static int tinytorch_gemm_thread(void) { return 0; }
    static int tinytorch_gemm_threads(void) { return 1; }
    static int tinytorch_gemm_team(void) { return 1; }
    #endif
    """
    int tinytorch_gemm_thread() nogil
    int tinytorch_gemm_threads() nogil
    int tinytorch_gemm_team() nogil

cdef enum:
    ROW_MAJOR = 101

# CBLAS with 64-bit integers (NumPy's own OpenBLAS) and with 32-bit ones
ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                           const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int,
                           const float*, int, float, float*, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int) noexcept nogil
ctypedef int (*set_local_t)(int) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil

cdef void* _sgemm = NULL
cdef void* _dgemm = NULL
cdef set_local_t _set_local = NULL
cdef get_threads_t _get_threads = NULL
cdef bint _ilp64 = True
# Products running now, in any Python thread, and the BLAS setting in force before the first began
# (read and written with the GIL held, so Python threads take turns at them)
cdef int _running = 0
cdef int _saved = 0

# below this many multiply-adds a product stays on np.matmul: waking threads would cost more
MIN_WORK = 1 << 18


def install(sgemm, dgemm, set_local_threads, get_threads, ilp64):
    """Use these CBLAS functions (addresses as ints; any of the first three None: back to ``np.matmul``)."""
    global _sgemm, _dgemm, _set_local, _get_threads, _ilp64
    if not (sgemm and dgemm and set_local_threads):
        _sgemm = _dgemm = NULL
        _set_local = NULL
        _get_threads = NULL
        return
    _sgemm = <void*><uintptr_t>sgemm
    _dgemm = <void*><uintptr_t>dgemm
    _set_local = <set_local_t><uintptr_t>set_local_threads
    _get_threads = <get_threads_t><uintptr_t>get_threads if get_threads else NULL
    _ilp64 = bool(ilp64)


cdef inline void _restore(int previous) noexcept nogil:
    # openblas_set_num_threads_local answers the count in force, set or not: when that is the
    # library's own count, go back to "not set" (0), so a later openblas_set_num_threads still counts
    if _get_threads != NULL and previous == _get_threads():
        previous = 0
    _set_local(previous)


cdef bint blas_ready() noexcept:
    return _set_local != NULL


cdef void one_thread_blas_begin() noexcept:
    # Call with the GIL held, before the threads multiply. In NumPy's OpenBLAS the "local" thread
    # setting is in fact one value for the whole process, so the first product to start sets it and
    # the last to end puts it back, whichever Python threads run them.
    global _running, _saved
    if _running == 0:
        _saved = _set_local(1)
    _running += 1


cdef void one_thread_blas_end() noexcept:
    # Call with the GIL held, after the threads are done.
    global _running
    _running -= 1
    if _running == 0:
        _restore(_saved)


cdef void one_thread_blas_worker() noexcept nogil:
    # Each worker thread sets it too, for builds where the setting is per thread (a worker runs kernels only).
    _set_local(1)


def installed():
    """True when products run on the kernels' threads (``install`` was given a BLAS)."""
    return blas_ready()


cdef void blas_gemm(bint single, int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, double beta,
                    void* c, Py_ssize_t ldc) noexcept nogil:
    if single:
        if _ilp64:
            (<sgemm64_t>_sgemm)(ROW_MAJOR, ta, tb, m, n, k, 1.0, <const float*>a, lda, <const float*>b, ldb,
                                <float>beta, <float*>c, ldc)
        else:
            (<sgemm32_t>_sgemm)(ROW_MAJOR, ta, tb, <int>m, <int>n, <int>k, 1.0, <const float*>a, <int>lda,
                                <const float*>b, <int>ldb, <float>beta, <float*>c, <int>ldc)
    else:
        if _ilp64:
            (<dgemm64_t>_dgemm)(ROW_MAJOR, ta, tb, m, n, k, 1.0, <const double*>a, lda, <const double*>b, ldb,
                                beta, <double*>c, ldc)
        else:
            (<dgemm32_t>_dgemm)(ROW_MAJOR, ta, tb, <int>m, <int>n, <int>k, 1.0, <const double*>a, <int>lda,
                                <const double*>b, <int>ldb, beta, <double*>c, <int>ldc)


cdef _layout(x):
    """(transposed?, leading dimension) of a 2-D array whose rows or columns are contiguous; None otherwise."""
    item = x.itemsize
    rows, cols = x.shape
    s0, s1 = x.strides
    if (s1 == item or cols == 1) and s0 >= max(1, cols) * item and s0 % item == 0:
        return False, s0 // item
    if (s0 == item or rows == 1) and s1 >= max(1, rows) * item and s1 % item == 0:
        return True, s1 // item
    return None


def matmul(a, b, out=None, accumulate=False):
    """Same as ``reference.matmul``: ``a @ b``, into ``out`` when given, or ``out += a @ b``.

    On the kernels' threads when a BLAS is installed, both operands are float32 or both float64
    with their rows or columns contiguous, and the product has at least MIN_WORK multiply-adds;
    otherwise ``np.matmul`` (NumPy's BLAS, as the reference).
    """
    a, b = matmul_inputs("matmul", a, b, out, accumulate)
    m, k = a.shape
    n = b.shape[1]
    dtype = np.result_type(a, b)
    la, lb = _layout(a), _layout(b)
    work = m * n * k
    if (_set_local == NULL or a.dtype != b.dtype or dtype not in (np.float32, np.float64) or la is None
            or lb is None or work < MIN_WORK or work == 0):
        if accumulate:
            out += np.matmul(a, b)
            return out
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    cdef bint single = dtype == np.float32
    cdef int ta = TRANS if la[0] else NO_TRANS
    cdef int tb = TRANS if lb[0] else NO_TRANS
    cdef Py_ssize_t lda = la[1], ldb = lb[1], ldc = n, M = m, N = n, K = k
    cdef Py_ssize_t item = a.itemsize
    cdef char* pa = <char*><uintptr_t>a.ctypes.data
    cdef char* pb = <char*><uintptr_t>b.ctypes.data
    cdef char* pc = <char*><uintptr_t>out.ctypes.data
    cdef double beta = 1.0 if accumulate else 0.0
    cdef int threads = tinytorch_gemm_threads()
    cdef int t, team
    cdef Py_ssize_t start, stop
    cdef char* pp = NULL
    cdef Py_ssize_t block = M * N * item
    cdef int split = 0  # 0: one thread; 1: rows; 2: columns; 3: the summed axis
    if threads > 1:
        split = 1 if M >= N and M >= 64 * threads else (2 if N >= 64 * threads else 3)
    if split == 3:
        partials = np.zeros((threads - 1, m, n), dtype=dtype)
        pp = <char*><uintptr_t>partials.ctypes.data
    # one-thread BLAS calls from here on, in every thread of the loop
    one_thread_blas_begin()
    with nogil:
        if split == 0:
            blas_gemm(single, ta, tb, M, N, K, pa, lda, pb, ldb, beta, pc, ldc)
        else:
            with parallel(num_threads=threads):
                t = tinytorch_gemm_thread()
                team = tinytorch_gemm_team()  # OpenMP may give fewer threads than asked
                if t > 0:
                    one_thread_blas_worker()
                if split == 1:
                    # rows of out, and of op(a): row i of a, or column i of the stored matrix if transposed
                    start = M * t // team
                    stop = M * (t + 1) // team
                    blas_gemm(single, ta, tb, stop - start, N, K, pa + (start * item if ta == TRANS else start * lda * item),
                              lda, pb, ldb, beta, pc + start * ldc * item, ldc)
                elif split == 2:
                    # columns of out, and of op(b): column j of b, or row j of the stored matrix if transposed
                    start = N * t // team
                    stop = N * (t + 1) // team
                    blas_gemm(single, ta, tb, M, stop - start, K, pa, lda, pb + (start * ldb * item if tb == TRANS else start * item),
                              ldb, beta, pc + start * item, ldc)
                else:
                    # the summed axis: thread 0 adds into out, the others write a block of partials each
                    start = K * t // team
                    stop = K * (t + 1) // team
                    blas_gemm(single, ta, tb, M, N, stop - start,
                              pa + (start * lda * item if ta == TRANS else start * item), lda,
                              pb + (start * item if tb == TRANS else start * ldb * item), ldb,
                              beta if t == 0 else 0.0, pc if t == 0 else pp + (t - 1) * block, N)
    one_thread_blas_end()
    if split == 3:
        out += partials.sum(axis=0)
    return out
