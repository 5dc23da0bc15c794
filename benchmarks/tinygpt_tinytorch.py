"""TinyTorch's side of the TinyGPT benchmarks (``benchmarks/tinygpt.py``): factories returning the timed callable.

Imported only by a benchmark worker process, never beside PyTorch. Everything runs through the
framework's public API: ``TinyGPT`` and its loss, ``AdamW``, ``generate`` with its KV cache, and
``scaled_dot_product_attention`` on tensors.
"""

from __future__ import annotations

from typing import Callable

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np

from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.tinygpt import TinyGPT

from . import gpt_specs as specs
from .tinytorch_side import describe, pin_threads  # noqa: F401  (the worker asks the target's module for them)

Run = Callable[[], object]


def _model() -> TinyGPT:
    model = TinyGPT(**specs.GPT)
    model.load_state_dict(specs.gpt_state())
    return model


def train_step(batch: int, block: int) -> Run:
    """Forward, cross-entropy, backward and an AdamW step on one (batch, block) batch of token ids."""
    model = _model()
    optimizer = tt.AdamW(model.parameters(), **specs.ADAMW)
    x, y = specs.token_batch(batch, block)

    def run():
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        return loss

    return run


def generate(new_tokens: int) -> Run:
    """Sample ``new_tokens`` tokens (temperature 1) after a one-token prompt, with the KV cache."""
    model = _model().eval()
    prompt = np.zeros(1, dtype=np.int64)
    return lambda: model.generate(prompt, new_tokens, seed=0)


def attention(batch: int, heads: int, length: int, head_dim: int) -> Run:
    """Causal ``scaled_dot_product_attention`` on tensors, forward and backward."""
    a = specs.attention_inputs(batch, heads, length, head_dim)
    q, k, v = (tt.from_numpy(a[name], requires_grad=True) for name in "qkv")

    def run():
        q.grad = k.grad = v.grad = None
        scaled_dot_product_attention(q, k, v, is_causal=True).backward(a["grad"])

    return run


def first_losses(steps: int = 2) -> list[float]:
    """The first training losses from the shared weights and batch: the two sides must agree."""
    step = train_step(specs.TRAIN_BATCH, specs.TRAIN_BLOCK)
    return [float(step().item()) for _ in range(steps)]
