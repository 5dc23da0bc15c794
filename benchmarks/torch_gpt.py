"""TinyGPT written in PyTorch, parameter for parameter: the other side of the TinyGPT benchmarks.

The same architecture as ``tinytorch.tinygpt.TinyGPT`` (pre-LayerNorm blocks, exact GELU, learned
positions, tied head) with the same parameter names, so one model's state dict loads into the
other; ``tests/test_tinygpt.py`` checks that both give the same logits and gradients. Attention is
``F.scaled_dot_product_attention``; generation keeps a preallocated KV cache. Import it only where
PyTorch is installed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Causal self-attention with ``nn.MultiheadAttention``'s parameter names (in_proj_*, out_proj)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float, bias: bool):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model)) if bias else None
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> torch.Tensor:
        b, t, e = x.shape
        h = self.num_heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, h, e // h).permute(2, 0, 3, 1, 4)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        else:
            keys, values, start = cache
            keys[:, :, start:start + t] = k
            values[:, :, start:start + t] = v
            # one new token sees every cached one; a longer chunk (the prompt) is causal within itself
            out = F.scaled_dot_product_attention(q, keys[:, :, :start + t], values[:, :, :start + t], is_causal=t > 1 and start == 0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, e))


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float, bias: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = Attention(d_model, num_heads, dropout, bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff, bias=bias), nn.GELU(), nn.Linear(d_ff, d_model, bias=bias), nn.Dropout(dropout))

    def forward(self, x, cache=None):
        x = x + self.attn_dropout(self.attn(self.ln1(x), cache))
        return x + self.mlp(self.ln2(x))


class TorchGPT(nn.Module):
    """``TinyGPT(vocab_size, d_model, num_heads, num_layers, max_length, dropout, d_ff, tie_weights, bias)`` in PyTorch."""

    def __init__(self, vocab_size: int, d_model: int = 128, num_heads: int = 4, num_layers: int = 4, max_length: int = 128,
                 dropout: float = 0.0, d_ff: int | None = None, tie_weights: bool = True, bias: bool = True):
        super().__init__()
        self.max_length, self.num_heads = max_length, num_heads
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(max_length, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(d_model, num_heads, d_ff or 4 * d_model, dropout, bias) for _ in range(num_layers)))
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.token_embedding.weight
        for name, p in self.named_parameters():  # GPT-2's initialisation, as TinyGPT's
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * num_layers) if name.endswith(("out_proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, caches=None, start: int = 0) -> torch.Tensor:
        t = idx.shape[1]
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(torch.arange(start, start + t)))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else (caches[i][0], caches[i][1], start))
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens (temperature 1) with a preallocated KV cache; prompt and new
        tokens together must fit in ``max_length + 1`` (the last token sampled is never fed back)."""
        b, length = idx.shape
        if length + max_new_tokens - 1 > self.max_length:
            raise ValueError(f"generate: {length} + {max_new_tokens} tokens do not fit in max_length={self.max_length}")
        d = self.token_embedding.embedding_dim
        shape = (b, self.num_heads, self.max_length, d // self.num_heads)
        caches = [(torch.empty(shape), torch.empty(shape)) for _ in self.blocks]
        logits = self(idx, caches, 0)
        out = [idx]
        for i in range(max_new_tokens):
            token = torch.multinomial(torch.softmax(logits[:, -1], dim=-1), 1, generator=generator)
            out.append(token)
            if i < max_new_tokens - 1:
                logits = self(token, caches, length)
                length += 1
        return torch.cat(out, dim=1)
