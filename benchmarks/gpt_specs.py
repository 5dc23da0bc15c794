"""The TinyGPT benchmarks' model, weights and inputs, in NumPy only, so that each framework's side builds the same ones.

The model is the issue's: vocabulary 65, 4 layers, 4 heads, width 128, context 128, pre-LayerNorm
blocks with exact GELU, tied head, biases. :func:`gpt_state` draws GPT-2's initialisation under
the parameter names both ``tinytorch.tinygpt.TinyGPT`` and ``benchmarks.torch_gpt.TorchGPT`` use,
from a seeded generator, so the two sides start from bit-identical weights.
"""

from __future__ import annotations

import math

import numpy as np

GPT = dict(vocab_size=65, d_model=128, num_heads=4, num_layers=4, max_length=128)
TRAIN_BATCH, TRAIN_BLOCK = 32, 128
ADAMW = dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)  # nanoGPT's Shakespeare settings
NEW_TOKENS = 127  # generated after a one-token prompt: the context fills the 128 positions exactly
ATTENTION = dict(batch=16, heads=4, length=128, head_dim=32)  # causal, forward and backward


def gpt_state(seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2's initialisation for the benchmark model: N(0, 0.02) matrices and embeddings, N(0, 0.02 /
    sqrt(2 * layers)) for the projections into the residual stream, zero biases, LayerNorms at 1 and 0."""
    rng = np.random.default_rng(seed)
    v, d, layers, length = GPT["vocab_size"], GPT["d_model"], GPT["num_layers"], GPT["max_length"]
    residual = 0.02 / math.sqrt(2 * layers)

    def normal(shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    state = {"token_embedding.weight": normal((v, d)), "position_embedding.weight": normal((length, d))}
    for i in range(layers):
        p = f"blocks.{i}."
        state.update({
            p + "ln1.weight": np.ones(d, np.float32), p + "ln1.bias": np.zeros(d, np.float32),
            p + "attn.in_proj_weight": normal((3 * d, d)), p + "attn.in_proj_bias": np.zeros(3 * d, np.float32),
            p + "attn.out_proj.weight": normal((d, d), residual), p + "attn.out_proj.bias": np.zeros(d, np.float32),
            p + "ln2.weight": np.ones(d, np.float32), p + "ln2.bias": np.zeros(d, np.float32),
            p + "mlp.0.weight": normal((4 * d, d)), p + "mlp.0.bias": np.zeros(4 * d, np.float32),
            p + "mlp.2.weight": normal((d, 4 * d), residual), p + "mlp.2.bias": np.zeros(d, np.float32),
        })
    state["ln_f.weight"], state["ln_f.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
    state["head.weight"] = state["token_embedding.weight"]  # tied
    return state


def token_batch(batch: int, block: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random token ids (batch, block) and the next-token targets, int64."""
    ids = np.random.default_rng(seed).integers(0, GPT["vocab_size"], size=(batch, block + 1))
    return ids[:, :-1].copy(), ids[:, 1:].copy()


def attention_inputs(batch: int, heads: int, length: int, head_dim: int) -> dict[str, np.ndarray]:
    """q, k, v (batch, heads, length, head_dim) float32 and an output gradient of the same shape."""
    rng = np.random.default_rng(2)
    shape = (batch, heads, length, head_dim)
    return {name: rng.standard_normal(shape, dtype=np.float32) for name in ("q", "k", "v", "grad")}
