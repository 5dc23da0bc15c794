"""Kernels built on a student's exercise, for exercises whose work the framework does in a kernel.

Two exercises compute what a kernel computes: ``im2col`` (lesson 06) is the heart of a
convolution, and ``adam_update`` (lesson 10) is one Adam step. The framework's ``Conv2D`` and
``Adam`` call the kernels (``conv2d_forward`` / ``conv2d_backward``, ``adam_step``), so for the
student's functions to run inside them, a workspace registers kernels built on those functions
with the kernel registry (:func:`tinytorch.core.kernels.register`):

- the convolution's forward pass is ``im2col(x) @ W.reshape(F, -1).T``; its weight gradient is
  ``gradᵀ @ im2col(x)``; and its input gradient is itself a convolution, of the zero-dilated,
  padded output gradient with the flipped filters, so it runs on ``im2col`` too. Every part of
  ``Conv2D`` then runs on the student's function.
- ``adam_step`` updates the arrays in place with what ``adam_update`` returns; L2 weight decay is
  added to the gradient first, decoupled decay (AdamW) scales the weights first, as the kernel's
  contract says. AMSGrad is not part of the exercise and keeps the framework's kernel.

Each kernel calls the exercise through the framework's name (``tinytorch.core.spatial.im2col``),
so the exercise registry counts the student's calls.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import numpy as np

from tinytorch.core import kernels


def _im2col() -> Callable:
    from tinytorch.core.spatial import im2col

    return im2col


def _conv_on_im2col(x: np.ndarray, weight: np.ndarray, stride, padding) -> np.ndarray:
    """(N, F, Ho, Wo) = the convolution of ``x`` with ``weight``, through im2col and one matrix product."""
    n, (f, _, kh, kw) = x.shape[0], weight.shape
    cols = np.asarray(_im2col()(x, (kh, kw), stride, padding), dtype=x.dtype)  # (N * Ho * Wo, C * KH * KW)
    ho = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    if cols.shape != (n * ho * wo, weight[0].size):
        raise ValueError(
            f"im2col returned an array of shape {cols.shape} for input {x.shape}, kernel {(kh, kw)}, stride {stride}, "
            f"padding {padding}; expected {(n * ho * wo, weight[0].size)}"
        )
    out = cols @ weight.reshape(f, -1).T  # (N * Ho * Wo, F)
    return np.ascontiguousarray(out.reshape(n, ho, wo, f).transpose(0, 3, 1, 2))


def conv2d_forward(x, weight, bias, stride, padding):
    """``kernels.conv2d_forward`` on the registered im2col (contract: ``tinytorch/_kernels/reference.py``)."""
    out = _conv_on_im2col(x, weight, tuple(stride), tuple(padding))
    if bias is not None:
        out += np.asarray(bias, dtype=out.dtype)[:, None, None]
    return out


def conv2d_backward(x, weight, grad_out, stride, padding, need_input_grad=True, need_bias_grad=True):
    """``kernels.conv2d_backward`` on the registered im2col: weight and input gradients both through it."""
    stride, padding = tuple(stride), tuple(padding)
    f, c, kh, kw = weight.shape
    n, _, ho, wo = grad_out.shape
    cols = np.asarray(_im2col()(x, (kh, kw), stride, padding), dtype=x.dtype)
    rows = grad_out.transpose(0, 2, 3, 1).reshape(n * ho * wo, f)
    grad_weight = np.ascontiguousarray((rows.T @ cols).reshape(weight.shape))
    grad_bias = grad_out.sum(axis=(0, 2, 3)) if need_bias_grad else None
    grad_x = None
    if need_input_grad:
        # dL/dx is the "full" convolution of the output gradient, spread back to the input grid
        # (zeros between rows and columns for the stride), with each filter flipped and the roles
        # of F and C swapped. Rows the forward windows never reached get zeros at the far edge.
        (sh, sw), (ph, pw) = stride, padding
        h, w = x.shape[2:]
        spread = np.zeros((n, f, (ho - 1) * sh + 1, (wo - 1) * sw + 1), dtype=grad_out.dtype)
        spread[:, :, ::sh, ::sw] = grad_out
        top, left = kh - 1 - ph, kw - 1 - pw
        bottom = top + (h + 2 * ph - kh) - (ho - 1) * sh
        right = left + (w + 2 * pw - kw) - (wo - 1) * sw
        framed = np.pad(spread, ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))))
        framed = framed[:, :, max(-top, 0) : framed.shape[2] - max(-bottom, 0), max(-left, 0) : framed.shape[3] - max(-right, 0)]
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, F, KH, KW)
        grad_x = _conv_on_im2col(np.ascontiguousarray(framed), flipped, (1, 1), (0, 0))
    return grad_x, grad_weight, grad_bias


def adam_step_on(fallback: Callable) -> Callable:
    """``kernels.adam_step`` (in place) on the registered ``adam_update`` (which returns new arrays);
    ``fallback``, the kernel that ran before, does AMSGrad, which is not part of the exercise."""

    def adam_step(
        param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
        weight_decay=0.0, decoupled_weight_decay=False, max_exp_avg_sq=None,
    ):
        if max_exp_avg_sq is not None:
            return fallback(
                param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps,
                weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay, max_exp_avg_sq=max_exp_avg_sq,
            )
        from tinytorch.core.optimizers import adam_update

        if weight_decay and decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * param
        new_param, new_avg, new_avg_sq = adam_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
        for target, value, name in ((param, new_param, "param"), (exp_avg, new_avg, "exp_avg"), (exp_avg_sq, new_avg_sq, "exp_avg_sq")):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"adam_update returned {name} of shape {value.shape}; expected {target.shape}")
            target[...] = value

    return adam_step


def _kernels_on(key: str) -> dict[str, Callable] | None:
    if key == "tinytorch.core.spatial.im2col":
        return {"conv2d_forward": conv2d_forward, "conv2d_backward": conv2d_backward}
    if key == "tinytorch.core.optimizers.adam_update":
        return {"adam_step": adam_step_on(kernels.implementation("adam_step"))}
    return None


def kernel_module(key: str, origin: str) -> ModuleType | None:
    """A module holding the kernels built on exercise ``key``, ready for ``kernels.register``; None
    when the framework computes that exercise in no kernel."""
    functions = _kernels_on(key)
    if functions is None:
        return None
    name = key.rsplit(".", 1)[1]
    module = ModuleType(f"kernels on {name}")
    module.__file__ = f"{name} from {origin}"  # what ``kernels.describe()`` shows as the kernels' origin
    for kernel, function in functions.items():
        setattr(module, kernel, function)
    return module
