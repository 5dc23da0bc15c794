"""Numerical gradient checking: does an op's backward agree with finite differences of its forward?

For a function ``y = f(x1, x2, ...)`` and a random cotangent ``v`` (the same shape as ``y``), the
vector-Jacobian product that backward computes is ``dL/dxi`` for ``L = sum(v * y)``. Central
differences estimate the same number for each element of each input:

    dL/dx[j] ≈ (L(x[j] + eps) - L(x[j] - eps)) / (2 eps)

A random ``v`` (never all ones) makes sure every output element's gradient is weighted
differently, so a backward that mixes up or sums the wrong elements cannot pass by accident.
The check runs in float64: in float32 the rounding error of the difference swamps the signal.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .core.autograd import no_grad
from .core.tensor import Tensor


class GradcheckError(AssertionError):
    """Backward and finite differences disagree; the message names the op, shapes and worst element."""


def _loss(fn: Callable[..., Tensor], inputs: tuple, cotangent: np.ndarray) -> float:
    with no_grad():
        return float(np.sum(_output(fn(*inputs), "gradcheck").data * cotangent))


def _output(out, name: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck({name}): the function must return a Tensor, got {type(out).__name__}")
    return out


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Tensor,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    seed: int = 0,
    name: str | None = None,
) -> bool:
    """Compare ``fn``'s backward with central differences for every input that requires grad.

    Parameters
    ----------
    fn : callable
        Takes ``inputs`` and returns one Tensor. It may also use other tensors that require grad
        (a layer's parameters): pass them in ``inputs`` too, and they are checked as well.
    *inputs : Tensor
        Tensors that require grad must be float64 (they may be non-contiguous views); the others
        are passed through unchanged.
    eps, atol, rtol : float
        Step of the central difference, and the tolerance ``|analytic - numeric| <= atol + rtol * |numeric|``.
    seed : int
        Seed of the random cotangent.
    name : str, optional
        Name of what is checked, for the error message (defaults to ``fn.__name__``).

    Returns
    -------
    bool
        True; a mismatch raises :class:`GradcheckError`.
    """
    name = name or getattr(fn, "__name__", "function")
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError(f"gradcheck({name}): no input requires grad, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck({name}): input {i} is {inputs[i].dtype}; gradcheck needs float64 inputs")
        inputs[i].grad = None

    out = _output(fn(*inputs), name)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    if not out.requires_grad:
        raise GradcheckError(f"gradcheck({name}): the output does not require grad, so no gradient reaches the inputs")
    out.backward(cotangent)

    for i in checked:
        x = inputs[i]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.data
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            original = x.data[idx]
            x.data[idx] = original + eps
            plus = _loss(fn, inputs, cotangent)
            x.data[idx] = original - eps
            minus = _loss(fn, inputs, cotangent)
            x.data[idx] = original
            numeric[idx] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(np.argmax(error), error.shape)
            raise GradcheckError(
                f"gradcheck({name}): gradient of input {i} (shape {x.shape}) is wrong; output shape {out.shape}. "
                f"Worst element {tuple(int(k) for k in worst)}: backward gives {analytic[worst]:.8g}, "
                f"finite differences give {numeric[worst]:.8g} (tolerance atol={atol}, rtol={rtol})"
            )
    return True
