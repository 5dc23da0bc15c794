"""Learning-rate schedulers: PyTorch's schedules, the warm-up + cosine formula, state, binding later."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core.module import Parameter
from tinytorch.core.optimizers import SGD, Adam, CosineAnnealingLR, OneCycleLR, StepLR, WarmupCosineLR, cosine_lr

from .layer_checks import torch  # noqa: F401  (fixture)

TORCH_CASES = [
    ("StepLR", StepLR, SGD, dict(step_size=3, gamma=0.5), 20),
    ("CosineAnnealingLR", CosineAnnealingLR, SGD, dict(T_max=7, eta_min=0.001), 20),  # past T_max it climbs again
    ("OneCycleLR", OneCycleLR, SGD, dict(max_lr=1.0, total_steps=25), 25),
    ("OneCycleLR", OneCycleLR, Adam, dict(max_lr=0.5, epochs=3, steps_per_epoch=7, pct_start=0.25), 21),
    (
        "OneCycleLR",
        OneCycleLR,
        SGD,
        dict(max_lr=[0.4, 0.2], total_steps=30, three_phase=True, anneal_strategy="linear"),
        30,
    ),
    ("OneCycleLR", OneCycleLR, Adam, dict(max_lr=0.1, total_steps=10, cycle_momentum=False, div_factor=10.0), 10),
]


def _groups(params, lr):
    return [{"params": params[:1], "lr": lr}, {"params": params[1:], "lr": lr / 2}]


@pytest.mark.parametrize(
    "torch_name, cls, opt_cls, kwargs, steps", TORCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)]
)
def test_schedules_match_pytorch(torch, torch_name, cls, opt_cls, kwargs, steps):
    ours = opt_cls(_groups([Parameter(np.ones(2)), Parameter(np.ones(2))], 0.1), lr=0.1)
    theirs = getattr(torch.optim, opt_cls.__name__)(
        _groups([torch.ones(2, requires_grad=True) for _ in range(2)], 0.1), lr=0.1
    )
    ours_sched = cls(ours, **kwargs)
    theirs_sched = getattr(torch.optim.lr_scheduler, torch_name)(theirs, **kwargs)
    key = "betas" if opt_cls is Adam else "momentum"
    for step in range(steps):
        for mine, ref in zip(ours.param_groups, theirs.param_groups):
            assert math.isclose(mine["lr"], ref["lr"], rel_tol=1e-9, abs_tol=1e-15), f"step {step}"
            assert np.allclose(mine[key], ref[key], rtol=1e-12), f"step {step}: {key}"
        assert np.allclose(ours_sched.get_last_lr(), theirs_sched.get_last_lr(), rtol=1e-9)
        theirs.step()
        theirs_sched.step()
        ours_sched.step()


def test_one_cycle_refuses_to_step_past_its_end():
    sched = OneCycleLR(SGD([Parameter(np.ones(1))], lr=0.1), max_lr=1.0, total_steps=3)
    sched.step()
    sched.step()
    sched.step()  # step 3 == total_steps is allowed, as in PyTorch
    with pytest.raises(ValueError, match="stepped 4 times, but total_steps is 3"):
        sched.step()


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda o: OneCycleLR(o, max_lr=1.0), ValueError, "give total_steps, or both epochs and steps_per_epoch"),
        (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="exp"), ValueError, "'cos' or 'linear'"),
        (lambda o: OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=5), ValueError, "2 max_lr values for 1 param groups"),
        (lambda o: StepLR(o, step_size=0), ValueError, "step_size must be a positive integer"),
        (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be a positive integer"),
        (
            lambda o: WarmupCosineLR(o, warmup_steps=10, total_steps=10),
            ValueError,
            r"warmup_steps must be an integer in \[0, total_steps\)",
        ),
        (lambda o: StepLR(object(), step_size=1), TypeError, "expected an optimizer, got object"),
    ],
)
def test_bad_arguments_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(SGD([Parameter(np.ones(1))], lr=0.1))


@settings(max_examples=40)
@given(st.integers(1, 200), st.data())
def test_cosine_lr_warms_up_then_decays_to_the_floor(total, data):
    warmup = data.draw(st.integers(0, total - 1))
    base, floor = 0.1, 0.001
    rates = [cosine_lr(s, total, base, floor, warmup) for s in range(total + 3)]
    np.testing.assert_allclose(rates[:warmup], [base * (s + 1) / (warmup + 1) for s in range(warmup)])
    assert math.isclose(rates[warmup], base)
    assert all(a >= b - 1e-15 for a, b in zip(rates[warmup:], rates[warmup + 1 :])), "not decreasing after warm-up"
    assert all(floor - 1e-15 <= r <= base for r in rates[warmup:])
    assert rates[total:] == [pytest.approx(floor)] * 3
    if total - warmup >= 2 and (total - warmup) % 2 == 0:  # halfway through the cosine: the midpoint
        assert math.isclose(rates[warmup + (total - warmup) // 2], (base + floor) / 2)


def test_warmup_cosine_steps_through_cosine_lr_per_group():
    opt = SGD([{"params": [Parameter(np.ones(1))], "lr": 0.2}, {"params": [Parameter(np.ones(1))]}], lr=0.1)
    sched = WarmupCosineLR(opt, warmup_steps=3, total_steps=10, min_lr=0.01)
    assert sched.interval == "step"
    for step in range(12):
        assert [g["lr"] for g in opt.param_groups] == [cosine_lr(step, 10, b, 0.01, 3) for b in (0.2, 0.1)]
        sched.step()


def test_a_scheduler_made_on_an_unbound_optimizer_survives_binding():
    opt = Adam(lr=0.001)
    sched = OneCycleLR(opt, max_lr=0.01, total_steps=10)
    assert math.isclose(opt.param_groups[0]["lr"], 0.01 / 25)
    opt.bind([Parameter(np.ones(3))])
    assert opt.param_groups[0]["max_lr"] == 0.01 and opt.param_groups[0]["betas"][0] == 0.95
    sched.step()
    assert opt.param_groups[0]["lr"] > 0.01 / 25


def test_regrouping_after_the_scheduler_is_an_error():
    opt = SGD(lr=0.1)
    sched = StepLR(opt, step_size=1)
    opt.bind([{"params": [Parameter(np.ones(1))]}, {"params": [Parameter(np.ones(1))]}])
    with pytest.raises(RuntimeError, match="now has 2 param group"):
        sched.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, step_size=2, gamma=0.3),
        lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20, three_phase=True),
        lambda o: WarmupCosineLR(o, warmup_steps=2, total_steps=9),
    ],
)
def test_state_dict_resumes_the_schedule(make):
    straight_opt = SGD([Parameter(np.ones(1))], lr=0.1, momentum=0.9)
    straight = make(straight_opt)
    for _ in range(5):
        straight.step()
    state = straight.state_dict()
    resumed_opt = SGD([Parameter(np.ones(1))], lr=0.1, momentum=0.9)
    resumed_opt.load_state_dict(straight_opt.state_dict())
    resumed = make(resumed_opt)
    resumed.load_state_dict(state)
    for _ in range(4):
        straight.step()
        resumed.step()
        assert resumed_opt.param_groups[0]["lr"] == straight_opt.param_groups[0]["lr"]
        assert resumed_opt.param_groups[0]["momentum"] == straight_opt.param_groups[0]["momentum"]
    with pytest.raises(ValueError, match="a state saved from a different scheduler"):
        CosineAnnealingLR(SGD([Parameter(np.ones(1))], lr=0.1), T_max=3).load_state_dict(state)
