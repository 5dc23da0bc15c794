"""ONNX nodes for the transformer pieces: multi-head self-attention, the pre-LayerNorm block, and TinyGPT.

Kept apart from :mod:`.onnx_export` because attention is not one operator in opset 17: it is
spelled out as the products, the scale, the causal mask and the softmax the framework's fused
kernel computes in one pass::

    qkv = x @ in_proj_weightᵀ + in_proj_bias           (B, T, 3E)
    q, k, v = split into heads                         (B, H, T, D) each
    p = softmax(q kᵀ / sqrt(D), masked where key > query)
    out = (p v, heads merged) @ out_proj.weightᵀ + out_proj.bias

The sequence length stays dynamic: positions are ``Range(0, T)`` and the causal mask is a slice
of a (max_length, max_length) triangle, so one file serves every prompt length up to max_length.

TinyGPT lives in lesson 16's module, which this lesson's code must not import; it and its block are
recognised by their class path instead (:data:`BY_CLASS_PATH`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..attention import MultiHeadAttention

__all__ = ["BY_CLASS_PATH", "causal_self_attention", "default_dynamic_axes"]

TINYGPT = "tinytorch.tinygpt.TinyGPT"
BLOCK = "tinytorch.tinygpt.TransformerBlock"


def _dense(g: Any, layer: Any, x: str, where: str) -> str:
    """x @ Wᵀ (+ b) over the last axis of an input of any rank."""
    y = g.op("MatMul", [x, g.constant(f"{where}.weight_t", layer.weight.data.T)], f"{where}.matmul")
    return g.op("Add", [y, g.constant(f"{where}.bias", layer.bias.data)], where) if layer.bias is not None else y


def _layer_norm(g: Any, layer: Any, x: str, where: str) -> str:
    inputs = [x, g.constant(f"{where}.weight", layer.weight.data)]
    if layer.bias is not None:  # ONNX's LayerNormalization takes the shift as an optional third input
        inputs.append(g.constant(f"{where}.bias", layer.bias.data))
    return g.op("LayerNormalization", inputs, where, axis=-1, epsilon=layer.eps)


def _sequence_length(g: Any, x: str, where: str) -> str:
    """A 1-element int64 tensor holding T, the size of axis 1 of ``x``."""
    shape = g.op("Shape", [x], f"{where}.shape")
    return g.op("Gather", [shape, g.constant(f"{where}.axis1", np.array([1], np.int64))], f"{where}.length", axis=0)


def causal_self_attention(g: Any, attn: MultiHeadAttention, x: str, where: str, max_length: int, dtype: np.dtype) -> str:
    """Nodes of ``attn(x, is_causal=True)`` for x (B, T, E); returns the (B, T, E) output."""
    if not attn._qkv_same_embed_dim or not attn.batch_first:
        raise TypeError(f"export_onnx: {where}: only batch-first self-attention with one packed projection exports")
    e, h, d = attn.embed_dim, attn.num_heads, attn.head_dim
    qkv = g.op("MatMul", [x, g.constant(f"{where}.in_proj_weight_t", attn.in_proj_weight.data.T)], f"{where}.qkv")
    if attn.in_proj_bias is not None:
        qkv = g.op("Add", [qkv, g.constant(f"{where}.in_proj_bias", attn.in_proj_bias.data)], f"{where}.qkv_bias")
    heads = g.op("Reshape", [qkv, g.constant(f"{where}.qkv_shape", np.array([0, 0, 3, h, d], np.int64))], f"{where}.heads")
    heads = g.op("Transpose", [heads], f"{where}.heads_t", perm=[2, 0, 3, 1, 4])  # (3, B, H, T, D)
    q, k, v = (g.op("Gather", [heads, g.constant(f"{where}.{n}_index", np.array(i, np.int64))], f"{where}.{n}", axis=0)
               for i, n in enumerate("qkv"))
    scores = g.op("MatMul", [q, g.op("Transpose", [k], f"{where}.k_t", perm=[0, 1, 3, 2])], f"{where}.scores")
    scores = g.op("Mul", [scores, g.constant(f"{where}.scale", np.array(1 / math.sqrt(d), dtype))], f"{where}.scaled")
    length = _sequence_length(g, x, where)
    zeros = g.constant(f"{where}.zeros", np.array([0, 0], np.int64))
    ends = g.op("Concat", [length, length], f"{where}.ends", axis=0)
    triangle = g.constant(f"{where}.causal", np.tril(np.ones((max_length, max_length), bool)))
    allowed = g.op("Slice", [triangle, zeros, ends, g.constant(f"{where}.axes", np.array([0, 1], np.int64))],
                   f"{where}.mask")
    masked = g.op("Where", [allowed, scores, g.constant(f"{where}.minus_inf", np.array(-np.inf, dtype))], f"{where}.masked")
    weights = g.op("Softmax", [masked], f"{where}.weights", axis=-1)
    out = g.op("MatMul", [weights, v], f"{where}.context")  # (B, H, T, D)
    out = g.op("Transpose", [out], f"{where}.context_t", perm=[0, 2, 1, 3])
    out = g.op("Reshape", [out, g.constant(f"{where}.merge", np.array([0, 0, e], np.int64))], f"{where}.merged")
    return _dense(g, attn.out_proj, out, f"{where}.out_proj")


def transformer_block(g: Any, block: Any, x: str, value: np.ndarray, where: str, max_length: int | None = None) -> str:
    """``x + attn(ln1(x))`` then ``+ mlp(ln2(x))`` (Dropout is the identity in eval mode)."""
    from .onnx_export import _gelu  # the same GELU nodes as a Sequential's

    limit = max_length or value.shape[1]
    dtype = block.ln1.weight.dtype
    attended = causal_self_attention(g, block.attn, _layer_norm(g, block.ln1, x, f"{where}.ln1"), f"{where}.attn", limit, dtype)
    x = g.op("Add", [x, attended], f"{where}.residual1")
    first, gelu, second = block.mlp[0], block.mlp[1], block.mlp[2]
    hidden = _dense(g, first, _layer_norm(g, block.ln2, x, f"{where}.ln2"), f"{where}.mlp.0")
    hidden = _gelu(g, gelu, hidden, np.empty(0, dtype), f"{where}.mlp.1")  # only its dtype is read
    return g.op("Add", [x, _dense(g, second, hidden, f"{where}.mlp.2")], f"{where}.residual2")


def tinygpt(g: Any, model: Any, x: str, value: np.ndarray, where: str) -> str:
    """Logits (B, T, V) for token ids (B, T): embeddings, the blocks, the final LayerNorm, the head."""
    where = where or "tinygpt"
    tokens = g.op("Gather", [g.constant(f"{where}.token_embedding", model.token_embedding.weight.data), x],
                  f"{where}.tokens", axis=0)
    start = g.constant(f"{where}.zero", np.array(0, np.int64))
    length = g.op("Squeeze", [_sequence_length(g, x, where), g.constant(f"{where}.squeeze_axes", np.array([0], np.int64))],
                  f"{where}.t")
    positions = g.op("Range", [start, length, g.constant(f"{where}.one", np.array(1, np.int64))], f"{where}.positions")
    position_vectors = g.op("Gather", [g.constant(f"{where}.position_embedding", model.position_embedding.weight.data),
                                       positions], f"{where}.position_vectors", axis=0)
    h = g.op("Add", [tokens, position_vectors], f"{where}.embedded")
    for i, block in enumerate(model.blocks):
        h = transformer_block(g, block, h, value, f"{where}.blocks.{i}", model.max_length)
    h = _layer_norm(g, model.ln_f, h, f"{where}.ln_f")
    return _dense(g, model.head, h, f"{where}.head")


def _block_converter(g: Any, block: Any, x: str, value: np.ndarray, where: str) -> str:
    return transformer_block(g, block, x, value, where or "block")


#: class path -> converter, for classes of later lessons that this module may not import
BY_CLASS_PATH = {TINYGPT: tinygpt, BLOCK: _block_converter}


def default_dynamic_axes(model: Any) -> dict[int, str]:
    """The input axes left free in the file: the batch, and for TinyGPT the sequence too."""
    path = f"{type(model).__module__}.{type(model).__qualname__}"
    return {0: "batch", 1: "sequence"} if path in (TINYGPT, BLOCK) else {0: "batch"}
