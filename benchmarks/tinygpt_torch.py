"""PyTorch's side of the TinyGPT benchmarks (``benchmarks/tinygpt.py``): the same model, weights and inputs.

Imported only by a benchmark worker process, never beside TinyTorch. The model is
``benchmarks/torch_gpt.py`` (``F.scaled_dot_product_attention``, a preallocated KV cache for
generation); the optimizer ``torch.optim.AdamW`` with its default implementation.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import gpt_specs as specs
from .torch_gpt import TorchGPT
from .torch_side import describe, pin_threads  # noqa: F401  (the worker asks the target's module for them)

Run = Callable[[], object]


def _model() -> TorchGPT:
    model = TorchGPT(**specs.GPT)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in specs.gpt_state().items()})
    return model


def train_step(batch: int, block: int) -> Run:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), **specs.ADAMW)
    x, y = (torch.from_numpy(a) for a in specs.token_batch(batch, block))
    vocab = specs.GPT["vocab_size"]

    def run():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss

    return run


def generate(new_tokens: int) -> Run:
    model = _model().eval()
    prompt = torch.zeros((1, 1), dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    return lambda: model.generate(prompt, new_tokens, generator=generator)


def attention(batch: int, heads: int, length: int, head_dim: int) -> Run:
    a = specs.attention_inputs(batch, heads, length, head_dim)
    q, k, v = (torch.from_numpy(a[name]).requires_grad_() for name in "qkv")
    grad = torch.from_numpy(a["grad"])

    def run():
        q.grad = k.grad = v.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    return run


def first_losses(steps: int = 2) -> list[float]:
    step = train_step(specs.TRAIN_BATCH, specs.TRAIN_BLOCK)
    return [float(step().item()) for _ in range(steps)]
