"""Attention (lesson 07): scaled dot-product attention, masks, and multi-head attention.

Every query scores every key, the scores become weights with a softmax, and the output is the
weighted average of the values:

    attention(Q, K, V) = softmax(Q Kᵀ · scale + mask) V        Q (..., L, E)  K (..., S, E)  V (..., S, Ev)

``scale`` is 1/sqrt(E) unless given: without it the scores of wide heads grow like sqrt(E) and the
softmax saturates. :func:`scaled_dot_product_attention` has PyTorch's signature and semantics
(a boolean ``attn_mask`` is True where a query *may* attend; a float mask is added to the scores)
and runs on the fused attention kernel through the kernel registry (its NumPy twin under
``kernels.use("reference")``). :class:`MultiHeadAttention` splits the embedding into heads that
attend independently; its parameters carry PyTorch's names and shapes, so the state dict of a
``torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)`` loads as it is.

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> q = tt.randn(2, 4, 5, 8)                               # (batch, heads, tokens, head size)
>>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
(2, 4, 5, 8)
>>> mha = MultiHeadAttention(embed_dim=32, num_heads=4)
>>> mha(tt.randn(2, 10, 32), is_causal=True).shape        # self-attention over 10 tokens
(2, 10, 32)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import kernels
from .activations import softmax
from .autograd import Function
from .exercises import exercise
from .init import constant_, xavier_uniform_
from .layers import Dense, dropout, linear
from .module import Module, Parameter
from .random import generator
from .tensor import Tensor, where

__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "ScaledDotProductAttention",
    "MultiHeadAttention",
    "MultiheadAttention",
]


# -- masks --------------------------------------------------------------------------------------------
@exercise
def causal_mask(size: int, key_size: int | None = None) -> Tensor:
    """Where each query may attend when it must not see the future: a boolean (size, key_size) Tensor.

    Query ``i`` may attend key ``j`` when ``j <= i`` (True on and below the diagonal): token i is
    predicted from tokens 0..i only. This is PyTorch's ``is_causal`` mask, aligned to the top left
    when there are more keys than queries.

    Parameters
    ----------
    size : int
        L, the number of queries.
    key_size : int, optional
        S, the number of keys (``size`` when None).

    Returns
    -------
    Tensor
        bool, shape (L, S), ``mask[i, j] = j <= i``.

    >>> causal_mask(3).numpy().astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    key_size = size if key_size is None else key_size
    for name, n in (("size", size), ("key_size", key_size)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"causal_mask: {name} must be a non-negative integer, got {n!r}")
    return Tensor(np.tri(int(size), int(key_size), dtype=bool))


def padding_mask(lengths: Sequence[int] | np.ndarray | Tensor, max_length: int) -> Tensor:
    """Which positions of a padded batch hold real tokens: a boolean (B, max_length) Tensor.

    Sequences of different lengths are padded to one length to share a batch; attention must not
    look at the padding. ``mask[b, t]`` is True when ``t < lengths[b]``. For
    :func:`scaled_dot_product_attention` on (B, H, L, S) scores, use ``mask[:, None, None, :]``
    (True = may attend); :class:`MultiHeadAttention`'s ``key_padding_mask`` takes PyTorch's
    opposite convention (True = padding), so pass it ``~mask`` there.

    >>> padding_mask([1, 3], 4).numpy().astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 1, 0]])
    """
    values = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise ValueError(f"padding_mask: lengths must be a 1-D sequence of integers, got {values!r}")
    if not isinstance(max_length, (int, np.integer)) or max_length < 0:
        raise ValueError(f"padding_mask: max_length must be a non-negative integer, got {max_length!r}")
    if values.size and (values.min() < 0 or values.max() > max_length):
        raise ValueError(f"padding_mask: every length must be in [0, {max_length}], got {values.tolist()}")
    return Tensor(np.arange(int(max_length)) < values[:, None])


def _mask_array(op: str, name: str, mask: Any) -> np.ndarray:
    """A mask as a NumPy array: boolean, or float (added to the scores)."""
    array = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if array.dtype != np.bool_ and array.dtype.kind != "f":
        raise TypeError(f"{op}: {name} has dtype {array.dtype}; expected bool or a float dtype")
    return array


def _check_rows(op: str, allowed: np.ndarray, what: str) -> None:
    """Raise when some query may attend no key: its softmax would be 0/0 (PyTorch returns NaN there)."""
    rows = allowed.any(axis=-1) if allowed.shape[-1] else np.zeros(allowed.shape[:-1], dtype=bool)
    if not rows.all():
        index = tuple(int(i) for i in np.argwhere(~rows)[0])
        raise ValueError(
            f"{op}: {what} masks every key for the query at index {index} of the scores' leading axes "
            f"(the mask's shape is {allowed.shape}); its softmax would be 0/0. Let every query attend at least one key"
        )


def _with_causal(mask: np.ndarray | None, length: int) -> np.ndarray:
    """``mask`` (kernel convention) with the square causal mask folded in, for attention computed from ops."""
    allowed = np.tri(length, dtype=bool)
    if mask is None:
        return allowed
    if mask.dtype == np.bool_:
        return mask & allowed
    return np.where(allowed, mask, -np.inf).astype(mask.dtype)


# -- the function ---------------------------------------------------------------------------------
class ScaledDotProductAttentionFunction(Function):
    """out = softmax(q kᵀ · scale + mask) v on the fused kernel; the leading (batch) axes broadcast.

    The gradient of each input comes back at the broadcast shape and the engine sums the copies. No
    gradient flows into the mask.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, dropout_p, seed):
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:])) for a in (q, k, v))
        out, probs, keep = kernels.attention_forward(q, k, v, mask, causal, scale, dropout_p, seed)
        ctx.save_for_backward(q, k, v, probs, keep)
        ctx.params = (scale, dropout_p, causal)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probs, keep = ctx.saved
        scale, dropout_p, causal = ctx.params
        return kernels.attention_backward(grad, q, k, v, probs, keep, scale, dropout_p, causal)


def _as_float_tensor(op: str, name: str, x: Any) -> Tensor:
    """Tensors pass; a float NumPy array keeps its dtype (float64 stays float64); other data becomes float32."""
    if not isinstance(x, Tensor):
        array = np.asarray(x)
        x = Tensor(array, dtype=array.dtype if array.dtype.kind == "f" else None)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float tensor, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{op}: {name} must have at least 2 axes (..., tokens, features), got shape {x.shape}")
    return x


def _check_qkv(op: str, q: Tensor, k: Tensor, v: Tensor) -> tuple[int, ...]:
    """Check the shapes of q (..., L, E), k (..., S, E), v (..., S, Ev); return the broadcast batch shape."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{op}: query of shape {q.shape} and key of shape {k.shape} must have the same last dimension "
            f"(the features each query is compared with each key on)"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{op}: key of shape {k.shape} and value of shape {v.shape} must have the same number of "
            f"positions (axis -2): one value per key"
        )
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"{op}: query, key and value must have one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    try:
        return np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: the leading (batch) axes of query {q.shape}, key {k.shape} and value {v.shape} do not broadcast"
        ) from None


@exercise
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | np.ndarray | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """``softmax(query @ keyᵀ * scale + mask) @ value``, PyTorch's ``F.scaled_dot_product_attention``.

    Parameters
    ----------
    query : Tensor
        (..., L, E): L queries of E features (leading axes such as (batch, heads) broadcast).
    key : Tensor
        (..., S, E): S keys.
    value : Tensor
        (..., S, Ev): one value per key.
    attn_mask : Tensor or ndarray, optional
        Broadcasts to the scores' shape (..., L, S). Boolean: True where a query may attend.
        Float: added to the scaled scores (``-inf`` forbids). A query that may attend no key at all
        is an error (PyTorch would return NaN for it).
    dropout_p : float
        Probability of dropping each attention weight after the softmax (the rest are scaled by
        1/(1 - p)). Applied whenever it is above 0, as in PyTorch: pass 0 when evaluating. The
        draw comes from the framework's generator (``tinytorch.manual_seed``).
    is_causal : bool
        Query i attends keys 0..i only (:func:`causal_mask`, aligned top left). Not combined with
        ``attn_mask``: give one or the other.
    scale : float, optional
        Multiplies the scores; 1/sqrt(E) when None.

    Returns
    -------
    Tensor
        (..., L, Ev), differentiable with respect to query, key and value.
    """
    op = "scaled_dot_product_attention"
    q, k, v = (_as_float_tensor(op, n, x) for n, x in (("query", query), ("key", key), ("value", value)))
    batch = _check_qkv(op, q, k, v)
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    if scale is not None and not math.isfinite(scale):
        raise ValueError(f"{op}: scale must be a finite number, got {scale}")
    L, S = q.shape[-2], k.shape[-2]
    scores_shape = (*batch, L, S)
    mask, causal = None, False
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f"{op}: give attn_mask or is_causal=True, not both (as in PyTorch)")
        if L == S:
            causal = True  # the kernel's own causal limit: no mask array, masked blocks skipped
        else:
            mask = np.asarray(causal_mask(L, S), dtype=bool)  # top-left aligned, unlike the kernel's causal flag
        if S == 0 and L:
            _check_rows(op, np.zeros((L, 0), dtype=bool), "is_causal with no keys")
    elif attn_mask is not None:
        mask = _mask_array(op, "attn_mask", attn_mask)
        try:
            fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{op}: attn_mask of shape {mask.shape} does not broadcast to the scores' shape {scores_shape} "
                f"(query {q.shape}, key {k.shape})"
            )
        _check_rows(op, mask if mask.dtype == np.bool_ else mask != -np.inf, "attn_mask")
        if mask.dtype != np.bool_:
            mask = mask.astype(q.dtype, copy=False)
    elif S == 0 and L:
        _check_rows(op, np.zeros((L, 0), dtype=bool), "a key of length 0")
    seed = int(generator().integers(2**63)) if dropout_p > 0 else None
    return ScaledDotProductAttentionFunction.apply(
        q, k, v, mask=mask, causal=causal, scale=scale, dropout_p=float(dropout_p), seed=seed
    )


# -- heads --------------------------------------------------------------------------------------------
def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, E) -> (B, num_heads, T, E // num_heads): each head gets its own slice of the features.

    Head h holds features ``h * D .. (h + 1) * D - 1`` of every token (D = E // num_heads), and the
    heads become a batch axis, so one batched attention call serves them all.

    >>> split_heads(Tensor(np.zeros((2, 5, 12))), 3).shape
    (2, 3, 5, 4)
    """
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x), dtype=np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else None)
    if x.ndim != 3:
        raise ValueError(f"split_heads: expected (batch, tokens, embed_dim), got shape {x.shape}")
    b, t, e = x.shape
    if not isinstance(num_heads, (int, np.integer)) or num_heads <= 0 or e % num_heads:
        raise ValueError(f"split_heads: embed_dim {e} is not divisible by num_heads={num_heads!r}")
    return x.reshape(b, t, int(num_heads), e // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, D) -> (B, T, H * D): the inverse of :func:`split_heads`, the heads side by side again."""
    if not isinstance(x, Tensor):
        x = Tensor(np.asarray(x), dtype=np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else None)
    if x.ndim != 4:
        raise ValueError(f"merge_heads: expected (batch, heads, tokens, head_dim), got shape {x.shape}")
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)


class MultiHeadAttentionFunction(Function):
    """merge_heads(attention(split_heads(q), split_heads(k), split_heads(v))) in one op.

    The head split and merge are layout changes around the kernel; fusing them saves the graph six
    ops. Self-attention passes the packed (B, L, 3E) projection as ``q`` and None for ``k`` and
    ``v``: the packed kernels read every head where it lies in the projection and write the output
    and the gradient in the merged layouts, with no copy in between.
    """

    @staticmethod
    def forward(ctx, q, k, v, num_heads, mask, causal, scale, dropout_p, seed):
        ctx.params = (num_heads, scale, dropout_p, causal, k is None)
        if k is None:
            out, probs, keep = kernels.attention_packed_forward(q, num_heads, mask, causal, scale, dropout_p, seed)
            ctx.save_for_backward(q, probs, keep)
            return out
        b, length, e = q.shape
        qh, kh, vh = (
            np.ascontiguousarray(a.reshape(b, a.shape[1], num_heads, a.shape[2] // num_heads).transpose(0, 2, 1, 3))
            for a in (q, k, v)
        )
        out, probs, keep = kernels.attention_forward(qh, kh, vh, mask, causal, scale, dropout_p, seed)
        ctx.save_for_backward(qh, kh, vh, probs, keep)
        return out.transpose(0, 2, 1, 3).reshape(b, length, e)

    @staticmethod
    def backward(ctx, grad):
        num_heads, scale, dropout_p, causal, packed = ctx.params
        if packed:
            qkv, probs, keep = ctx.saved
            return kernels.attention_packed_backward(grad, qkv, num_heads, probs, keep, scale, dropout_p, causal), None, None
        qh, kh, vh, probs, keep = ctx.saved
        b, h, length, d = qh.shape
        g = np.ascontiguousarray(grad.reshape(b, length, h, d).transpose(0, 2, 1, 3))
        dq, dk, dv = kernels.attention_backward(g, qh, kh, vh, probs, keep, scale, dropout_p, causal)
        return tuple(part.transpose(0, 2, 1, 3).reshape(b, part.shape[2], h * d) for part in (dq, dk, dv))


# -- modules --------------------------------------------------------------------------------------
class ScaledDotProductAttention(Module):
    """:func:`scaled_dot_product_attention` as a module: ``attention(query, key, value)`` returns the output.

    ``dropout`` drops attention weights in training mode only (after ``eval()`` it is off).
    ``forward(query, key, value, mask=None, is_causal=False)``: ``mask`` follows the function's
    ``attn_mask`` (boolean True = may attend, or float added to the scores).
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"ScaledDotProductAttention: dropout must be in [0, 1], got {dropout}")
        self.dropout = float(dropout)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, mask: Any = None, is_causal: bool = False) -> Tensor:
        p = self.dropout if self.training else 0.0
        return scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=p, is_causal=is_causal)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""


def _positive(op: str, name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    return int(value)


class MultiHeadAttention(Module):
    """Multi-head attention, PyTorch's ``nn.MultiheadAttention`` with ``batch_first=True`` by default.

    The query, key and value are projected to ``embed_dim`` features, split into ``num_heads``
    heads of ``embed_dim // num_heads`` features that attend independently, merged back and
    projected once more::

        q, k, v = query Wqᵀ + bq,  key Wkᵀ + bk,  value Wvᵀ + bv        (W* stacked in in_proj_weight)
        out = merge_heads(attention(split_heads(q), split_heads(k), split_heads(v))) Woᵀ + bo

    Parameters
    ----------
    embed_dim : int
        E, the model's width (the seed course's ``d_model=`` is accepted too).
    num_heads : int
        H; E must be divisible by it.
    dropout : float
        Dropout on the attention weights, in training mode.
    bias : bool
        Learn the projections' biases.
    kdim, vdim : int, optional
        Feature sizes of key and value when they differ from E (cross-attention from another
        model); then the projections are ``q_proj_weight``, ``k_proj_weight`` and
        ``v_proj_weight`` instead of ``in_proj_weight``, as in PyTorch.
    batch_first : bool
        Inputs are (B, T, E) (default) or, with False, (T, B, E). 2-D inputs (T, E) are one
        unbatched sequence.

    Attributes
    ----------
    in_proj_weight : Parameter
        (3E, E): Wq, Wk, Wv stacked, Xavier-uniform initialised as in PyTorch.
    in_proj_bias : Parameter or None
        (3E,), zeros.
    out_proj : Dense
        E -> E (``out_proj.weight``, ``out_proj.bias``; the bias starts at zero).

    Calling it: ``mha(query, key=None, value=None, key_padding_mask=None, need_weights=False,
    attn_mask=None, average_attn_weights=True, is_causal=False)``; ``mha(x)`` is self-attention.
    The masks follow ``nn.MultiheadAttention`` (not ``scaled_dot_product_attention``): a boolean
    ``attn_mask`` (L, S) or (B * H, L, S) and ``key_padding_mask`` (B, S) are True where attention
    is NOT allowed; float masks are added to the scores. ``is_causal=True`` adds the causal mask
    (PyTorch requires ``attn_mask`` beside it; here it is enough alone). ``need_weights=True``
    returns ``(output, weights)`` with the attention weights averaged over the heads (per head with
    ``average_attn_weights=False``), computed step by step instead of in the fused kernel; by
    default only the output is returned (PyTorch returns ``(output, None)``).
    """

    def __init__(
        self,
        embed_dim: int | None = None,
        num_heads: int = 1,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = True,
        *,
        d_model: int | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        if embed_dim is None and d_model is None:
            raise TypeError(f"{name}: give embed_dim (or the seed course's d_model)")
        if embed_dim is not None and d_model is not None and embed_dim != d_model:
            raise ValueError(f"{name}: embed_dim={embed_dim} and d_model={d_model} disagree; give one of them")
        self.embed_dim = _positive(name, "embed_dim", embed_dim if embed_dim is not None else d_model)
        self.num_heads = _positive(name, "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"{name}: embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "each head takes embed_dim // num_heads features"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.kdim = self.embed_dim if kdim is None else _positive(name, "kdim", kdim)
        self.vdim = self.embed_dim if vdim is None else _positive(name, "vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * e, e), dtype=np.float32))
            for part in ("q", "k", "v"):
                self.register_parameter(f"{part}_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((e, e), dtype=np.float32))
            self.k_proj_weight = Parameter(np.empty((e, self.kdim), dtype=np.float32))
            self.v_proj_weight = Parameter(np.empty((e, self.vdim), dtype=np.float32))
        self.register_parameter("in_proj_bias", Parameter(np.empty(3 * e, dtype=np.float32)) if bias else None)
        self.out_proj = Dense(e, e, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases (out_proj.weight keeps Dense's)."""
        if self._qkv_same_embed_dim:
            xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                xavier_uniform_(w)
        if self.in_proj_bias is not None:
            constant_(self.in_proj_bias, 0.0)
            constant_(self.out_proj.bias, 0.0)

    def extra_repr(self) -> str:
        parts = [f"embed_dim={self.embed_dim}", f"num_heads={self.num_heads}"]
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if not self._qkv_same_embed_dim:
            parts.append(f"kdim={self.kdim}, vdim={self.vdim}")
        if self.in_proj_bias is None:
            parts.append("bias=False")
        if not self.batch_first:
            parts.append("batch_first=False")
        return ", ".join(parts)

    # -- forward --------------------------------------------------------------------------------------
    def _input(self, name: str, x: Any, features: int) -> Tensor:
        dtype = self.out_proj.weight.dtype
        if not isinstance(x, Tensor):
            array = np.asarray(x)
            x = Tensor(array, dtype=dtype if array.dtype.kind in "fiub" else None)
        if x.dtype != dtype:
            raise TypeError(f"{self.label()} got {name} of dtype {x.dtype}, but its parameters are {dtype}")
        if x.ndim not in (2, 3) or x.shape[-1] != features:
            layout = "(B, T, {0})" if self.batch_first else "(T, B, {0})"
            raise ValueError(
                f"{self.label()} got {name} of shape {x.shape}; expected {layout.format(features)} "
                f"or an unbatched (T, {features})"
            )
        return x

    def _projections(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(q, k, v) projected; for self-attention the packed (B, L, 3E) projection and None, None."""
        e = self.embed_dim
        b = self.in_proj_bias
        biases = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            if query is key is value:
                return linear(query, self.in_proj_weight, b), None, None
            w = self.in_proj_weight
            weights = (w[:e], w[e:2 * e], w[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        q, k, v = (linear(x, wi, bi) for x, wi, bi in zip((query, key, value), weights, biases))
        return q, k, v

    def _mask(self, batch: int, length: int, keys: int, attn_mask: Any, key_padding_mask: Any, is_causal: bool,
              dtype: np.dtype) -> tuple[np.ndarray | None, bool]:
        """(mask, causal) for the kernel: one mask for the (B, H, L, S) scores in its convention (bool True =
        may attend, or float added) or None, and whether the kernel applies the causal limit itself."""
        op, h = self.label(), self.num_heads
        parts = []
        if attn_mask is not None:
            mask = _mask_array(op, "attn_mask", attn_mask)
            if mask.shape == (length, keys):
                pass
            elif mask.shape == (batch * h, length, keys):
                mask = mask.reshape(batch, h, length, keys)
            else:
                raise ValueError(
                    f"{op}: attn_mask of shape {mask.shape} does not fit: expected ({length}, {keys}) or "
                    f"(batch * num_heads, {length}, {keys}) = ({batch * h}, {length}, {keys})"
                )
            parts.append(mask)
        if key_padding_mask is not None:
            mask = _mask_array(op, "key_padding_mask", key_padding_mask)
            if mask.shape != (batch, keys):
                raise ValueError(f"{op}: key_padding_mask of shape {mask.shape} does not fit: expected ({batch}, {keys})")
            parts.append(mask[:, None, None, :])
        causal = ~np.tri(length, keys, dtype=bool) if is_causal else None  # True = not allowed, like the masks above
        # For a square causal mask the kernel's own causal limit does the work (and skips the masked
        # blocks); it takes part in the check for queries left with no key either way.
        kernel_causal = is_causal and length == keys
        if causal is not None and not kernel_causal:
            parts.append(causal)
        if not parts:
            return None, kernel_causal
        what = "the combined attn_mask, key_padding_mask and is_causal"
        if all(p.dtype == np.bool_ for p in parts):
            forbidden = parts[0]
            for p in parts[1:]:
                forbidden = forbidden | p
            _check_rows(op, ~(forbidden | causal) if kernel_causal else ~forbidden, what)
            return ~forbidden, kernel_causal
        total = np.zeros((), dtype=dtype)
        for p in parts:
            total = total + (np.where(p, -np.inf, 0.0).astype(dtype) if p.dtype == np.bool_ else p.astype(dtype))
        _check_rows(op, (total != -np.inf) & ~causal if kernel_causal else total != -np.inf, what)
        return total, kernel_causal

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask: Any = None,
        need_weights: bool = False,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        self_attention = key is None and value is None
        key = query if key is None else key
        value = key if value is None else value
        query = self._input("query", query, self.embed_dim)
        key = query if key is query else self._input("key", key, self.kdim)
        value = key if value is key else self._input("value", value, self.vdim)
        self_attention = self_attention or (query is key is value)
        if not query.ndim == key.ndim == value.ndim:
            raise ValueError(
                f"{self.label()}: query {query.shape}, key {key.shape} and value {value.shape} must all be batched or all unbatched"
            )
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (x.reshape(1, *x.shape) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = _mask_array(self.label(), "key_padding_mask", key_padding_mask)[None]
        elif not self.batch_first:
            query, key, value = (x.swapaxes(0, 1) for x in (query, key, value))
        if self_attention:
            key = value = query
        b, length, keys = query.shape[0], query.shape[1], key.shape[1]
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(
                f"{self.label()}: key of shape {key.shape} and value of shape {value.shape} must have the same "
                "batch size and number of positions: one value per key"
            )
        if key.shape[0] != b:
            raise ValueError(f"{self.label()}: query has batch size {b} but key and value have {key.shape[0]}")
        mask, causal = self._mask(b, length, keys, attn_mask, key_padding_mask, is_causal, query.dtype)
        p = self.dropout if self.training else 0.0
        q, k, v = self._projections(query, key, value)
        if need_weights:
            if causal:
                mask = _with_causal(mask, length)
            out, weights = self._attend_step_by_step(q, k, v, mask, p)
            if average_attn_weights:
                weights = weights.mean(axis=1)
        else:
            seed = int(generator().integers(2**63)) if p > 0 else None
            out = MultiHeadAttentionFunction.apply(
                q, k, v, num_heads=self.num_heads, mask=mask, causal=causal, scale=None, dropout_p=p, seed=seed
            )
        out = self.out_proj(out)
        if unbatched:
            out = out.reshape(out.shape[1:])
        elif not self.batch_first:
            out = out.swapaxes(0, 1)
        if not need_weights:
            return out
        return out, (weights.reshape(weights.shape[1:]) if unbatched else weights)

    def _attend_step_by_step(self, q: Tensor, k: Tensor | None, v: Tensor | None, mask: np.ndarray | None,
                             p: float) -> tuple[Tensor, Tensor]:
        """Attention from ops (matmul, softmax, dropout), keeping the weights: (merged output, weights (B, H, L, S))."""
        if k is None:  # packed self-attention projection
            e = self.embed_dim
            q, k, v = q[..., :e], q[..., e:2 * e], q[..., 2 * e:]
        qh, kh, vh = (split_heads(x, self.num_heads) for x in (q, k, v))
        scores = (qh @ kh.swapaxes(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None and mask.dtype == np.bool_:
            scores = where(mask, scores, -np.inf)
        elif mask is not None:
            scores = scores + mask
        weights = softmax(scores, axis=-1)
        if p > 0:
            weights = dropout(weights, p, training=True)
        return merge_heads(weights @ vh), weights


MultiheadAttention = MultiHeadAttention
