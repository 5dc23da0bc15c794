"""Benchmark cases for the attention and optimizer-step kernels (run by ``python -m benchmarks.kernels``).

- causal self-attention, forward and backward, at a small-GPT size (B16 H4 T128 D32, float32),
  against PyTorch's ``scaled_dot_product_attention`` with autograd;
- one Adam step over 10 M float32 parameters, against PyTorch's ``Adam(fused=True)``.
"""

from __future__ import annotations

import numpy as np

from .harness import Case, Target, log, optional_torch

ATTENTION_SHAPE = (16, 4, 128, 32)  # (batch, heads, tokens, head size)
ADAM_PARAMETERS = 10_000_000
ADAM_HYPER = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


def _implementations(*names):
    from .kernels import kernel_implementations  # imported late: benchmarks.kernels imports this module

    return kernel_implementations(*names)


def attention_case(shape: tuple[int, int, int, int] = ATTENTION_SHAPE) -> Case:
    """Causal attention: forward (out, probs) then the backward for dq, dk, dv."""

    def build():
        rng = np.random.default_rng(4)
        q, k, v, grad = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))

        def ours(forward, backward):
            def run():
                _, probs, keep = forward(q, k, v, causal=True)
                backward(grad, q, k, v, probs, keep, None, 0.0)

            return run

        runs = {label: ours(*fns) for label, fns in _implementations("attention_forward", "attention_backward").items()}
        torch = optional_torch()
        if torch is None:
            return runs
        qt, kt, vt = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        gt = torch.from_numpy(grad)

        def torch_run():
            qt.grad = kt.grad = vt.grad = None
            torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True).backward(gt)

        return {**runs, "torch": torch_run}

    batch, heads, tokens, head = shape
    return Case(f"causal attention fwd+bwd B{batch} H{heads} T{tokens} D{head}", build, (Target("torch", 1.0),))


def adam_case(size: int = ADAM_PARAMETERS) -> Case:
    """One Adam step (in place) over ``size`` float32 parameters; each implementation owns its arrays."""

    def build():
        rng = np.random.default_rng(5)
        start = rng.standard_normal(size, dtype=np.float32)
        grad = rng.standard_normal(size, dtype=np.float32)

        def ours(step):
            param, exp_avg, exp_avg_sq = start.copy(), np.zeros_like(start), np.zeros_like(start)
            count = [0]

            def run():
                count[0] += 1
                step(param, grad, exp_avg, exp_avg_sq, count[0], **ADAM_HYPER)

            return run

        runs = {label: ours(*fns) for label, fns in _implementations("adam_step").items()}
        torch = optional_torch()
        if torch is None:
            return runs
        param = torch.nn.Parameter(torch.from_numpy(start.copy()))
        param.grad = torch.from_numpy(grad)
        torch_hyper = dict(lr=ADAM_HYPER["lr"], betas=(ADAM_HYPER["beta1"], ADAM_HYPER["beta2"]), eps=ADAM_HYPER["eps"])
        try:
            optimizer = torch.optim.Adam([param], fused=True, **torch_hyper)
            optimizer.step()
        except RuntimeError as error:  # fused Adam needs a build that has it for this device
            log(f"torch Adam(fused=True) is not available here ({error}); timing Adam(foreach=True) instead")
            optimizer = torch.optim.Adam([param], foreach=True, **torch_hyper)
        return {**runs, "torch": optimizer.step}

    return Case(
        f"adam step, {size / 1e6:g}M float32 params (torch: fused Adam)",
        build,
        (Target("torch", 1.0), Target("reference", 3.0)),
    )


CASES = [attention_case(), adam_case()]
