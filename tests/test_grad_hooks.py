"""The engine's two hooks for data parallelism: a leaf's gradient is ready, and backward() is over."""

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core import autograd


def test_the_hook_sees_each_gradient_as_it_is_added_and_the_order_follows_backward():
    w1, w2 = tt.Parameter(np.ones(3, dtype=np.float32)), tt.Parameter(np.full(3, 2.0, dtype=np.float32))
    seen = []
    for name, w in (("w1", w1), ("w2", w2)):
        w.register_post_accumulate_grad_hook(lambda t, name=name: seen.append((name, t.grad.data.copy())))
    x = tt.tensor([1.0, 2.0, 3.0])
    ((x * w1).relu() * w2).sum().backward()
    assert [name for name, _ in seen] == ["w2", "w1"]  # the op nearest the loss runs its backward first
    np.testing.assert_array_equal(seen[0][1], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(seen[1][1], [2.0, 4.0, 6.0])


def test_a_leaf_used_twice_reports_twice_and_a_removed_hook_is_silent():
    w = tt.Parameter(np.array([3.0], dtype=np.float32))
    totals = []
    handle = w.register_post_accumulate_grad_hook(lambda t: totals.append(float(t.grad.data[0])))
    (w * w + w).sum().backward()  # d/dw = 2w + 1 = 7, arriving as 3 + 3 + 1 in some order
    assert len(totals) == 3 and totals[-1] == 7.0
    handle.remove()
    (w * 2).sum().backward()
    assert len(totals) == 3 and w.grad.data[0] == 9.0


def test_only_a_leaf_that_requires_grad_takes_the_hook():
    x = tt.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only a leaf tensor.*computed by Mul"):
        (x * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tt.randn(3).register_post_accumulate_grad_hook(print)


def test_queued_callbacks_run_once_after_the_outermost_backward():
    w = tt.Parameter(np.ones(4, dtype=np.float32))
    events = []

    def ready(t):
        if "grad" not in events:  # the first gradient of this backward asks to hear about its end
            autograd.queue_callback(lambda: events.append(("done", float(w.grad.data.sum()))))
        events.append("grad")

    w.register_post_accumulate_grad_hook(ready)
    block = lambda v: (v * w).tanh()  # noqa: E731 - the checkpointed block runs a backward of its own
    x = tt.tensor(np.ones(4), requires_grad=True)
    (tt.checkpoint(block, x).sum() + (w * 3.0).sum()).backward()
    assert events.count("grad") == 2 and len(events) == 3 and events[-1][0] == "done"
    assert np.isclose(events[-1][1], float(w.grad.data.sum()))  # the callback saw the finished gradient
    assert np.isclose(events[-1][1], 4 * (3 + (1 - np.tanh(1.0) ** 2)))


def test_queue_callback_outside_backward_and_a_failed_backward():
    with pytest.raises(RuntimeError, match="no backward\\(\\) is running"):
        autograd.queue_callback(print)

    class Broken(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, grad):
            raise ArithmeticError("broken backward")

    w = tt.Parameter(np.ones(2, dtype=np.float32))
    ran = []
    w.register_post_accumulate_grad_hook(lambda t: autograd.queue_callback(lambda: ran.append(1)))
    with pytest.raises(ArithmeticError):
        (Broken.apply(w * 2) + w).sum().backward()
    assert ran == []  # a failed backward runs none; the next one starts clean
    (w * 2).sum().backward()
    assert ran == [1]
