"""Input checks and the dropout draw shared by both attention kernels (reference and compiled).

Both implementations validate their arguments here, so a bad call gets the same error from either,
and both draw the dropout keep-mask here, with NumPy, so the reference and the compiled kernel drop
exactly the same probabilities for the same seed.
"""

from __future__ import annotations

import math

import numpy as np

from .contracts import float_input, same_shape


def attention_qkv(kernel: str, q, k, v) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv); return them C-contiguous.

    The leading (batch) axes of the three must be equal; any number of them is allowed, none too.
    """
    q = float_input(kernel, "q", q)
    k = float_input(kernel, "k", k, dtype=q.dtype)
    v = float_input(kernel, "v", v, dtype=q.dtype)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim < 2:
            raise ValueError(f"{kernel}: {name} must have at least 2 axes (..., T, D), got shape {x.shape}")
    if k.ndim != q.ndim or k.shape[:-2] != q.shape[:-2] or k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"{kernel}: k has shape {k.shape}; expected (*{q.shape[:-2]}, Tk, {q.shape[-1]}) to match q of shape {q.shape}"
        )
    if v.ndim != k.ndim or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"{kernel}: v has shape {v.shape}; expected (*{k.shape[:-1]}, Dv) to match k of shape {k.shape}")
    if q.shape[-1] == 0:
        raise ValueError(f"{kernel}: q and k have a head size D of 0; D must be at least 1")
    return q, k, v


def attention_scale(kernel: str, scale, head_size: int) -> float:
    """The factor the scores are multiplied by: ``scale``, or 1/sqrt(D) when it is None."""
    if scale is None:
        return 1.0 / math.sqrt(head_size)
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"{kernel}: scale must be a finite number, got {scale}")
    return scale


def attention_mask(kernel: str, mask, scores_shape: tuple[int, ...], dtype) -> np.ndarray | None:
    """Check that ``mask`` broadcasts to ``scores_shape`` (..., Tq, Tk); return it C-contiguous, unbroadcast.

    A boolean mask stays boolean (True = may attend); a floating mask is cast to ``dtype`` (it is
    added to the scores). The mask is returned in its own shape: callers broadcast it as they read it.
    """
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise TypeError(
            f"{kernel}: mask has dtype {mask.dtype}; expected bool (True = may attend) or a float dtype (added to the scores)"
        )
    try:
        fits = np.broadcast_shapes(mask.shape, scores_shape) == tuple(scores_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{kernel}: mask of shape {mask.shape} does not broadcast to the scores' shape {tuple(scores_shape)}")
    if mask.dtype != np.bool_:
        mask = mask.astype(dtype, copy=False)
    return np.ascontiguousarray(mask)


def dropout_probability(kernel: str, dropout_p) -> float:
    """Check 0 <= p <= 1; return it as a float."""
    p = float(dropout_p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{kernel}: dropout_p must be in [0, 1], got {dropout_p}")
    return p


def dropout_scale(p: float) -> float:
    """What a kept probability is multiplied by (inverted dropout): 1/(1-p), or 0 when everything is dropped."""
    return 1.0 / (1.0 - p) if p < 1.0 else 0.0


def dropout_keep(p: float, shape: tuple[int, ...], seed) -> np.ndarray | None:
    """The keep-mask for dropout probability ``p``: None when p == 0, else a bool array of ``shape``.

    ``keep = np.random.default_rng(seed).random(shape, dtype=np.float32) >= p``, so each entry is
    kept with probability 1 - p and the same seed gives the same mask in every implementation.
    """
    if p == 0.0:
        return None
    return np.random.default_rng(seed).random(shape, dtype=np.float32) >= p


def attention_saved(
    kernel: str, grad_out, probs, keep, dropout_p, q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Check what backward receives against the checked q, k, v; return grad_out, probs, keep (C-contiguous) and p."""
    batch, tq, tk = q.shape[:-2], q.shape[-2], k.shape[-2]
    grad_out = float_input(kernel, "grad_out", grad_out, dtype=q.dtype)
    same_shape(kernel, "grad_out", grad_out, (*batch, tq, v.shape[-1]))
    probs = float_input(kernel, "probs", probs, dtype=q.dtype)
    same_shape(kernel, "probs", probs, (*batch, tq, tk))
    p = dropout_probability(kernel, dropout_p)
    return grad_out, probs, saved_keep(kernel, keep, p, probs.shape), p


def saved_keep(kernel: str, keep, p: float, shape: tuple[int, ...]) -> np.ndarray | None:
    """Check the dropout keep-mask a backward receives (None exactly when p == 0); return it C-contiguous."""
    if (keep is None) != (p == 0.0):
        raise ValueError(
            f"{kernel}: keep must be given exactly when dropout_p > 0; got dropout_p={p} and "
            f"keep={'None' if keep is None else 'an array'}"
        )
    if keep is not None:
        if not isinstance(keep, np.ndarray) or keep.dtype != np.bool_:
            raise TypeError(f"{kernel}: keep must be a boolean NumPy array, got {getattr(keep, 'dtype', type(keep).__name__)}")
        same_shape(kernel, "keep", keep, shape)
        keep = np.ascontiguousarray(keep)
    return keep


def forward_inputs(kernel: str, q, k, v, mask, scale, dropout_p, seed) -> tuple:
    """Every check of ``attention_forward``, and the dropout draw.

    Returns (q, k, v, mask, scale, p, keep): q, k, v C-contiguous; mask as :func:`attention_mask`
    returns it; scale a float; p the dropout probability; keep from :func:`dropout_keep`.
    """
    q, k, v = attention_qkv(kernel, q, k, v)
    scale = attention_scale(kernel, scale, q.shape[-1])
    scores_shape = (*q.shape[:-2], q.shape[-2], k.shape[-2])
    mask = attention_mask(kernel, mask, scores_shape, q.dtype)
    p = dropout_probability(kernel, dropout_p)
    return q, k, v, mask, scale, p, dropout_keep(p, scores_shape, seed)


def backward_inputs(kernel: str, grad_out, q, k, v, probs, keep, scale, dropout_p) -> tuple:
    """Every check of ``attention_backward``.

    Returns (grad_out, q, k, v, probs, keep, scale, factor), arrays C-contiguous, scale a float and
    factor what a kept probability was multiplied by (:func:`dropout_scale`).
    """
    q, k, v = attention_qkv(kernel, q, k, v)
    grad_out, probs, keep, p = attention_saved(kernel, grad_out, probs, keep, dropout_p, q, k, v)
    return grad_out, q, k, v, probs, keep, attention_scale(kernel, scale, q.shape[-1]), dropout_scale(p)


def cached_inputs(kernel: str, q, k_cache, v_cache, length, scale) -> tuple:
    """Every check of ``attention_cached``: q (..., t, D), caches (..., S, D) and (..., S, Dv), t <= length <= S.

    Returns (q, k_cache, v_cache, length, scale), arrays C-contiguous, length an int, scale a float.
    """
    q = float_input(kernel, "q", q)
    k_cache = float_input(kernel, "k_cache", k_cache, dtype=q.dtype)
    v_cache = float_input(kernel, "v_cache", v_cache, dtype=q.dtype)
    if q.ndim < 2 or k_cache.ndim != q.ndim or v_cache.ndim != q.ndim:
        raise ValueError(
            f"{kernel}: q {q.shape}, k_cache {k_cache.shape} and v_cache {v_cache.shape} must have the same number "
            "of axes, at least 2 (..., positions, features)"
        )
    if k_cache.shape[:-2] != q.shape[:-2] or k_cache.shape[-1] != q.shape[-1] or v_cache.shape[:-1] != k_cache.shape[:-1]:
        raise ValueError(
            f"{kernel}: k_cache of shape {k_cache.shape} and v_cache of shape {v_cache.shape} do not fit q of shape "
            f"{q.shape}: expected (*{q.shape[:-2]}, S, {q.shape[-1]}) and (*{q.shape[:-2]}, S, Dv)"
        )
    if q.shape[-1] == 0:
        raise ValueError(f"{kernel}: q and k_cache have a head size D of 0; D must be at least 1")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not q.shape[-2] <= length <= k_cache.shape[-2]:
        raise ValueError(
            f"{kernel}: length must be an integer from {q.shape[-2]} (the new queries) to {k_cache.shape[-2]} "
            f"(the cache's size), got {length!r}"
        )
    return q, k_cache, v_cache, int(length), attention_scale(kernel, scale, q.shape[-1])


def packed_heads(kernel: str, qkv, num_heads) -> tuple[np.ndarray, int, int]:
    """Check a packed projection qkv (B, T, 3E) and a head count dividing E; return (qkv C-contiguous, H, D)."""
    qkv = float_input(kernel, "qkv", qkv, ndim=3)
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
        raise ValueError(f"{kernel}: num_heads must be a positive integer, got {num_heads!r}")
    three_e = qkv.shape[2]
    if three_e == 0 or three_e % (3 * num_heads):
        raise ValueError(
            f"{kernel}: qkv of shape {qkv.shape} must have 3 * E features with E divisible by num_heads={num_heads}"
        )
    return qkv, int(num_heads), three_e // (3 * num_heads)


def packed_forward_inputs(kernel: str, qkv, num_heads, mask, scale, dropout_p, seed) -> tuple:
    """Every check of ``attention_packed_forward``, and the dropout draw (over the (B, H, T, T) scores).

    Returns (qkv, num_heads, mask, scale, p, keep).
    """
    qkv, num_heads, head_size = packed_heads(kernel, qkv, num_heads)
    b, t = qkv.shape[:2]
    scores_shape = (b, num_heads, t, t)
    mask = attention_mask(kernel, mask, scores_shape, qkv.dtype)
    p = dropout_probability(kernel, dropout_p)
    return qkv, num_heads, mask, attention_scale(kernel, scale, head_size), p, dropout_keep(p, scores_shape, seed)


def packed_backward_inputs(kernel: str, grad_out, qkv, num_heads, probs, keep, scale, dropout_p) -> tuple:
    """Every check of ``attention_packed_backward``; returns (grad_out, qkv, num_heads, probs, keep, scale, factor)."""
    qkv, num_heads, head_size = packed_heads(kernel, qkv, num_heads)
    b, t, three_e = qkv.shape
    grad_out = float_input(kernel, "grad_out", grad_out, dtype=qkv.dtype)
    same_shape(kernel, "grad_out", grad_out, (b, t, three_e // 3))
    probs = float_input(kernel, "probs", probs, dtype=qkv.dtype)
    same_shape(kernel, "probs", probs, (b, num_heads, t, t))
    p = dropout_probability(kernel, dropout_p)
    keep = saved_keep(kernel, keep, p, probs.shape)
    return grad_out, qkv, num_heads, probs, keep, attention_scale(kernel, scale, head_size), dropout_scale(p)
