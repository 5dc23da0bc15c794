"""Optimizer-step kernels: several steps against torch.optim, and compiled against reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch._kernels import optim as compiled
from tinytorch._kernels import reference
from tinytorch.core import kernels

from .kernel_checks import DTYPES, arrays, torch_oracle

IMPLEMENTATIONS = {"reference": reference, "compiled": compiled}
STEPS = 4

# Each case: (kernel, its hyperparameters, the torch.optim class and arguments that mean the same).
CASES = {
    "sgd": ("sgd", dict(lr=0.1), "SGD", dict(lr=0.1)),
    "sgd-momentum": ("sgd", dict(lr=0.1, momentum=0.9), "SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-dampening-decay": (
        "sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
        "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
    ),
    "sgd-nesterov": (
        "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    "adam": ("adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8), "Adam", dict(lr=0.01)),
    "adam-l2-amsgrad": (
        "adam", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, amsgrad=True),
        "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
    ),
    "adamw": (
        "adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled_weight_decay=True),
        "AdamW", dict(lr=0.01, weight_decay=0.1),
    ),
    "rmsprop": ("rmsprop", dict(lr=0.01), "RMSprop", dict(lr=0.01)),
    "rmsprop-momentum-centered-decay": (
        "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True),
        "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True),
    ),
}


def run_steps(impl, kernel: str, param: np.ndarray, grads: list[np.ndarray], hyper: dict) -> dict[str, np.ndarray]:
    """Apply one step per gradient to ``param`` in place, the way an optimizer keeps its state; returns the state."""
    hyper = dict(hyper)
    zeros = lambda: np.zeros_like(param)  # noqa: E731 - state starts at zeros, as in torch.optim
    if kernel == "sgd":
        state = {"momentum_buffer": zeros() if hyper.get("momentum", 0) else None}
        for t, grad in enumerate(grads):
            impl.sgd_step(param, grad, state["momentum_buffer"], first_step=t == 0, **hyper)
    elif kernel == "adam":
        state = {"exp_avg": zeros(), "exp_avg_sq": zeros(), "max_exp_avg_sq": zeros() if hyper.pop("amsgrad", False) else None}
        for t, grad in enumerate(grads):
            impl.adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"], t + 1,
                           max_exp_avg_sq=state["max_exp_avg_sq"], **hyper)
    else:
        state = {
            "square_avg": zeros(),
            "momentum_buffer": zeros() if hyper.get("momentum", 0) else None,
            "grad_avg": zeros() if hyper.get("centered") else None,
        }
        for grad in grads:
            impl.rmsprop_step(param, grad, state["square_avg"], momentum_buffer=state["momentum_buffer"],
                              grad_avg=state["grad_avg"], **hyper)
    return {name: value for name, value in state.items() if value is not None}


def torch_steps(torch, optimizer: str, param: np.ndarray, grads: list[np.ndarray], hyper: dict):
    """The same steps with torch.optim; returns (parameter, state) as NumPy arrays."""
    p = torch.nn.Parameter(torch.tensor(param))
    opt = getattr(torch.optim, optimizer)([p], **hyper)
    for grad in grads:
        p.grad = torch.tensor(grad)
        opt.step()
    state = {k: v.numpy() for k, v in opt.state[p].items() if k != "step"}
    return p.detach().numpy(), state


# The kernels are built with -march=native, so the compiler may fuse a multiply and an add (FMA) and
# round once where NumPy and PyTorch round twice. Centered RMSprop's sqrt(square_avg - grad_avg²)
# amplifies such a difference, so float32 allows 1e-5 relative or 1e-6 absolute (the values are ~1).
TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_steps_match_torch_optim(impl, dtype, case):
    torch = torch_oracle()
    kernel, hyper, optimizer, torch_hyper = CASES[case]
    rng = np.random.default_rng(0)
    param = rng.standard_normal((7, 5)).astype(dtype)
    grads = [rng.standard_normal(param.shape).astype(dtype) for _ in range(STEPS)]
    expected_param, expected_state = torch_steps(torch, optimizer, param, grads, torch_hyper)
    state = run_steps(impl, kernel, param, grads, hyper)
    np.testing.assert_allclose(param, expected_param, **TOLERANCE[np.dtype(dtype)], err_msg="param")
    assert set(state) == set(expected_state)
    for name, value in state.items():
        np.testing.assert_allclose(value, expected_state[name], **TOLERANCE[np.dtype(dtype)], err_msg=name)


@settings(max_examples=40)
@given(
    case=st.sampled_from(sorted(CASES)),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 9), max_size=3).map(tuple),
    data=st.data(),
)
def test_compiled_steps_match_reference(case, dtype, shape, data):
    kernel, hyper, _, _ = CASES[case]
    start = data.draw(arrays(shape, dtype)).copy()  # params are C-contiguous; the grads may not be
    grads = [data.draw(arrays(shape, dtype)) for _ in range(STEPS)]
    grads_before = [g.copy() for g in grads]
    results = {}
    for name, impl in IMPLEMENTATIONS.items():
        param = start.copy()
        results[name] = (param, run_steps(impl, kernel, param, grads, hyper))
    for g, before in zip(grads, grads_before):
        np.testing.assert_array_equal(g, before, err_msg="a step modified the gradient")
    (param_c, state_c), (param_r, state_r) = results["compiled"], results["reference"]
    np.testing.assert_allclose(param_c, param_r, **TOLERANCE[np.dtype(dtype)], err_msg="param")
    for name in state_r:
        np.testing.assert_allclose(state_c[name], state_r[name], **TOLERANCE[np.dtype(dtype)], err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_compiled_steps_match_reference_on_a_tensor_split_across_threads(case):
    kernel, hyper, _, _ = CASES[case]
    rng = np.random.default_rng(1)
    start = rng.standard_normal(100_003).astype(np.float32)  # several blocks, the last one partial
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(2)]
    params = {name: start.copy() for name in IMPLEMENTATIONS}
    for name, impl in IMPLEMENTATIONS.items():
        run_steps(impl, kernel, params[name], grads, hyper)
    np.testing.assert_allclose(params["compiled"], params["reference"], **TOLERANCE[np.dtype(np.float32)])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
@pytest.mark.parametrize("case", ["sgd-nesterov", "adam-l2-amsgrad", "rmsprop-momentum-centered-decay"])
def test_a_read_only_gradient_is_accepted(impl, case):
    kernel, hyper, _, _ = CASES[case]
    param = np.linspace(-1, 1, 12).reshape(3, 4)
    grad = np.cos(param)
    grad.flags.writeable = False
    run_steps(impl, kernel, param, [grad, grad], hyper)
    assert not np.allclose(param, np.linspace(-1, 1, 12).reshape(3, 4))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_optimizer_step_errors_name_the_problem(impl):
    param, grad = np.zeros((4, 3)), np.ones((4, 3))
    with pytest.raises(ValueError, match=r"sgd_step: param \(shape \(3, 4\), strides .*\) is not C-contiguous"):
        impl.sgd_step(np.zeros((4, 3)).T, grad.T, None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: param is read-only"):
        frozen = np.zeros((4, 3))
        frozen.flags.writeable = False
        impl.sgd_step(frozen, grad, None, 0.1)
    with pytest.raises(TypeError, match="sgd_step: grad has dtype float32 but the other inputs are float64"):
        impl.sgd_step(param, grad.astype(np.float32), None, 0.1)
    with pytest.raises(ValueError, match=r"sgd_step: grad has shape \(3, 4\); expected \(4, 3\)"):
        impl.sgd_step(param, np.ones((3, 4)), None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: momentum_buffer is required when momentum != 0"):
        impl.sgd_step(param, grad, None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="Nesterov momentum requires momentum > 0 and dampening == 0"):
        impl.sgd_step(param, grad, np.zeros_like(param), 0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"adam_step: step must be an integer >= 1"):
        impl.adam_step(param, grad, np.zeros_like(param), np.zeros_like(param), 0, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match=r"adam_step: exp_avg_sq has shape \(4,\); expected \(4, 3\)"):
        impl.adam_step(param, grad, np.zeros_like(param), np.zeros(4), 1, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(TypeError, match="adam_step: exp_avg has dtype float32 but param is float64"):
        impl.adam_step(param, grad, np.zeros((4, 3), np.float32), np.zeros_like(param), 1, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match="rmsprop_step: grad_avg is required when centered=True"):
        impl.rmsprop_step(param, grad, np.zeros_like(param), 0.1, centered=True)
    with pytest.raises(ValueError, match="grad shares memory with param"):
        impl.sgd_step(param, param, None, 0.1)
    with pytest.raises(TypeError, match="rmsprop_step: param has dtype int64"):
        impl.rmsprop_step(np.zeros(3, np.int64), np.ones(3), np.zeros(3), 0.1)


def test_registry_runs_the_compiled_optimizer_kernels():
    described = kernels.describe()
    for name in ("sgd_step", "adam_step", "rmsprop_step"):
        assert described[name] == "tinytorch._kernels.optim"
