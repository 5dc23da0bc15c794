"""Fused scaled-dot-product attention, compiled.

Same names, arguments and results as in ``reference.py``, which documents them. One (batch, head)
matrix is the unit of work: each thread takes whole heads (``prange``) and does everything for one
head while its tiles are in cache (a 128 x 128 float32 score tile is 64 KiB):

- forward: block of query rows by block, the scores Q Kᵀ; per row the scale, the mask (boolean or
  additive, read through its broadcast strides, never expanded), the causal limit (a column bound per
  row, no mask array), the softmax and dropout, in place in the block's scores, copied out as the
  returned ``probs``; then the block's output P V;
- backward: dP = dO Vᵀ, dS = P * (dP - rowsum(dP * P)) * scale (with dropout), dQ = dS K block of
  rows by block, then dK = dSᵀ Q and dV = Pᵀ dO.

The matrix products are small (a head is T x D = 128 x 32 in TinyGPT): handing each to BLAS through
NumPy cost more in dispatch and thread wake-ups than the arithmetic, so they are done here by one
register-blocked micro-kernel (``_tile``) that the C compiler vectorises. With causal masking a
block of query rows only meets the keys its last row sees, and a key only the queries that see it:
the masked half of every product is skipped.

The heads are read where they lie: a stack of C-contiguous (T, D) matrices, or the heads of a packed
(B, T, 3E) projection, described by a ``Layout``; outputs and gradients are written the same way.

``attention_cached`` (generation: a few new queries against a KV cache) does everything in one loop
per query row, reading the cache in place: no matrix product is big enough there to pay for a
BLAS call, and slicing the cache's filled part would copy it.

The backward's per-thread tiles (dS is a whole T x T tile per head, as dK needs every row of it)
come from ``workspace.scratch``: kept and reused across calls, since touching fresh pages costs more
than the pass itself. The forward needs only O(T) per thread. Nothing returned aliases them.
"""

import math

import numpy as np
from cython.parallel cimport prange, threadid
cimport cython
from cython cimport floating
from libc.math cimport INFINITY
from libc.string cimport memcpy

from .fusedmath cimport fexp
from .loops cimport sum_of

from .attention_contracts import (
    backward_inputs,
    cached_inputs,
    dropout_scale,
    forward_inputs,
    packed_backward_inputs,
    packed_forward_inputs,
)
from .parallel import get_num_threads
from .workspace import scratch

# Score matrices smaller than this are processed on the calling thread: waking the others costs more.
cdef Py_ssize_t PARALLEL_MIN_SCORES = 1 << 14


cdef enum MaskKind:
    NO_MASK = 0
    BOOL_MASK = 1
    FLOAT_MASK = 2


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline floating _max_of(const floating* p, Py_ssize_t n) noexcept nogil:
    """max(p[0], ..., p[n-1]), -inf when n == 0.

    Eight running maxima, as ``loops.sum_of`` keeps eight sums: one running maximum is a chain of
    dependent comparisons that the compiler may not reorder, so it neither pipelines nor vectorises.
    """
    cdef floating m[8]
    cdef Py_ssize_t i = 0, lane
    for lane in range(8):
        m[lane] = -INFINITY
    while i + 8 <= n:
        for lane in range(8):
            m[lane] = p[i + lane] if p[i + lane] > m[lane] else m[lane]
        i = i + 8
    while i < n:
        m[0] = p[i] if p[i] > m[0] else m[0]
        i = i + 1
    for lane in range(1, 8):
        m[0] = m[lane] if m[lane] > m[0] else m[0]
    return m[0]


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void _softmax_row(floating* s, Py_ssize_t tk, Py_ssize_t limit, floating scale, int kind,
                              const unsigned char* bmask, const floating* fmask, Py_ssize_t mstep,
                              const unsigned char* keep, floating* dropped, floating dscale) noexcept nogil:
    """Row s[:tk] of raw scores -> probabilities; columns >= limit are masked (causal)."""
    cdef Py_ssize_t j
    cdef floating mx, inv
    if kind == FLOAT_MASK:
        for j in range(limit):
            s[j] = s[j] * scale + fmask[j * mstep]
    elif kind == BOOL_MASK:
        for j in range(limit):
            s[j] = s[j] * scale if bmask[j * mstep] else -INFINITY
    else:
        for j in range(limit):
            s[j] = s[j] * scale
    mx = _max_of(s, limit)
    if mx == -INFINITY:
        limit = 0  # every key is masked: the whole row is 0
    else:
        for j in range(limit):
            s[j] = fexp(s[j] - mx)
        inv = 1 / sum_of(s, limit)
        for j in range(limit):
            s[j] = s[j] * inv
    for j in range(limit, tk):
        s[j] = 0
    if dropped != NULL:
        for j in range(tk):
            dropped[j] = s[j] * dscale if keep[j] else 0


cdef inline Py_ssize_t _visible_keys(Py_ssize_t i, Py_ssize_t tq, Py_ssize_t tk, bint causal) noexcept nogil:
    """How many keys query i sees: all Tk, or with causal masking (bottom-right aligned) those j <= i + Tk - Tq."""
    if not causal:
        return tk
    return max(0, min(tk, i + tk - tq + 1))


# The micro-kernel computes a ROWS x WIDTH tile of a matrix product in registers: for float32 the
# accumulators are 4 rows x 2 AVX registers, and every step over k is one broadcast per row and one
# WIDTH-wide load of B. Scratch tiles have their rows padded to a multiple of WIDTH, so the B rows
# it reads never run past them.
cdef enum:
    ROWS = 4
    WIDTH = 16


cdef struct Layout:
    # where matrix n of a stack lies in a flat array: offset + (n // heads) * batch_step + (n % heads) * head_step,
    # its rows row_step apart (its columns are adjacent)
    Py_ssize_t offset, heads, batch_step, head_step, row_step


cdef inline Py_ssize_t _start(Layout x, Py_ssize_t n) noexcept nogil:
    return x.offset + (n // x.heads) * x.batch_step + (n % x.heads) * x.head_step


cdef inline Py_ssize_t _count(Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    """How many blocks of ``size`` cover n."""
    return (n + size - 1) // size


cdef inline Py_ssize_t _padded(Py_ssize_t n) noexcept nogil:
    return _count(n, WIDTH) * WIDTH


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _tile(const floating* a, Py_ssize_t a_row, Py_ssize_t a_col, Py_ssize_t rows,
                const floating* b, Py_ssize_t b_row, Py_ssize_t k0, Py_ssize_t k1,
                floating* c, Py_ssize_t c_row, Py_ssize_t cols) noexcept nogil:
    """c[r, :cols] = sum over k0 <= k < k1 of a[r * a_row + k * a_col] * b[k * b_row : k * b_row + WIDTH], r < rows.

    rows <= ROWS and cols <= WIDTH. ``a`` is read one element at a time, so it may be a transposed
    view (a_row = 1). Rows past ``rows`` repeat the last one (computed, never stored): the loop is
    the same for every tile and reads nothing outside the rows it is given.
    """
    cdef floating acc0[WIDTH]
    cdef floating acc1[WIDTH]
    cdef floating acc2[WIDTH]
    cdef floating acc3[WIDTH]
    cdef const floating* a0 = a
    cdef const floating* a1 = a + min(1, rows - 1) * a_row
    cdef const floating* a2 = a + min(2, rows - 1) * a_row
    cdef const floating* a3 = a + min(3, rows - 1) * a_row
    cdef const floating* bk
    cdef floating x0, x1, x2, x3
    cdef Py_ssize_t kk, j
    for j in range(WIDTH):
        acc0[j] = 0
        acc1[j] = 0
        acc2[j] = 0
        acc3[j] = 0
    for kk in range(k0, k1):
        bk = b + kk * b_row
        x0 = a0[kk * a_col]
        x1 = a1[kk * a_col]
        x2 = a2[kk * a_col]
        x3 = a3[kk * a_col]
        for j in range(WIDTH):
            acc0[j] = acc0[j] + x0 * bk[j]
            acc1[j] = acc1[j] + x1 * bk[j]
            acc2[j] = acc2[j] + x2 * bk[j]
            acc3[j] = acc3[j] + x3 * bk[j]
    # The common case in vector stores: a copy loop of unknown length compiles to a slow `rep movs`.
    if rows == ROWS and cols == WIDTH:
        for j in range(WIDTH):
            c[j] = acc0[j]
            c[c_row + j] = acc1[j]
            c[2 * c_row + j] = acc2[j]
            c[3 * c_row + j] = acc3[j]
        return
    for j in range(cols):
        c[j] = acc0[j]
    if rows > 1:
        for j in range(cols):
            c[c_row + j] = acc1[j]
    if rows > 2:
        for j in range(cols):
            c[2 * c_row + j] = acc2[j]
    if rows > 3:
        for j in range(cols):
            c[3 * c_row + j] = acc3[j]


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline void _pad_copy(const floating* x, Py_ssize_t x_row, Py_ssize_t rows, Py_ssize_t cols,
                           floating* out, Py_ssize_t out_row, bint transpose) noexcept nogil:
    """out[r, c] = x[r * x_row + c] (or out[c, r] with ``transpose``): a head into a padded scratch tile."""
    cdef Py_ssize_t r, c
    if transpose:
        for r in range(rows):
            for c in range(cols):
                out[c * out_row + r] = x[r * x_row + c]
    else:
        for r in range(rows):
            for c in range(cols):
                out[r * out_row + c] = x[r * x_row + c]


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline floating _dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """a[0] * b[0] + ... + a[n-1] * b[n-1], in eight partial sums that the compiler keeps in one vector register.

    (``loops.sum_of_centred_products`` sums in double, converting every element: here that was an
    eighth of the backward pass; a score row is short enough for float32 partial sums.)
    """
    cdef floating acc[8]
    cdef Py_ssize_t i = 0, lane
    for lane in range(8):
        acc[lane] = 0
    while i + 8 <= n:
        for lane in range(8):
            acc[lane] = acc[lane] + a[i + lane] * b[i + lane]
        i = i + 8
    while i < n:
        acc[0] = acc[0] + a[i] * b[i]
        i = i + 1
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void _softmax_grad_row(floating* d, const floating* p, Py_ssize_t limit, Py_ssize_t tk,
                                   const unsigned char* keep, floating* dropped, floating dscale,
                                   floating scale) noexcept nogil:
    """Row d[:tk] = dP (= dO Vᵀ) -> dS = P * (dP' - rowsum(dP' * P)) * scale, dP' = dP * keep * dscale.

    Past the row's visible keys P is 0 and d may hold anything (those products were skipped): dS is 0.
    With dropout (``keep`` given) ``dropped`` gets the row's dropped probabilities, for dV.
    """
    cdef Py_ssize_t j
    cdef floating acc
    if keep != NULL:
        for j in range(limit):
            d[j] = d[j] * dscale if keep[j] else 0
        for j in range(tk):
            dropped[j] = p[j] * dscale if keep[j] else 0
    acc = _dot(d, p, limit)  # rowsum(dP' * P)
    for j in range(limit):
        d[j] = p[j] * (d[j] - acc) * scale
    for j in range(limit, tk):
        d[j] = 0


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
@cython.initializedcheck(False)
cdef void _forward_heads(const floating[::1] q, const floating[::1] k, const floating[::1] v, floating[::1] out,
                         Layout lq, Layout lk, Layout lv, Layout lo, Py_ssize_t n_mat, Py_ssize_t tq, Py_ssize_t tk,
                         Py_ssize_t d, Py_ssize_t dv, floating scale, bint causal, int kind,
                         const unsigned char[::1] bmask, const floating[::1] fmask, const Py_ssize_t[::1] moffset,
                         Py_ssize_t mrow, Py_ssize_t mcol, const unsigned char[::1] keep, bint dropout, floating dscale,
                         floating[::1] probs, floating[:, ::1] work, bint parallel) noexcept:
    """Each (batch, head) matrix n, one per thread: scores, softmax (into ``probs``) and output, in cache.

    A thread's ``work`` row holds kᵀ (d, tkw), v (tk, dvw), one block of scores (ROWS, tkw) and with
    dropout its dropped probabilities (ROWS, tkw); tkw and dvw are tk and dv padded to a multiple of
    WIDTH. Query rows go ROWS at a time, each block all the way to its output (so the memory a call
    needs grows with T, not T²); with causal masking a block only meets the keys its last row sees.
    """
    cdef Py_ssize_t tkw = _padded(tk), dvw = _padded(dv)
    cdef int threads = work.shape[0]
    cdef Py_ssize_t n, i, i0, j0, c, rows, last, m, i0_block, j0_block, c_block
    cdef floating* kt
    cdef floating* vv
    cdef floating* s
    cdef floating* dropped
    cdef floating* p
    cdef const floating* qn
    cdef floating* on
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for n in prange(n_mat, schedule="static", num_threads=threads, use_threads_if=parallel):
            kt = &work[threadid(), 0]
            vv = kt + d * tkw
            s = vv + tk * dvw
            dropped = s + ROWS * tkw
            qn = &q[_start(lq, n)]
            on = &out[_start(lo, n)]
            _pad_copy(&k[_start(lk, n)], lk.row_step, tk, d, kt, tkw, True)
            _pad_copy(&v[_start(lv, n)], lv.row_step, tk, dv, vv, dvw, False)
            for i0_block in range(_count(tq, ROWS)):
                i0 = i0_block * ROWS
                rows = min(ROWS, tq - i0)
                last = _visible_keys(i0 + rows - 1, tq, tk, causal)
                for j0_block in range(_count(last, WIDTH)):
                    j0 = j0_block * WIDTH
                    _tile(qn + i0 * lq.row_step, lq.row_step, 1, rows, kt + j0, tkw, 0, d, s + j0, tkw, WIDTH)
                for i in range(i0, i0 + rows):
                    m = moffset[n] + i * mrow if kind != NO_MASK else 0
                    _softmax_row(s + (i - i0) * tkw, tk, _visible_keys(i, tq, tk, causal), scale, kind,
                                 &bmask[m] if kind == BOOL_MASK else NULL, &fmask[m] if kind == FLOAT_MASK else NULL, mcol,
                                 &keep[(n * tq + i) * tk] if dropout else NULL, dropped + (i - i0) * tkw if dropout else NULL,
                                 dscale)
                    memcpy(&probs[(n * tq + i) * tk], s + (i - i0) * tkw, tk * sizeof(floating))
                p = dropped if dropout else s
                for c_block in range(_count(dv, WIDTH)):
                    c = c_block * WIDTH
                    _tile(p, tkw, 1, rows, vv + c, dvw, 0, last, on + i0 * lo.row_step + c, lo.row_step,
                          min(WIDTH, dv - c))


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
@cython.initializedcheck(False)
cdef void _backward_heads(const floating[::1] g, const floating[::1] q, const floating[::1] k, const floating[::1] v,
                          const floating[::1] probs, const unsigned char[::1] keep, bint dropout, floating dscale,
                          floating scale, bint causal, floating[::1] dq, floating[::1] dk, floating[::1] dv_,
                          Layout lg, Layout lq, Layout lk, Layout lv, Layout ldq, Layout ldk, Layout ldv,
                          Py_ssize_t n_mat, Py_ssize_t tq, Py_ssize_t tk, Py_ssize_t d, Py_ssize_t dv,
                          floating[:, ::1] work, bint parallel) noexcept:
    """Each (batch, head) matrix n, one per thread: dS row block by row block with dq, then dk and dv.

    A thread's ``work`` row holds vᵀ (dv, tkw), k (tk, dw), q (tq, dw), dO (tq, dvw), dS (tq, tkw)
    and with dropout the dropped probabilities (tq, tkw). dk and dv read dS and P transposed in
    place; with causal masking key j only meets the queries that see it.
    """
    cdef Py_ssize_t tkw = _padded(tk), dw = _padded(d), dvw = _padded(dv)
    cdef int threads = work.shape[0]
    cdef Py_ssize_t n, i, i0, j0, c, rows, last, first, p_row, i0_block, j0_block, c_block
    cdef floating* vt
    cdef floating* kk
    cdef floating* qq
    cdef floating* gg
    cdef floating* ds
    cdef floating* dropped
    cdef const floating* gn
    cdef const floating* pn
    cdef floating* out
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for n in prange(n_mat, schedule="static", num_threads=threads, use_threads_if=parallel):
            vt = &work[threadid(), 0]
            kk = vt + dv * tkw
            qq = kk + tk * dw
            gg = qq + tq * dw
            ds = gg + tq * dvw
            dropped = ds + tq * tkw
            gn = &g[_start(lg, n)]
            pn = &probs[n * tq * tk]
            _pad_copy(&v[_start(lv, n)], lv.row_step, tk, dv, vt, tkw, True)
            _pad_copy(&k[_start(lk, n)], lk.row_step, tk, d, kk, dw, False)
            _pad_copy(&q[_start(lq, n)], lq.row_step, tq, d, qq, dw, False)
            _pad_copy(gn, lg.row_step, tq, dv, gg, dvw, False)
            out = &dq[_start(ldq, n)]
            for i0_block in range(_count(tq, ROWS)):
                i0 = i0_block * ROWS
                rows = min(ROWS, tq - i0)
                last = _visible_keys(i0 + rows - 1, tq, tk, causal)
                for j0_block in range(_count(last, WIDTH)):
                    j0 = j0_block * WIDTH
                    _tile(gn + i0 * lg.row_step, lg.row_step, 1, rows, vt + j0, tkw, 0, dv, ds + i0 * tkw + j0, tkw, WIDTH)
                for i in range(i0, i0 + rows):
                    _softmax_grad_row(ds + i * tkw, pn + i * tk, _visible_keys(i, tq, tk, causal), tk,
                                      &keep[(n * tq + i) * tk] if dropout else NULL, dropped + i * tkw, dscale, scale)
                for c_block in range(_count(d, WIDTH)):
                    c = c_block * WIDTH
                    _tile(ds + i0 * tkw, tkw, 1, rows, kk + c, dw, 0, last, out + i0 * ldq.row_step + c, ldq.row_step,
                          min(WIDTH, d - c))
            if dropout:
                pn = dropped
            p_row = tkw if dropout else tk
            for j0_block in range(_count(tk, ROWS)):
                j0 = j0_block * ROWS
                rows = min(ROWS, tk - j0)
                first = max(0, j0 - tk + tq) if causal else 0  # the first query that sees key j0
                out = &dk[_start(ldk, n) + j0 * ldk.row_step]
                for c_block in range(_count(d, WIDTH)):
                    c = c_block * WIDTH
                    _tile(ds + j0, 1, tkw, rows, qq + c, dw, first, tq, out + c, ldk.row_step, min(WIDTH, d - c))
                out = &dv_[_start(ldv, n) + j0 * ldv.row_step]
                for c_block in range(_count(dv, WIDTH)):
                    c = c_block * WIDTH
                    _tile(pn + j0, 1, p_row, rows, gg + c, dvw, first, tq, out + c, ldv.row_step, min(WIDTH, dv - c))


_NO_BYTES = np.zeros(1, np.uint8)
_NO_OFFSETS = np.zeros(1, np.intp)


def _mask_layout(mask, batch, tq, tk):
    """Where mask element (n, i, j) of the broadcast mask lives in the flat mask: offset[n] + i*row + j*col.

    Broadcast axes have stride 0, so a (Tq, Tk) or (B, 1, 1, Tk) mask is read in place, never expanded.
    """
    view = np.broadcast_to(mask, (*batch, tq, tk))
    steps = [stride // mask.itemsize for stride in view.strides]
    offsets = np.zeros(batch, dtype=np.intp)
    for axis, (size, step) in enumerate(zip(batch, steps)):
        along = [1] * len(batch)
        along[axis] = size
        offsets = offsets + np.arange(size, dtype=np.intp).reshape(along) * step
    return np.ascontiguousarray(offsets.reshape(-1)), steps[-2], steps[-1]


def _stack(x):
    """(..., T, D) -> (N, T, D), a view of a C-contiguous array (sizes spelled out: any may be 0)."""
    return x.reshape(math.prod(x.shape[:-2]), *x.shape[-2:])  # math.prod: np.prod costs microseconds


def _layout(offset=0, heads=1, batch_step=0, head_step=0, row_step=0):
    """A :c:type:`Layout` (converted from this dict by Cython)."""
    return {"offset": offset, "heads": heads, "batch_step": batch_step, "head_step": head_step, "row_step": row_step}


def _stacked(t, d):
    """Layout of a C-contiguous (N, t, d) stack."""
    return _layout(0, 1, t * d, 0, d)


def _packed(part, heads, t, width, d):
    """Layout of head h of part ``part`` (0, 1, 2: q, k, v) of a (B, t, width) projection split into ``heads`` heads of d."""
    return _layout(part * heads * d, heads, t * width, d, width)


def _work(n_mat, tq, tk):
    """How many threads share the heads (one scratch row each) and whether there is enough work to wake them."""
    parallel = n_mat > 1 and n_mat * tq * tk >= PARALLEL_MIN_SCORES
    return (get_num_threads() if parallel else 1), parallel


def _attend(q, k, v, layouts, out, batch, tq, tk, d, dv, mask, causal, scale, p, keep):
    """The forward pass over the flat arrays q, k, v and out (``layouts`` places each head in them); returns the probabilities."""
    n_mat = math.prod(batch)
    probs = np.empty((*batch, tq, tk), q.dtype)
    if n_mat == 0 or tq == 0 or tk == 0:
        out[...] = 0
        return probs
    tkw, dvw = -(-tk // WIDTH) * WIDTH, -(-dv // WIDTH) * WIDTH
    per_thread = d * tkw + tk * dvw + ROWS * tkw * (2 if keep is not None else 1)
    threads, parallel = _work(n_mat, tq, tk)
    # O(T) per thread: a fresh buffer costs nothing next to the pass, and none is left held after it
    work = np.empty((threads, per_thread), q.dtype)
    kind = NO_MASK if mask is None else BOOL_MASK if mask.dtype == np.bool_ else FLOAT_MASK
    offsets, mrow, mcol = (_NO_OFFSETS, 0, 0) if mask is None else _mask_layout(mask, batch, tq, tk)
    bmask = mask.reshape(-1).view(np.uint8) if kind == BOOL_MASK else _NO_BYTES
    fmask = mask.reshape(-1) if kind == FLOAT_MASK else np.zeros(1, q.dtype)
    flat_keep = _NO_BYTES if keep is None else keep.reshape(-1).view(np.uint8)
    args = (q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1), *layouts, n_mat, tq, tk, d, dv, scale,
            causal, kind, bmask, fmask, offsets, mrow, mcol, flat_keep, keep is not None, dropout_scale(p),
            probs.reshape(-1), work, parallel)
    if q.dtype == np.float32:
        _forward_heads[float](*args)
    else:
        _forward_heads[double](*args)
    return probs


def _attend_backward(g, q, k, v, probs, keep, factor, scale, causal, dq, dk, dv, layouts, batch, tq, tk, d, dv_size):
    """The backward pass over flat arrays (``layouts`` places each head of g, q, k, v, dq, dk, dv), writing dq, dk, dv."""
    n_mat = math.prod(batch)
    if n_mat == 0 or tq == 0 or tk == 0:
        for x in (dq, dk, dv):
            x[...] = 0
        return
    tkw, dw, dvw = (-(-x // WIDTH) * WIDTH for x in (tk, d, dv_size))
    per_thread = dv_size * tkw + tk * dw + tq * dw + tq * dvw + tq * tkw * (2 if keep is not None else 1)
    threads, parallel = _work(n_mat, tq, tk)
    work = scratch("attention.backward", (threads, per_thread), q.dtype)
    flat_keep = _NO_BYTES if keep is None else keep.reshape(-1).view(np.uint8)
    args = (g.reshape(-1), q.reshape(-1), k.reshape(-1), v.reshape(-1), probs.reshape(-1), flat_keep, keep is not None,
            factor, scale, causal, dq.reshape(-1), dk.reshape(-1), dv.reshape(-1), *layouts, n_mat, tq, tk, d, dv_size,
            work, parallel)
    if q.dtype == np.float32:
        _backward_heads[float](*args)
    else:
        _backward_heads[double](*args)


def attention_forward(q, k, v, mask=None, causal=False, scale=None, dropout_p=0.0, seed=None):
    q, k, v, mask, scale, p, keep = forward_inputs("attention_forward", q, k, v, mask, scale, dropout_p, seed)
    batch, tq, tk, d, dv = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    out = np.empty((*batch, tq, dv), q.dtype)
    layouts = (_stacked(tq, d), _stacked(tk, d), _stacked(tk, dv), _stacked(tq, dv))
    probs = _attend(q, k, v, layouts, out, batch, tq, tk, d, dv, mask, causal, scale, p, keep)
    return out, probs, keep


def attention_backward(grad_out, q, k, v, probs, keep, scale, dropout_p, causal=False):
    grad_out, q, k, v, probs, keep, scale, factor = backward_inputs(
        "attention_backward", grad_out, q, k, v, probs, keep, scale, dropout_p
    )
    batch, tq, tk, d, dv = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    dq, dk, dv_ = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    layouts = tuple(_stacked(t, w) for t, w in ((tq, dv), (tq, d), (tk, d), (tk, dv), (tq, d), (tk, d), (tk, dv)))
    _attend_backward(grad_out, q, k, v, probs, keep, factor, scale, causal, dq, dk, dv_, layouts, batch, tq, tk, d, dv)
    return dq, dk, dv_


def attention_packed_forward(qkv, num_heads, mask=None, causal=False, scale=None, dropout_p=0.0, seed=None):
    qkv, num_heads, mask, scale, p, keep = packed_forward_inputs(
        "attention_packed_forward", qkv, num_heads, mask, scale, dropout_p, seed
    )
    b, t, three_e = qkv.shape
    e = three_e // 3
    d = e // num_heads
    out = np.empty((b, t, e), qkv.dtype)
    layouts = (*(_packed(part, num_heads, t, three_e, d) for part in range(3)), _packed(0, num_heads, t, e, d))
    probs = _attend(qkv, qkv, qkv, layouts, out, (b, num_heads), t, t, d, d, mask, causal, scale, p, keep)
    return out, probs, keep


def attention_packed_backward(grad_out, qkv, num_heads, probs, keep, scale, dropout_p, causal=False):
    grad_out, qkv, num_heads, probs, keep, scale, factor = packed_backward_inputs(
        "attention_packed_backward", grad_out, qkv, num_heads, probs, keep, scale, dropout_p
    )
    b, t, e = grad_out.shape
    d = e // num_heads
    dqkv = np.empty_like(qkv)
    parts = tuple(_packed(part, num_heads, t, 3 * e, d) for part in range(3))
    layouts = (_packed(0, num_heads, t, e, d), *parts, *parts)
    _attend_backward(grad_out, qkv, qkv, qkv, probs, keep, factor, scale, causal, dqkv, dqkv, dqkv, layouts,
                     (b, num_heads), t, t, d, d)
    return dqkv


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _cached_rows(const floating[:, :, ::1] q, const floating[:, :, ::1] k, const floating[:, :, ::1] v,
                       Py_ssize_t length, floating scale, floating[:, ::1] scores, floating[:, :, ::1] out) noexcept:
    """out[n, i] = softmax(q[n, i] . k[n, :limit] * scale) @ v[n, :limit], limit = length - t + i + 1."""
    cdef Py_ssize_t n_mat = q.shape[0], t = q.shape[1], d = q.shape[2], dv = v.shape[2]
    cdef Py_ssize_t r, n, i, j, c, limit
    cdef floating mx, total, acc, p
    cdef floating* s
    cdef floating* o
    cdef const floating* qr
    cdef const floating* kr
    cdef const floating* vr
    with nogil:  # the arrays were checked and bound with the GIL; other threads run meanwhile
        for r in prange(n_mat * t, schedule="static", use_threads_if=n_mat * t * length * d >= PARALLEL_MIN_SCORES * 8):
            n = r // t
            i = r - n * t
            limit = length - t + i + 1
            s = &scores[r, 0]
            qr = &q[n, i, 0]
            mx = -INFINITY
            for j in range(limit):
                kr = &k[n, j, 0]
                acc = 0
                for c in range(d):
                    acc = acc + qr[c] * kr[c]
                acc = acc * scale
                s[j] = acc
                mx = acc if acc > mx else mx
            total = 0
            for j in range(limit):
                s[j] = fexp(s[j] - mx)
                total = total + s[j]
            o = &out[n, i, 0]
            for c in range(dv):
                o[c] = 0
            for j in range(limit):
                p = s[j] / total
                vr = &v[n, j, 0]
                for c in range(dv):
                    o[c] = o[c] + p * vr[c]


def attention_cached(q, k_cache, v_cache, length, scale=None):
    q, k_cache, v_cache, length, scale = cached_inputs("attention_cached", q, k_cache, v_cache, length, scale)
    batch, t = q.shape[:-2], q.shape[-2]
    q3, k3, v3 = _stack(q), _stack(k_cache), _stack(v_cache)
    out = np.empty((q3.shape[0], t, v3.shape[2]), q.dtype)
    if out.size:
        scores = np.empty((q3.shape[0] * t, max(length, 1)), q.dtype)
        if q.dtype == np.float32:
            _cached_rows[float](q3, k3, v3, length, scale, scores, out)
        else:
            _cached_rows[double](q3, k3, v3, length, scale, scores, out)
    return out.reshape(*batch, t, v3.shape[2])
