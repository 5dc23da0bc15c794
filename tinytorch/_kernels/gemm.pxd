# The matmul kernel's one-thread BLAS call, for kernels that run products inside their own parallel
# loops (conv.pyx): each thread multiplies its own blocks. gemm.pyx documents the protocol.

cdef enum:
    NO_TRANS = 111
    TRANS = 112

cdef bint blas_ready() noexcept
cdef void one_thread_blas_begin() noexcept
cdef void one_thread_blas_end() noexcept
cdef void one_thread_blas_worker() noexcept nogil
cdef void blas_gemm(bint single, int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const void* a, Py_ssize_t lda, const void* b, Py_ssize_t ldb, double beta,
                    void* c, Py_ssize_t ldc) noexcept nogil
