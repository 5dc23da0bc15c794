"""The backward engine: ordering, accumulation, freeing the graph, grad modes, and its errors."""

import gc
import sys
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.autograd import Context, Function, topological_order, unbroadcast


def leaf(values, dtype=None):
    return tt.tensor(values, dtype=dtype, requires_grad=True)


# -- ordering -------------------------------------------------------------------------------------
def test_ten_thousand_op_chain_needs_no_recursion():
    assert sys.getrecursionlimit() < 10_000  # so a recursive walk would fail here
    x = leaf(1.0, dtype=tt.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**10_000, rel=1e-9)


def test_topological_order_puts_every_node_before_its_inputs_nodes():
    x = leaf([1.0, 2.0])
    a = x * 2
    b = x + 1
    c = a * b
    d = c + a
    order = topological_order(d)
    position = {id(node): i for i, node in enumerate(order)}
    assert order[0] is d.grad_fn and order[-1] in (a.grad_fn, b.grad_fn)
    for node in order:
        for parent in node.parents:
            if isinstance(parent, Context):
                assert position[id(node)] < position[id(parent)]
    assert len(order) == 4  # each node once; the leaf x is not a node
    assert topological_order(x) == []


@pytest.mark.parametrize("short_path_first", [True, False])
def test_a_node_reached_by_a_short_and_a_long_path_waits_for_the_long_one(short_path_first):
    # The residual shape of a transformer block: h feeds the sum directly and through a chain.
    x = leaf([0.5, -1.0])
    h = x * 2
    long_path = h.exp().tanh().exp()
    z = (h + long_path) if short_path_first else (long_path + h)
    order = topological_order(z)
    assert order.index(h.grad_fn) == len(order) - 1  # after every node that uses h
    z.sum().backward()
    t = np.tanh(np.exp(2 * x.data))
    expected = 2 * (1 + np.exp(t) * (1 - t**2) * np.exp(2 * x.data))
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5)


def test_diamond_accumulates_both_paths():
    x = leaf([1.0, -2.0, 3.0])
    y = x * 3
    z = y * y + y.exp()  # y used twice, x reached through two paths
    z.sum().backward()
    expected = (2 * 9 * x.data + 3 * np.exp(3 * x.data)).astype(np.float32)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5)


def test_tensor_used_twice_in_one_op():
    x = leaf([1.5, -2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    y = leaf([1.0, 2.0])
    (y + y + y).sum().backward()
    np.testing.assert_allclose(y.grad.data, [3.0, 3.0])


# -- accumulation and zero_grad -------------------------------------------------------------------
def test_leaves_accumulate_across_backward_calls_until_zero_grad():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])
    x.zero_grad()
    assert x.grad is None
    (x * 5).sum().backward()
    np.testing.assert_allclose(x.grad.data, [5, 5])
    x.grad = None  # the other documented way to clear it
    (x * 7).sum().backward()
    np.testing.assert_allclose(x.grad.data, [7, 7])


def test_grad_is_a_tensor_of_the_leaf_dtype_and_shape_without_history():
    for dtype in (tt.float32, tt.float64):
        x = leaf(np.ones((2, 3)), dtype=dtype)
        (x * 2).sum().backward()
        assert isinstance(x.grad, tt.Tensor)
        assert x.grad.dtype == dtype and x.grad.shape == (2, 3)
        assert not x.grad.requires_grad and x.grad.grad_fn is None


def test_leaf_grads_never_alias_each_other_or_the_seed():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()  # Add hands the same array to both inputs
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data[0] = 100.0
    assert b.grad.data[0] == 1.0

    seed = np.array([1.0, 1.0], dtype=np.float32)
    c = leaf([1.0, 2.0])
    c.backward(seed)
    assert not np.shares_memory(c.grad.data, seed)
    c.backward(seed)  # accumulating must not write into the caller's array either
    np.testing.assert_array_equal(seed, [1.0, 1.0])
    np.testing.assert_array_equal(c.grad.data, [2.0, 2.0])


def test_backward_does_not_modify_forward_values():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x.T  # a view of x's data
    z = y.reshape(4)
    snapshot = (x.data.copy(), y.data.copy(), z.data.copy())
    (z * tt.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    for before, t in zip(snapshot, (x, y, z)):
        np.testing.assert_array_equal(t.data, before)


def test_leaf_root_gets_the_seed():
    x = leaf([1.0, 2.0])
    x.backward(tt.tensor([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


# -- freeing the graph ----------------------------------------------------------------------------
def test_second_backward_without_retain_graph_raises_clearly():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"freed by an earlier backward\(\); pass retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * 2 * x.data)
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()  # the second call did not retain it


def test_saved_arrays_and_parent_links_are_freed_after_backward():
    x = leaf(np.ones((3, 3)))
    h = x.exp()
    y = (h * h).sum()
    elsewhere = (h * x).grad_fn  # a branch this backward does not go through
    mul_node = y.grad_fn.parents[0]
    assert len(mul_node.saved) == 2 and mul_node.parents == (h.grad_fn, h.grad_fn)
    y.backward()
    for node in (y.grad_fn, mul_node, h.grad_fn):
        assert node.freed and node.saved == () and node.parents == ()
    assert not elsewhere.freed and len(elsewhere.saved) == 2
    assert "(freed)" in repr(h.grad_fn)


def test_retain_graph_keeps_saved_arrays():
    x = leaf([1.0, 2.0])
    h = x.exp()
    y = h.sum()
    y.backward(retain_graph=True)
    assert not h.grad_fn.freed and len(h.grad_fn.saved) == 1


def test_freeing_releases_the_activation_memory():
    # Measured, not assumed: after backward the loss alone must not keep the forward activations alive.
    w = tt.randn(256, 256, requires_grad=True)
    x = tt.randn(256, 256)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        h = x
        for _ in range(6):
            h = (h @ w).tanh()
        loss = h.sum()
        del h
        held_by_graph = tracemalloc.get_traced_memory()[0] - before
        loss.backward()
        gc.collect()
        held_after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    activation = 256 * 256 * 4
    assert held_by_graph > 6 * activation  # the graph really did hold the activations
    assert held_after < 2 * activation  # now only w.grad (one activation's size) and small change


def test_an_intermediate_that_no_op_saved_is_freed_when_the_program_drops_it():
    x = leaf(np.ones(1000))
    h = x * 2.0  # Mul(x, 2.0) saves only the constant: x's gradient is 2
    out = h.tanh()  # tanh saves its output, not h
    alive = weakref.ref(h.data)
    del h
    assert alive() is None
    saved = weakref.ref(out.data)
    total = (out * out).sum()  # Mul(out, out) saves out for both gradients
    del out
    assert saved() is not None  # still needed by backward
    total.backward()
    np.testing.assert_allclose(x.grad.data, 2 * 2 * np.tanh(2.0) * (1 - np.tanh(2.0) ** 2), rtol=1e-6)
    assert saved() is None  # backward freed it


def test_the_graph_holds_only_the_saved_activations():
    # h -> tanh(0.5 h) eight times: the graph keeps the 8 tanh outputs, not the 8 products.
    x = leaf(np.random.default_rng(0).standard_normal((128, 256)))
    size = 128 * 256 * 4
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        h = x
        for _ in range(8):
            h = (h * 0.5).tanh()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 8 * size <= kept < 9 * size, kept / size


def test_retain_grad_does_not_keep_the_tensor_alive():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.retain_grad()
    alive = weakref.ref(h)
    y = (h * 3).sum()
    del h
    gc.collect()
    assert alive() is None
    y.backward()  # the retained gradient has nowhere to go; the rest is unaffected
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


# -- grad modes -----------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_as_context_managers_nest():
    x = leaf([1.0])
    with tt.no_grad():
        assert not tt.is_grad_enabled()
        assert not (x * 2).requires_grad
        with tt.enable_grad():
            assert tt.is_grad_enabled()
            assert (x * 2).requires_grad
            with tt.no_grad():
                assert not (x * 2).requires_grad
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert tt.is_grad_enabled() and (x * 2).requires_grad


def test_grad_modes_as_decorators_nest_and_restore_on_error():
    x = leaf([1.0])

    @tt.enable_grad()
    def tracked(t):
        return (t * 2).requires_grad

    @tt.no_grad()
    def untracked(t):
        return (t * 2).requires_grad, tracked(t), (t * 2).requires_grad

    @tt.no_grad()
    def fails():
        raise KeyError("boom")

    assert untracked(x) == (False, True, False)
    assert untracked.__name__ == "untracked"  # functools.wraps
    assert tt.is_grad_enabled()
    with pytest.raises(KeyError):
        fails()
    assert tt.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with tt.no_grad():
        thread = threading.Thread(target=lambda: seen.append(tt.is_grad_enabled()))
        thread.start()
        thread.join()
        assert not tt.is_grad_enabled()
    assert seen == [True]  # a new thread starts with gradients on, as in PyTorch


def test_no_grad_builds_no_graph():
    x = leaf([1.0, 2.0])
    with tt.no_grad():
        y = (x * 2).exp()
    assert y.grad_fn is None and y.is_leaf and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_detach_shares_data_and_stops_gradients():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = x * 3
    e = y.detach()
    assert np.shares_memory(e.data, y.data)
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, d.data)  # d is a constant


def test_requires_grad_():
    x = tt.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])
    x.requires_grad_(False)
    assert not (x * 2).requires_grad
    with pytest.raises(TypeError, match=r"requires_grad: only float tensors can require gradients, this one is int64"):
        tt.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match=r"requires_grad_\(False\): only leaf tensors"):
        (leaf([1.0]) * 2).requires_grad_(False)


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf([1.0, 2.0])
    h = x * 2
    y = x * 3
    h.retain_grad()
    (h * h + y).sum().backward()
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    np.testing.assert_allclose(x.grad.data, 2 * 2 * h.data + 3)
    assert y.grad is None  # not retained
    with pytest.raises(RuntimeError, match="retain_grad: this tensor does not require grad"):
        tt.tensor([1.0]).retain_grad()


def test_only_float_results_are_tracked():
    x = leaf([1.5, -2.0])
    assert not (x > 0).requires_grad
    assert not x.argmax().requires_grad
    assert not x.astype(tt.int64).requires_grad


# -- errors ---------------------------------------------------------------------------------------
def test_backward_on_non_scalar_without_grad_says_so():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"grad can be left out only for a one-element output .* got shape \(2,\)"):
        y.backward()
    y.backward(np.ones(2))  # with a gradient it works
    single = leaf([[3.0]]) * 2  # one element of any shape counts as a scalar
    single.backward()


def test_backward_with_a_wrong_shaped_grad():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(ValueError, match=r"backward: grad has shape \(3,\); expected the tensor's shape \(2,\)"):
        y.backward(np.ones(3))


def test_backward_of_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="backward: this tensor does not require grad"):
        tt.tensor([1.0]).sum().backward()


def test_setitem_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad cannot be modified in place"):
        x[0] = 5.0
    with tt.no_grad():
        x[0] = 5.0
    assert x.data[0] == 5.0


def test_function_returning_the_wrong_number_of_gradients():
    class TwoInOneOut(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match=r"TwoInOneOut.backward returned 1 gradients for 2 inputs"):
        TwoInOneOut.apply(leaf([1.0]), leaf([2.0])).sum().backward()


# -- unbroadcast ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grad_shape, shape",
    [((4, 2, 3), (2, 1)), ((4, 2, 3), (3,)), ((2, 3), ()), ((5, 1, 3), (1, 1, 3)), ((2, 3), (2, 3))],
)
def test_unbroadcast_sums_what_broadcasting_copied(grad_shape, shape):
    grad = np.random.default_rng(0).standard_normal(grad_shape)
    reduced = unbroadcast(grad, shape)
    assert reduced.shape == shape
    # <grad, broadcast(v)> == <unbroadcast(grad), v> for any v: the adjoint of broadcasting
    v = np.random.default_rng(1).standard_normal(shape)
    assert np.sum(grad * np.broadcast_to(v, grad_shape)) == pytest.approx(np.sum(reduced * v))


def test_unbroadcast_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"unbroadcast: gradient of shape \(2, 3\) does not broadcast to \(2, 2\)"):
        unbroadcast(np.ones((2, 3)), (2, 2))
    with pytest.raises(ValueError, match="cannot be reduced"):
        unbroadcast(np.ones(3), (1, 3))


# -- checkpoint -----------------------------------------------------------------------------------
def test_checkpoint_keeps_no_inner_graph_and_matches_plain_gradients():
    tt.manual_seed(1)
    w = tt.randn(3, 3, dtype=tt.float64, requires_grad=True)
    x = tt.randn(2, 3, dtype=tt.float64, requires_grad=True)

    def block(t):
        return (t @ w).tanh() @ w

    plain = block(x).sum()
    plain.backward()
    expected_x, expected_w = x.grad.data.copy(), w.grad.data.copy()
    x.grad = w.grad = None

    out = tt.checkpoint(block, x)
    assert out.dtype == tt.float64
    assert out.grad_fn.fn.__name__ == "Checkpoint"
    assert out.grad_fn.parents == (x,)  # only x: nothing inside block was kept
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, expected_x, rtol=1e-12)
    np.testing.assert_allclose(w.grad.data, expected_w, rtol=1e-12)


def test_checkpoint_rerun_draws_the_same_random_numbers():
    # A dropout-like block: the mask comes from the framework generator.
    x = leaf(np.ones(1000), dtype=tt.float64)

    def dropout(t):
        mask = (tt.rand(*t.shape, dtype=tt.float64) > 0.5).astype(tt.float64)
        return t * mask

    tt.manual_seed(3)
    out = tt.checkpoint(dropout, x)
    after_forward = tt.rand(1).item()
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, out.data)  # the gradient used the forward's mask
    tt.manual_seed(3)
    dropout(x)
    assert tt.rand(1).item() == after_forward  # backward's re-run left the stream where it was
