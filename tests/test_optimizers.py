"""Optimizers: PyTorch's steps to float tolerance, param groups, binding, state_dict, zero_grad, clipping."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.checkpoint import load_state, save_state
from tinytorch.core.module import Parameter
from tinytorch.core.optimizers import SGD, Adam, AdamW, RMSprop, adam_update, clip_grad_norm_

from .layer_checks import torch  # noqa: F401  (fixture)
from .strategies import shapes

# (our class, torch's class name, settings): every option of every optimizer at least once
CONFIGS = [
    (SGD, "SGD", dict(lr=0.1)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adam, "Adam", dict(lr=0.01)),
    (Adam, "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (Adam, "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    (AdamW, "AdamW", dict(lr=0.01)),
    (AdamW, "AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    (RMSprop, "RMSprop", dict(lr=0.01)),
    (RMSprop, "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.05)),
    (RMSprop, "RMSprop", dict(lr=0.005, centered=True, momentum=0.5)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, _, kw in CONFIGS]


def _params(rng, shapes_, dtype):
    values = [rng.standard_normal(s).astype(dtype) for s in shapes_]
    return values, [Parameter(v, dtype=dtype) for v in values]


def _run_pair(torch, cls, torch_name, kwargs, dtype, steps=6, groups=False, seed=0):
    """Take ``steps`` steps with ours and PyTorch's on the same gradients; return both parameter lists."""
    rng = np.random.default_rng(seed)
    sizes = [(3, 4), (4,), (1,)]
    values, ours = _params(rng, sizes, dtype)
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    if groups:  # the second group overrides lr; the rest comes from the defaults
        ours_arg = [{"params": ours[:2]}, {"params": ours[2:], "lr": kwargs["lr"] * 3}]
        theirs_arg = [{"params": theirs[:2]}, {"params": theirs[2:], "lr": kwargs["lr"] * 3}]
    else:
        ours_arg, theirs_arg = ours, theirs
    opt, ref = cls(ours_arg, **kwargs), getattr(torch.optim, torch_name)(theirs_arg, **kwargs)
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad, t.grad = tt.tensor(g, dtype=dtype), torch.tensor(g)
        opt.step()
        ref.step()
    return [p.data for p in ours], [t.detach().numpy() for t in theirs]


@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_match_pytorch(torch, cls, torch_name, kwargs, dtype):
    ours, theirs = _run_pair(torch, cls, torch_name, kwargs, dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for a, b in zip(ours, theirs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS[1::3], ids=IDS[1::3])
def test_param_groups_match_pytorch(torch, cls, torch_name, kwargs):
    ours, theirs = _run_pair(torch, cls, torch_name, kwargs, np.float64, groups=True)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_group_takes_missing_settings_from_the_defaults():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.9]
    a.grad, b.grad = tt.ones(2), tt.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.5)


def test_parameters_without_gradient_are_skipped():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = Adam([a, b], lr=0.1)
    a.grad = tt.ones(3)
    opt.step()
    assert not np.allclose(a.data, 1.0)
    np.testing.assert_array_equal(b.data, 1.0)
    assert b not in opt.state and opt.state[a]["step"] == 1


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop])
def test_unbound_optimizer_is_a_clear_error_until_bound(cls):
    opt = cls(lr=0.01)
    assert not opt.is_bound
    with pytest.raises(RuntimeError, match=r"no parameters.*bind\(model.parameters\(\)\)"):
        opt.step()
    w = Parameter(np.ones(2))
    opt.bind([w])
    w.grad = tt.ones(2)
    opt.step()
    assert opt.is_bound and not np.allclose(w.data, 1.0)
    with pytest.raises(RuntimeError, match="already has parameters"):
        opt.bind([Parameter(np.ones(1))])


def test_settings_changed_before_binding_carry_over():
    opt = SGD(lr=0.1, momentum=0.5)
    opt.param_groups[0]["lr"] = 0.3  # what a scheduler made before binding does
    opt.bind([{"params": [Parameter(np.ones(1))]}, {"params": [Parameter(np.ones(1))], "momentum": 0.9}])
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.3, 0.5), (0.3, 0.9)]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD([], lr=0.1), "empty parameter list"),
        (lambda p: SGD([p, p], lr=0.1), "more than once"),
        (lambda p: SGD([{"params": [p]}, {"params": [p]}], lr=0.1), "more than once"),
        (lambda p: SGD([{"params": [p], "betas": (0.9, 0.9)}]), r"unknown setting\(s\) \['betas'\]"),
        (lambda p: SGD([p], lr=-1.0), r"SGD: lr must be a number in \[0.0, inf\], got -1.0"),
        (lambda p: SGD([p], lr=0.1, nesterov=True), "Nesterov momentum requires momentum > 0"),
        (lambda p: Adam([p], betas=(0.9, 1.0)), r"Adam: betas\[1\] must be a number in \[0.0, 1.0\)"),
        (lambda p: Adam([p], betas=0.9), "betas must be a pair"),
        (lambda p: AdamW([p], eps=-1e-8), "AdamW: eps"),
        (lambda p: RMSprop([p], alpha=1.5), "RMSprop: alpha"),
        (lambda p: SGD([{"params": [p], "lr": "fast"}]), "lr must be a number"),
    ],
)
def test_bad_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(Parameter(np.ones(2)))


def test_a_failed_bind_leaves_the_optimizer_unbound():
    p = Parameter(np.ones(2))
    opt = SGD(lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        opt.bind([{"params": [p]}, {"params": [p]}])
    assert not opt.is_bound and opt.param_groups[0]["lr"] == 0.1
    opt.bind([p])
    assert opt.parameters() == [p]


def test_only_float_leaf_tensors_can_be_optimized():
    with pytest.raises(TypeError, match="parameters must be Tensors, got ndarray"):
        SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="float leaf tensors"):
        SGD([tt.tensor([1, 2])], lr=0.1)


def test_zero_grad_clears_or_zeroes():
    w = Parameter(np.ones(3))
    opt = SGD([w], lr=0.1)
    w.grad = tt.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.data, 0.0)
    opt.zero_grad()
    assert w.grad is None


def _trained(cls, kwargs, steps, seed=1):
    """A fresh parameter pair and optimizer after ``steps`` steps on fixed pseudo-random gradients."""
    params = [Parameter(np.linspace(-1, 1, 6).reshape(2, 3)), Parameter(np.arange(3.0))]
    opt = cls(params, **kwargs)
    _steps(params, opt, steps, seed)
    return params, opt


def _steps(params, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = tt.tensor(rng.standard_normal(p.shape))
        opt.step()


@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS[1::2], ids=IDS[1::2])
def test_state_dict_round_trip_continues_exactly(cls, torch_name, kwargs, tmp_path):
    straight, opt = _trained(cls, kwargs, 3)
    _steps(straight, opt, 2, seed=9)

    resumed, first = _trained(cls, kwargs, 3)
    save_state(tmp_path / "opt.npz", first.state_dict())  # through the JSON + npz file: keys become strings
    copies = [Parameter(p.data) for p in resumed]
    second = cls(copies, **kwargs)
    second.load_state_dict(load_state(tmp_path / "opt.npz"))
    _steps(copies, second, 2, seed=9)
    for a, b in zip(straight, copies):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_holds_copies_and_plain_settings():
    params, opt = _trained(Adam, dict(lr=0.01, betas=(0.8, 0.9)), 2)
    state = opt.state_dict()
    assert state["param_groups"] == [
        {"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "params": [0, 1]}
    ]
    assert state["state"][0]["step"] == 2 and state["state"][1]["exp_avg"].shape == (3,)
    before = state["state"][0]["exp_avg"].copy()
    _steps(params, opt, 1, seed=3)
    np.testing.assert_array_equal(state["state"][0]["exp_avg"], before)


def test_load_state_dict_rejects_what_does_not_fit():
    _, opt = _trained(Adam, dict(lr=0.01), 1)
    state = opt.state_dict()
    other = Adam([Parameter(np.ones(3))], lr=0.01)
    with pytest.raises(ValueError, match="param group 0 held 2 parameter"):
        other.load_state_dict(state)
    same_count = Adam([Parameter(np.ones((3, 2))), Parameter(np.ones(3))], lr=0.01)
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0 has shape \(2, 3\); the parameter has \(3, 2\)"):
        same_count.load_state_dict(state)
    assert same_count.state == {}
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        same_count.load_state_dict({"weights": 1})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_lives_in_arrays_of_the_parameter_dtype(dtype):
    w = Parameter(np.ones((4, 5)), dtype=dtype)
    opt = Adam([w], amsgrad=True)
    w.grad = tt.ones((4, 5), dtype=dtype)
    opt.step()
    arrays = [v for v in opt.state[w].values() if isinstance(v, np.ndarray)]
    assert len(arrays) == 3 and all(a.dtype == dtype and a.shape == (4, 5) for a in arrays)


# -- gradient clipping --------------------------------------------------------------------------
@settings(max_examples=20)
@given(
    st.lists(shapes(min_dims=1, max_dims=3), min_size=1, max_size=3),
    st.floats(0.05, 5.0),
    st.sampled_from([2.0, 1.0, math.inf]),
    st.integers(0, 2**16),
)
def test_clip_grad_norm_matches_pytorch(shape_list, max_norm, norm_type, seed):
    torch = pytest.importorskip(
        "torch", reason="PyTorch is only an oracle for this comparison; it is not installed here"
    )
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(s) for s in shape_list]
    ours = [Parameter(np.zeros(s), dtype=np.float64) for s in shape_list]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shape_list]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = tt.tensor(g, dtype=np.float64), torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, float) and math.isclose(total, float(expected), rel_tol=1e-10)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing_ones():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    a.grad = tt.tensor([0.3, 0.4])
    assert math.isclose(clip_grad_norm_([a, b], 1.0), 0.5, rel_tol=1e-6)
    np.testing.assert_allclose(a.grad.data, [0.3, 0.4])
    assert b.grad is None
    assert clip_grad_norm_(a, 0.25) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a.grad.data), 0.25, rtol=1e-5)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([a], -1.0)


# -- the lesson's functional Adam ---------------------------------------------------------------
def test_adam_update_is_one_adam_step_and_keeps_its_inputs():
    rng = np.random.default_rng(0)
    param, grad = rng.standard_normal(5), rng.standard_normal(5)
    m, v = rng.standard_normal(5) * 0.1, rng.uniform(0, 0.1, 5)
    before = [a.copy() for a in (param, grad, m, v)]
    new_p, new_m, new_v = adam_update(param, grad, m, v, step=3, lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6)
    for a, b in zip((param, grad, m, v), before):
        np.testing.assert_array_equal(a, b)
    exp_m = 0.8 * m + 0.2 * grad
    exp_v = 0.9 * v + 0.1 * grad**2
    np.testing.assert_allclose(new_m, exp_m)
    np.testing.assert_allclose(new_v, exp_v)
    np.testing.assert_allclose(new_p, param - 0.01 * (exp_m / (1 - 0.8**3)) / (np.sqrt(exp_v / (1 - 0.9**3)) + 1e-6))
