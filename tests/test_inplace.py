"""In-place writes and autograd: versions, the checks backward makes, and in-place ops recorded in the graph.

Every case is run the same way in PyTorch where it is installed: it must raise where PyTorch
raises, and give PyTorch's gradients where PyTorch gives them.
"""

import re
import weakref

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.optimizers import SGD

TORCH_REASON = "PyTorch is only an oracle for these comparisons; it is not installed here"


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason=TORCH_REASON)


def iadd(t, u):
    t += u
    return t


def isub(t, u):
    t -= u
    return t


def imul(t, u):
    t *= u
    return t


def idiv(t, u):
    t /= u
    return t


def ipow(t, u):
    t **= 2
    return t


def setitem_value(t, u):
    t[1:] = u[:2]
    return t


def setitem_number(t, u):
    t[0] = 2.0
    return t


# name -> (what writes into t in place, using u where the op takes another tensor); the same code
# runs on tinytorch and torch tensors. The writer named in the error message comes second.
INPLACE = {
    "setitem (tensor)": (setitem_value, "setitem"),
    "setitem (number)": (setitem_number, "setitem"),
    "+=": (iadd, "+="),
    "-=": (isub, "-="),
    "*=": (imul, "*="),
    "/=": (idiv, "/="),
    "**=": (ipow, "**="),
    "add_": (lambda t, u: t.add_(u), "add_"),
    "add_ alpha": (lambda t, u: t.add_(u, alpha=0.5), "add_"),
    "sub_": (lambda t, u: t.sub_(u), "sub_"),
    "mul_": (lambda t, u: t.mul_(u), "mul_"),
    "div_": (lambda t, u: t.div_(u), "div_"),
    "pow_": (lambda t, u: t.pow_(3), "pow_"),
    "neg_": (lambda t, u: t.neg_(), "neg_"),
    "abs_": (lambda t, u: t.abs_(), "abs_"),
    "exp_": (lambda t, u: t.exp_(), "exp_"),
    "log_": (lambda t, u: t.log_(), "log_"),
    "sqrt_": (lambda t, u: t.sqrt_(), "sqrt_"),
    "tanh_": (lambda t, u: t.tanh_(), "tanh_"),
    "sigmoid_": (lambda t, u: t.sigmoid_(), "sigmoid_"),
    "relu_": (lambda t, u: t.relu_(), "relu_"),
    "clamp_": (lambda t, u: t.clamp_(0.8, 1.2), "clip_"),
    "clip_": (lambda t, u: t.clip_(min=0.9), "clip_"),
    "fill_": (lambda t, u: t.fill_(2.0), "fill_"),
    "zero_": (lambda t, u: t.zero_(), "zero_"),
    "copy_": (lambda t, u: t.copy_(u), "copy_"),
}
VALUES = ([0.6, 1.1, 1.7], [1.3, 0.7, 1.9], [0.5, 0.2, 2.0])  # x, u, w: x and u positive for log, sqrt, pow


def make(framework, values, requires_grad=False):
    if framework == "tt":
        return tt.tensor(values, dtype=tt.float64, requires_grad=requires_grad)
    import torch

    return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)


def no_grad(framework):
    if framework == "tt":
        return tt.no_grad()
    import torch

    return torch.no_grad()


# -- the example and the precision rule: only what backward reads counts ------------------
def test_writing_a_saved_input_makes_backward_raise_naming_the_op_and_the_tensor():
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tt.ones(3)
    y = (w * x).sum()
    x[0] = 100.0
    with pytest.raises(RuntimeError, match=r"backward: Mul saved a float32 tensor of shape \(3,\) .* setitem"):
        y.backward()
    assert w.grad is None  # nothing was accumulated from the wrong values


def test_writing_what_no_op_saved_is_harmless():
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tt.ones(3)
    y = (w + x).sum()  # Add saves nothing
    x[0] = 100.0
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [1.0, 1.0, 1.0])
    # Mul(w, x) with x constant saves x (for w's gradient) but not w (x needs no gradient):
    z = (w * x).sum()
    with tt.no_grad():
        w += 1.0
    z.backward()
    np.testing.assert_array_equal(w.grad.data, [101.0, 2.0, 2.0])


def test_writing_a_saved_output_makes_backward_raise():
    w = tt.tensor([0.5, 1.0], requires_grad=True)
    e = w.exp()  # exp saves its output
    with tt.no_grad():
        e[0] = 0.0
    with pytest.raises(RuntimeError, match=r"Exp saved a float32 tensor of shape \(2,\)"):
        e.sum().backward()


def test_writes_after_backward_and_before_forward_are_fine():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    x = tt.tensor([3.0, 4.0])
    x[0] = 5.0  # before the graph exists
    y = (w * x).sum()
    y.backward()
    x[1] = 7.0  # after backward used it
    np.testing.assert_array_equal(w.grad.data, [5.0, 4.0])


def test_retain_graph_then_a_write_then_a_second_backward_raises():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    x = tt.tensor([3.0, 4.0])
    y = (w * x).sum()
    y.backward(retain_graph=True)
    x.mul_(2.0)
    with pytest.raises(RuntimeError, match="Mul saved .* mul_"):
        y.backward()


@pytest.mark.parametrize("name", list(INPLACE))
def test_every_inplace_path_raises_the_version_and_is_caught_at_backward(name):
    write, writer = INPLACE[name]
    x, u, w = (make("tt", v) for v in VALUES)
    w.requires_grad_()
    y = (w * x).sum()
    assert x._version == 0
    assert write(x, u) is x  # in place: the same tensor, as in PyTorch
    assert x._version == 1
    with pytest.raises(RuntimeError, match=rf"backward: Mul saved a float64 tensor of shape \(3,\) .* {re.escape(writer)}"):
        y.backward()


@pytest.mark.parametrize("name", list(INPLACE))
def test_same_verdicts_and_gradients_as_pytorch(name, torch):
    write, _ = INPLACE[name]
    results = {}
    for fw in ("tt", "torch"):
        x, u, w = (make(fw, v) for v in VALUES)
        w.requires_grad_()
        # 1. a saved input written in place: both refuse
        y = (w * x).sum()
        write(x, u)
        with pytest.raises(RuntimeError):
            y.backward()
        # 2. an input nobody saved: both go on
        x, u = make(fw, VALUES[0]), make(fw, VALUES[1])
        w.grad = None
        y = (w + x).sum()
        write(x, u)
        y.backward()
        # 3. a non-leaf written in place inside the graph: recorded, gradients flow through the write
        v = make(fw, VALUES[1], requires_grad=True)
        h = w * 1.5 + 1.0
        out = write(h, v)
        assert out is h
        (h * make(fw, [1.0, 2.0, 3.0])).sum().backward()
        results[fw] = [np.asarray(t.detach() if fw == "torch" else t.data) for t in (h, w.grad)]
        results[fw].append(None if v.grad is None else np.asarray(v.grad.detach() if fw == "torch" else v.grad.data))
        # 4. a leaf that requires grad, while gradients are recorded: both refuse
        with pytest.raises(RuntimeError):
            write(make(fw, VALUES[0], requires_grad=True), make(fw, VALUES[1]))
    for ours, theirs in zip(results["tt"], results["torch"]):
        if theirs is None:
            assert ours is None or not ours.any()
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_leaf_that_requires_grad_is_written_only_under_no_grad():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"add_: a leaf tensor that requires grad cannot be modified in place"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match=r"\+=: a leaf tensor that requires grad"):
        w += 1.0
    with tt.no_grad():
        w.add_(1.0)
        w *= 2.0
        w[0] = 0.0
    np.testing.assert_array_equal(w.data, [0.0, 6.0])
    assert w._version == 3 and w.is_leaf and w.requires_grad and w.grad_fn is None


# -- optimizers -------------------------------------------------------------------------------------
def test_an_optimizer_step_between_forward_and_backward_is_caught():
    w = tt.Parameter(np.array([1.0, 2.0]))
    x = tt.tensor([3.0, 4.0], requires_grad=True)
    optimizer = SGD([w], lr=0.1)
    (w * x).sum().backward()
    loss = (w * x).sum()  # saves w for x's gradient
    optimizer.step()  # w changes in place (under no_grad) after loss was recorded
    with pytest.raises(RuntimeError, match=r"Mul saved .* SGD.step\(\)"):
        loss.backward()


def test_the_usual_training_loop_is_unaffected():
    tt.manual_seed(0)
    model = tt.Sequential(tt.Dense(3, 4), tt.ReLU(), tt.Dense(4, 1))
    optimizer = SGD(model.parameters(), lr=0.1)
    x, target = tt.randn(8, 3), tt.randn(8, 1)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p._version == 5 for p in model.parameters())


# -- versions live with the memory: views, detach, from_numpy --------------------------------------
def test_views_and_detached_tensors_share_the_version():
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tt.tensor([1.0, 1.0, 1.0])
    view = x[1:]
    detached = (w * 1.0).detach()
    assert view._version == x._version == 0
    y = (w * x).sum()
    view[0] = 5.0  # writes x's memory
    assert x._version == view._version == 1
    with pytest.raises(RuntimeError, match="Mul saved"):
        y.backward()
    e = w.exp()
    e.detach()[0] = 0.0  # the detached tensor is e's memory: Exp saved it
    with pytest.raises(RuntimeError, match="Exp saved"):
        e.sum().backward()
    assert detached._version == 0


def test_writes_through_data_are_not_checked_as_in_pytorch():
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = tt.ones(3)
    y = (w * x).sum()
    x.data[0] = 100.0  # straight into the NumPy array
    assert x._version == 0
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [100.0, 1.0, 1.0])


# -- recorded in-place ops on non-leaves ------------------------------------------------------------
def test_mul_inplace_keeps_the_old_values_it_needs_for_the_other_gradient():
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = tt.tensor([4.0, 5.0, 6.0], requires_grad=True)
    h = w * 1.0
    h *= v  # dL/dv = old h = w: must not read the overwritten memory
    h.sum().backward()
    np.testing.assert_array_equal(v.grad.data, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(w.grad.data, [4.0, 5.0, 6.0])


def test_setitem_records_into_a_constant_tensor():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    buffer = tt.zeros(2, 3)
    buffer[:, 0] = w * 3.0  # buffer joins the graph
    buffer[1] = 7.0  # and a constant overwrites part of it again
    assert buffer.requires_grad and buffer.grad_fn.fn.__name__ == "SetItem"
    (buffer * tt.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [3.0, 0.0])
    np.testing.assert_array_equal(buffer.data, [[3.0, 0.0, 0.0], [7.0, 7.0, 7.0]])


def test_retain_grad_follows_the_tensor_through_an_inplace_op():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2.0
    h.retain_grad()
    h += 1.0
    (h * 3.0).sum().backward()
    np.testing.assert_array_equal(h.grad.data, [3.0, 3.0])


def test_a_view_made_before_an_inplace_op_on_its_base_is_refused():
    # PyTorch replays the view on the new base; TinyTorch refuses rather than give a wrong gradient.
    w = tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    t = w * 1.0
    view = t[:2]
    t *= 3.0
    with pytest.raises(RuntimeError, match=r"GetItem was then rewritten by \*= on another tensor sharing its memory"):
        view.sum()
    base = w * 1.0
    part = base[1:]
    part += 1.0  # recorded on the view: base's own history no longer describes its values
    with pytest.raises(RuntimeError, match="backward: .* rewritten by \\+="):
        base.backward(np.ones(3))


# -- bad in-place writes get clear errors -------------------------------------------------------------
def test_inplace_errors_name_the_op_and_the_problem():
    ints = tt.tensor([1, 2, 3])
    with pytest.raises(TypeError, match=r"\+=: cannot write a float32 result into a int64 tensor in place"):
        ints += 1.5
    ints += 2
    np.testing.assert_array_equal(ints.data, [3, 4, 5])
    small = tt.ones(3)
    with pytest.raises(ValueError, match=r"add_: cannot write a value of shape \(2, 3\) into a tensor of shape \(3,\)"):
        small.add_(tt.ones(2, 3))
    with pytest.raises(ValueError, match="setitem: cannot write a value of shape \\(2,\\) into a tensor of shape \\(3,\\)"):
        small[:] = [1.0, 2.0]
    expanded = tt.ones(1, 3).expand(2, 3)
    with pytest.raises(ValueError, match="mul_: this tensor's memory is read-only"):
        expanded.mul_(2.0)
    with pytest.raises(ValueError, match=r"fill_: expected one value, got an array of shape \(2,\)"):
        small.fill_([1.0, 2.0])
    grown = tt.ones(3) * tt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\+=: the result has shape \(2, 3\), which does not fit this tensor of shape \(3,\)"):
        grown += tt.ones(2, 3)


def test_an_intermediate_dropped_by_the_program_is_not_kept_by_inplace_bookkeeping():
    x = tt.ones(1000)
    x += 1.0
    alive = weakref.ref(x.data)
    del x
    assert alive() is None
