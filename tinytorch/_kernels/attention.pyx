"""Fused scaled-dot-product attention, compiled.

Same names, arguments and results as in ``reference.py``, which documents them. The two matrix
products of each direction go to BLAS through ``np.matmul`` on the (batch * heads) stack; Cython does
the rest in one fused pass per score row, rows in parallel:

- forward: scale, mask (boolean or additive, read through its broadcast strides, never expanded),
  causal limit (a column bound per row, no mask array), softmax and dropout, in place in the score
  matrix, which becomes the returned ``probs``;
- backward: dS = P * (dP - rowsum(dP * P)) * scale, with dropout, in place in a scratch matrix.

With causal masking the products are taken block by block of 64 query rows, each block only
against the keys it can see, so the masked corner of the score matrix is never computed (the
backward does this when it is told ``causal=True``; its results are the same either way).

``attention_cached`` (generation: a few new queries against a KV cache) does everything in one loop
per query row, reading the cache in place: no matrix product is big enough there to pay for a
BLAS call, and slicing the cache's filled part would copy it.

Scratch matrices (the dropped probabilities, dS) come from ``workspace.scratch``: kept per thread and
reused across calls, since touching fresh pages costs more than the pass itself. Nothing returned
aliases them.
"""

import math

import numpy as np
from cython.parallel cimport prange
cimport cython
from cython cimport floating
from libc.math cimport INFINITY

from .fusedmath cimport fexp
from .loops cimport sum_of, sum_of_centred_products

from .attention_contracts import (
    backward_inputs,
    cached_inputs,
    dropout_scale,
    forward_inputs,
    packed_backward_inputs,
    packed_forward_inputs,
)
from .workspace import scratch

# Score matrices smaller than this are processed on the calling thread: waking the others costs more.
cdef Py_ssize_t PARALLEL_MIN_SCORES = 1 << 14
# Query rows per block when causal masking lets whole blocks of keys be skipped.
CAUSAL_BLOCK = 64


cdef enum MaskKind:
    NO_MASK = 0
    BOOL_MASK = 1
    FLOAT_MASK = 2


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef inline void _softmax_row(floating* s, Py_ssize_t tk, Py_ssize_t limit, floating scale, int kind,
                              const unsigned char* bmask, const floating* fmask, Py_ssize_t mstep,
                              const unsigned char* keep, floating* dropped, floating dscale) noexcept nogil:
    """Row s[:tk] of raw scores -> probabilities; columns >= limit are masked (causal)."""
    cdef Py_ssize_t j
    cdef floating x, mx = -INFINITY, inv
    if kind == FLOAT_MASK:
        for j in range(limit):
            x = s[j] * scale + fmask[j * mstep]
            s[j] = x
            mx = x if x > mx else mx
    elif kind == BOOL_MASK:
        for j in range(limit):
            x = s[j] * scale if bmask[j * mstep] else -INFINITY
            s[j] = x
            mx = x if x > mx else mx
    else:
        for j in range(limit):
            x = s[j] * scale
            s[j] = x
            mx = x if x > mx else mx
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


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _softmax_scores(floating[:, :, ::1] s, floating scale, bint causal, int kind,
                          const unsigned char[::1] bmask, const floating[::1] fmask,
                          const Py_ssize_t[::1] moffset, Py_ssize_t mrow, Py_ssize_t mcol,
                          const unsigned char[::1] keep, floating[:, :, ::1] dropped, bint dropout,
                          floating dscale) noexcept nogil:
    cdef Py_ssize_t n_mat = s.shape[0], tq = s.shape[1], tk = s.shape[2]
    cdef Py_ssize_t r, n, i, limit, m
    cdef const unsigned char* brow
    cdef const floating* frow
    cdef const unsigned char* krow
    cdef floating* drow
    for r in prange(n_mat * tq, schedule="static", use_threads_if=n_mat * tq * tk >= PARALLEL_MIN_SCORES):
        n = r // tq
        i = r - n * tq
        limit = _visible_keys(i, tq, tk, causal)
        m = moffset[n] + i * mrow if kind != NO_MASK else 0
        brow = &bmask[m] if kind == BOOL_MASK else NULL
        frow = &fmask[m] if kind == FLOAT_MASK else NULL
        krow = &keep[r * tk] if dropout else NULL
        drow = &dropped[n, i, 0] if dropout else NULL
        _softmax_row(&s[n, i, 0], tk, limit, scale, kind, brow, frow, mcol, krow, drow, dscale)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _softmax_grad(floating[:, :, ::1] ds, const floating[:, :, ::1] p, const unsigned char[:, :, ::1] keep,
                        bint dropout, floating dscale, floating scale, bint causal) noexcept nogil:
    """Row by row, in place: ds = dP (= dO Vᵀ) -> dS = P * (dP' - rowsum(dP' * P)) * scale, dP' = dP * keep * dscale.

    Past a row's visible keys P is 0, and ds may hold anything (the products there were skipped): dS is 0.
    """
    cdef Py_ssize_t n_mat = ds.shape[0], tq = ds.shape[1], tk = ds.shape[2], r, n, i, j, limit
    cdef floating acc
    cdef floating* d
    cdef const floating* pr
    for r in prange(n_mat * tq, schedule="static", use_threads_if=n_mat * tq * tk >= PARALLEL_MIN_SCORES):
        n = r // tq
        i = r - n * tq
        limit = _visible_keys(i, tq, tk, causal)
        d = &ds[n, i, 0]
        pr = &p[n, i, 0]
        if dropout:
            for j in range(limit):
                d[j] = d[j] * dscale if keep[n, i, j] else 0
        acc = sum_of_centred_products(d, pr, limit, 0.0)  # rowsum(dP' * P)
        for j in range(limit):
            d[j] = pr[j] * (d[j] - acc) * scale
        for j in range(limit, tk):
            d[j] = 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _apply_keep(const floating[:, ::1] p, const unsigned char[:, ::1] keep, floating dscale,
                      floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t rows = p.shape[0], tk = p.shape[1], r, j
    for r in prange(rows, schedule="static", use_threads_if=rows * tk >= PARALLEL_MIN_SCORES):
        for j in range(tk):
            out[r, j] = p[r, j] * dscale if keep[r, j] else 0


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


def _blocks(tq, tk, causal):
    """[(a, b, seen)]: query rows [a, b) see at most keys [0, seen); one block unless causal.

    With causal masking whole rectangles of the score matrix are masked: the products there are
    skipped (for T = 128 that is a third of the matrix-product time). Keys [seen_before, seen) are
    first seen by query a, so for the key-side gradients block (a, b, seen) covers queries [a, Tq).
    """
    if not causal or tq == 0:
        return [(0, tq, tk)]
    blocks = []
    for a in range(0, tq, CAUSAL_BLOCK):
        b = min(tq, a + CAUSAL_BLOCK)
        blocks.append((a, b, max(0, min(tk, b + tk - tq))))
    return blocks


def _forward_into(q, k, v, mask, causal, scale, p, keep, out):
    """The forward pass on (..., T, D) views of any strides (unit stride along D), writing (..., Tq, Dv) into ``out``.

    The matrix products take the views as they are (BLAS reads a row stride), so a head of a packed
    (B, T, 3E) projection is attended in place and the output lands in the merged (B, T, E) layout.
    Returns the probabilities, a new C-contiguous (..., Tq, Tk) array.
    """
    batch, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    blocks = _blocks(tq, tk, causal)
    probs = np.empty((*batch, tq, tk), q.dtype)  # raw scores, made probabilities in place
    for a, b, seen in blocks:
        np.matmul(q[..., a:b, :], np.swapaxes(k[..., :seen, :], -1, -2), out=probs[..., a:b, :seen])
    probs3 = _stack(probs)
    dropped = None if keep is None else scratch("attention.dropped", probs3.shape, q.dtype)
    if probs.size:
        kind = NO_MASK if mask is None else BOOL_MASK if mask.dtype == np.bool_ else FLOAT_MASK
        offsets, mrow, mcol = (_NO_OFFSETS, 0, 0) if mask is None else _mask_layout(mask, batch, tq, tk)
        bmask = mask.reshape(-1).view(np.uint8) if kind == BOOL_MASK else _NO_BYTES
        fmask = mask.reshape(-1) if kind == FLOAT_MASK else np.zeros(1, q.dtype)
        flat_keep = _NO_BYTES if keep is None else keep.reshape(-1).view(np.uint8)
        written = probs3 if dropped is None else dropped
        if q.dtype == np.float32:
            _softmax_scores[float](probs3, scale, causal, kind, bmask, fmask, offsets, mrow, mcol,
                                   flat_keep, written, keep is not None, dropout_scale(p))
        else:
            _softmax_scores[double](probs3, scale, causal, kind, bmask, fmask, offsets, mrow, mcol,
                                    flat_keep, written, keep is not None, dropout_scale(p))
    attended = probs if dropped is None else dropped.reshape(probs.shape)
    for a, b, seen in blocks:
        np.matmul(attended[..., a:b, :seen], v[..., :seen, :], out=out[..., a:b, :])
    return probs


def _backward_into(grad_out, q, k, v, probs, keep, scale, factor, causal, dq, dk, dv):
    """The backward pass on views of any strides, writing dq, dk and dv into the given (possibly strided) arrays."""
    probs3 = _stack(probs)
    tq, tk = probs.shape[-2], probs.shape[-1]
    blocks = _blocks(tq, tk, causal)
    keep3 = _NO_BYTES.reshape(1, 1, 1) if keep is None else keep.reshape(probs3.shape).view(np.uint8)
    dropped = probs
    if keep is not None:
        dropped3 = scratch("attention.dropped", probs3.shape, q.dtype)
        rows = (probs3.shape[0] * tq, tk)
        if q.dtype == np.float32:
            _apply_keep[float](probs3.reshape(rows), keep3.reshape(rows), factor, dropped3.reshape(rows))
        else:
            _apply_keep[double](probs3.reshape(rows), keep3.reshape(rows), factor, dropped3.reshape(rows))
        dropped = dropped3.reshape(probs.shape)

    dscores3 = scratch("attention.dscores", probs3.shape, q.dtype)  # dP = dO Vᵀ, made dS in place
    dscores = dscores3.reshape(probs.shape)
    for a, b, seen in blocks:
        np.matmul(grad_out[..., a:b, :], np.swapaxes(v[..., :seen, :], -1, -2), out=dscores[..., a:b, :seen])
    if probs.size:
        if q.dtype == np.float32:
            _softmax_grad[float](dscores3, probs3, keep3, keep is not None, factor, scale, causal)
        else:
            _softmax_grad[double](dscores3, probs3, keep3, keep is not None, factor, scale, causal)

    first_unseen = 0
    for a, b, seen in blocks:
        np.matmul(dscores[..., a:b, :seen], k[..., :seen, :], out=dq[..., a:b, :])
        new_keys = slice(first_unseen, seen)  # keys first seen by query a: no earlier query sees them
        np.matmul(np.swapaxes(dscores[..., a:, new_keys], -1, -2), q[..., a:, :], out=dk[..., new_keys, :])
        np.matmul(np.swapaxes(dropped[..., a:, new_keys], -1, -2), grad_out[..., a:, :], out=dv[..., new_keys, :])
        first_unseen = max(first_unseen, seen)


def attention_forward(q, k, v, mask=None, causal=False, scale=None, dropout_p=0.0, seed=None):
    q, k, v, mask, scale, p, keep = forward_inputs("attention_forward", q, k, v, mask, scale, dropout_p, seed)
    out = np.empty((*q.shape[:-1], v.shape[-1]), q.dtype)
    probs = _forward_into(q, k, v, mask, causal, scale, p, keep, out)
    return out, probs, keep


def attention_backward(grad_out, q, k, v, probs, keep, scale, dropout_p, causal=False):
    grad_out, q, k, v, probs, keep, scale, factor = backward_inputs(
        "attention_backward", grad_out, q, k, v, probs, keep, scale, dropout_p
    )
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    _backward_into(grad_out, q, k, v, probs, keep, scale, factor, causal, dq, dk, dv)
    return dq, dk, dv


def _heads(packed, num_heads):
    """(B, T, 3E) -> three (B, H, T, D) views of the q, k and v parts (no copy)."""
    b, t, three_e = packed.shape
    parts = packed.reshape(b, t, 3, num_heads, three_e // (3 * num_heads))
    return tuple(parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def attention_packed_forward(qkv, num_heads, mask=None, causal=False, scale=None, dropout_p=0.0, seed=None):
    qkv, num_heads, mask, scale, p, keep = packed_forward_inputs(
        "attention_packed_forward", qkv, num_heads, mask, scale, dropout_p, seed
    )
    b, t, three_e = qkv.shape
    out = np.empty((b, t, three_e // 3), qkv.dtype)
    heads_out = out.reshape(b, t, num_heads, -1).transpose(0, 2, 1, 3)  # (B, H, T, D) view of the merged output
    probs = _forward_into(*_heads(qkv, num_heads), mask, causal, scale, p, keep, heads_out)
    return out, probs, keep


def attention_packed_backward(grad_out, qkv, num_heads, probs, keep, scale, dropout_p, causal=False):
    grad_out, qkv, num_heads, probs, keep, scale, factor = packed_backward_inputs(
        "attention_packed_backward", grad_out, qkv, num_heads, probs, keep, scale, dropout_p
    )
    b, t, e = grad_out.shape
    dqkv = np.empty_like(qkv)
    g = grad_out.reshape(b, t, num_heads, -1).transpose(0, 2, 1, 3)
    _backward_into(g, *_heads(qkv, num_heads), probs, keep, scale, factor, causal, *_heads(dqkv, num_heads))
    return dqkv


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef void _cached_rows(const floating[:, :, ::1] q, const floating[:, :, ::1] k, const floating[:, :, ::1] v,
                       Py_ssize_t length, floating scale, floating[:, ::1] scores, floating[:, :, ::1] out) noexcept nogil:
    """out[n, i] = softmax(q[n, i] . k[n, :limit] * scale) @ v[n, :limit], limit = length - t + i + 1."""
    cdef Py_ssize_t n_mat = q.shape[0], t = q.shape[1], d = q.shape[2], dv = v.shape[2]
    cdef Py_ssize_t r, n, i, j, c, limit
    cdef floating mx, total, acc, p
    cdef floating* s
    cdef floating* o
    cdef const floating* qr
    cdef const floating* kr
    cdef const floating* vr
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
