"""Input checks shared by both implementations of the in-place optimizer steps.

A step writes into the parameter and its state buffers, so those must be the arrays themselves:
C-contiguous, writeable, of the parameter's shape and dtype. A copy would be updated instead of the
caller's array and the step would silently be lost, so a non-contiguous one is rejected, not copied.
The gradient is only read: a non-contiguous gradient is copied once.
"""

from __future__ import annotations

import numpy as np

from .contracts import FLOAT_DTYPES, float_input, same_shape


def updated_in_place(kernel: str, name: str, x, like: np.ndarray | None = None) -> np.ndarray:
    """Check that ``x`` can be updated in place (and matches ``like``'s shape and dtype); return it."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}; expected float32 or float64")
    if like is not None:
        if x.dtype != like.dtype:
            raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but param is {like.dtype}")
        same_shape(kernel, name, x, like.shape)
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{kernel}: {name} (shape {x.shape}, strides {x.strides}) is not C-contiguous, so it cannot be "
            "updated in place; pass the array itself, not a strided view"
        )
    if not x.flags.writeable:
        raise ValueError(f"{kernel}: {name} is read-only, so it cannot be updated in place")
    return x


def param_and_grad(kernel: str, param, grad) -> tuple[np.ndarray, np.ndarray]:
    """Check the parameter (updated in place) and its gradient (read only; made contiguous)."""
    param = updated_in_place(kernel, "param", param)
    grad = float_input(kernel, "grad", grad, dtype=param.dtype)
    same_shape(kernel, "grad", grad, param.shape)
    if np.may_share_memory(grad, param):
        raise ValueError(f"{kernel}: grad shares memory with param; the step would overwrite the gradient it reads")
    return param, grad


def optional_state(kernel: str, name: str, x, param: np.ndarray, needed: bool, why: str) -> np.ndarray | None:
    """Check a state buffer that must be given exactly when ``needed`` (``why`` says when that is)."""
    if x is None:
        if needed:
            raise ValueError(f"{kernel}: {name} is required when {why}")
        return None
    return updated_in_place(kernel, name, x, like=param)


def step_count(kernel: str, step) -> int:
    """Check a 1-based step count."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"{kernel}: step must be an integer >= 1 (the count after incrementing), got {step!r}")
    return int(step)


def sgd_options(kernel: str, momentum: float, dampening: float, nesterov: bool) -> None:
    """Nesterov momentum is defined only with a momentum and no dampening (as in torch.optim.SGD)."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"{kernel}: Nesterov momentum requires momentum > 0 and dampening == 0, got momentum={momentum}, dampening={dampening}"
        )


def sgd_inputs(kernel: str, param, grad, momentum_buffer, momentum: float, dampening: float, nesterov: bool) -> tuple:
    """Every check of ``sgd_step``; returns (param, grad, momentum_buffer or None)."""
    param, grad = param_and_grad(kernel, param, grad)
    buf = optional_state(kernel, "momentum_buffer", momentum_buffer, param, momentum != 0, "momentum != 0")
    sgd_options(kernel, momentum, dampening, nesterov)
    return param, grad, buf


def adam_inputs(kernel: str, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step) -> tuple:
    """Every check of ``adam_step``; returns (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq or None, step)."""
    param, grad = param_and_grad(kernel, param, grad)
    exp_avg = updated_in_place(kernel, "exp_avg", exp_avg, like=param)
    exp_avg_sq = updated_in_place(kernel, "exp_avg_sq", exp_avg_sq, like=param)
    max_exp_avg_sq = optional_state(kernel, "max_exp_avg_sq", max_exp_avg_sq, param, False, "")
    return param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_count(kernel, step)


def rmsprop_inputs(kernel: str, param, grad, square_avg, momentum: float, momentum_buffer, centered: bool, grad_avg) -> tuple:
    """Every check of ``rmsprop_step``; returns (param, grad, square_avg, momentum_buffer or None, grad_avg or None)."""
    param, grad = param_and_grad(kernel, param, grad)
    square_avg = updated_in_place(kernel, "square_avg", square_avg, like=param)
    buf = optional_state(kernel, "momentum_buffer", momentum_buffer, param, momentum > 0, "momentum > 0")
    grad_avg = optional_state(kernel, "grad_avg", grad_avg, param, centered, "centered=True")
    return param, grad, square_avg, buf, grad_avg
