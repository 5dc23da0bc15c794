"""Attention kernels: compiled against reference, the reference against finite differences and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch._kernels import attention as compiled
from tinytorch._kernels import reference
from tinytorch.core import kernels
from tinytorch.core.autograd import Function
from tinytorch.testing import gradcheck

from .kernel_checks import DTYPES, arrays, assert_close, torch_oracle
from .strategies import leaf

IMPLEMENTATIONS = {"reference": reference, "compiled": compiled}


def _mask(rng: np.random.Generator, kind: str | None, shape: tuple[int, ...], masked: float):
    """A mask of ``shape``: each score is forbidden with probability ``masked`` (so whole rows can be)."""
    if kind is None:
        return None
    forbidden = rng.random(shape) < masked
    if kind == "bool":
        return ~forbidden
    return np.where(forbidden, -np.inf, rng.standard_normal(shape))


@st.composite
def mask_shapes(draw, full: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``full``: some trailing axes of it, each possibly replaced by 1."""
    kept = full[len(full) - draw(st.integers(0, len(full))) :]
    return tuple(1 if draw(st.booleans()) else side for side in kept)


@st.composite
def attention_cases(draw, dtype=None, max_side: int = 6) -> dict:
    """Arguments for attention_forward: any leading axes, Tq != Tk, masks of every kind, dropout."""
    dtype = dtype or draw(st.sampled_from(DTYPES))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    tq, tk = draw(st.integers(1, max_side)), draw(st.integers(1, max_side + 1))
    d, dv = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from([None, "bool", "float"]))
    return dict(
        q=draw(arrays((*batch, tq, d), dtype)),
        k=draw(arrays((*batch, tk, d), dtype)),
        v=draw(arrays((*batch, tk, dv), dtype)),
        mask=_mask(rng, kind, draw(mask_shapes((*batch, tq, tk))), draw(st.sampled_from([0.0, 0.4, 0.9]))),
        causal=draw(st.booleans()),
        scale=draw(st.sampled_from([None, 0.7])),
        dropout_p=draw(st.sampled_from([0.0, 0.0, 0.3])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _backward(impl, case: dict, forward_results: tuple, grad_out: np.ndarray):
    """attention_backward of ``impl`` for the forward of ``case`` that returned ``forward_results``."""
    _, probs, keep = forward_results
    return impl.attention_backward(
        grad_out, case["q"], case["k"], case["v"], probs, keep, case["scale"], case["dropout_p"], causal=case["causal"]
    )


@settings(max_examples=60)
@given(case=attention_cases(), data=st.data())
def test_compiled_attention_matches_reference(case, data):
    expected = reference.attention_forward(**case)
    actual = compiled.attention_forward(**case)
    for name, a, e in zip(("out", "probs"), actual, expected):
        assert np.isfinite(a).all(), f"{name} has NaN or inf"
        assert_close(a, e, name)
    if expected[2] is None:
        assert actual[2] is None
    else:
        np.testing.assert_array_equal(actual[2], expected[2], err_msg="the dropout keep-masks differ for one seed")

    grad_out = data.draw(arrays(expected[0].shape, case["q"].dtype))
    grads_expected = _backward(reference, case, expected, grad_out)
    grads_actual = _backward(compiled, case, actual, grad_out)
    for name, a, e in zip(("dq", "dk", "dv"), grads_actual, grads_expected):
        assert_close(a, e, name, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tq, tk", [(130, 140), (150, 100), (64, 64), (65, 1), (1, 200)])
def test_compiled_causal_attention_skipping_masked_blocks_matches_reference(tq, tk, dtype):
    # Long enough for several blocks of query rows, whose masked key blocks the compiled kernel skips.
    rng = np.random.default_rng(tq * tk)
    q, k, v, grad_out = (rng.standard_normal(shape).astype(dtype) for shape in ((2, tq, 8), (2, tk, 8), (2, tk, 3), (2, tq, 3)))
    mask = rng.random((tq, tk)) < 0.9
    for kwargs in (dict(), dict(mask=mask, dropout_p=0.2, seed=3)):
        expected = reference.attention_forward(q, k, v, causal=True, **kwargs)
        actual = compiled.attention_forward(q, k, v, causal=True, **kwargs)
        assert_close(actual[0], expected[0], "out")
        assert_close(actual[1], expected[1], "probs")
        p = kwargs.get("dropout_p", 0.0)
        grads_expected = reference.attention_backward(grad_out, q, k, v, *expected[1:], None, p)
        grads_actual = compiled.attention_backward(grad_out, q, k, v, *actual[1:], None, p, causal=True)
        for name, a, e in zip(("dq", "dk", "dv"), grads_actual, grads_expected):
            assert_close(a, e, name, scale=10)


# The compiled kernel computes 4 query rows by 16 columns at a time and pads its scratch rows to a
# multiple of 16: these sizes put every edge of those tiles (and of the causal limit) somewhere.
TILE_EDGES = [(1, 1, 1, 1), (4, 16, 16, 16), (5, 17, 17, 15), (19, 3, 33, 1), (3, 19, 32, 48), (37, 37, 20, 40)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tq, tk, d, dv", TILE_EDGES)
def test_compiled_attention_at_tile_edges_matches_reference(tq, tk, d, dv, dtype):
    rng = np.random.default_rng(tq * 1000 + tk * 10 + d)
    q, k, v = (rng.standard_normal(shape).astype(dtype) for shape in ((2, 3, tq, d), (2, 3, tk, d), (2, 3, tk, dv)))
    grad_out = rng.standard_normal((2, 3, tq, dv)).astype(dtype)
    variants = [
        dict(causal=True),
        dict(causal=False, scale=0.3),
        dict(mask=rng.random((3, 1, tk)) < 0.8, causal=True),  # broadcast over batch and query axes
        dict(mask=np.where(rng.random((2, 1, tq, tk)) < 0.2, -np.inf, rng.standard_normal((2, 1, tq, tk)))),
        dict(causal=True, dropout_p=0.3, seed=5),
    ]
    for kwargs in variants:
        expected = reference.attention_forward(q, k, v, **kwargs)
        actual = compiled.attention_forward(q, k, v, **kwargs)
        assert_close(actual[0], expected[0], f"out {kwargs}")
        assert_close(actual[1], expected[1], f"probs {kwargs}")
        p, causal = kwargs.get("dropout_p", 0.0), kwargs.get("causal", False)
        grads_expected = reference.attention_backward(grad_out, q, k, v, *expected[1:], kwargs.get("scale"), p)
        grads_actual = compiled.attention_backward(grad_out, q, k, v, *actual[1:], kwargs.get("scale"), p, causal=causal)
        for name, a, e in zip(("dq", "dk", "dv"), grads_actual, grads_expected):
            assert_close(a, e, f"{name} {kwargs}", scale=10)


@pytest.mark.skipif(not kernels.openmp_enabled(), reason="built without OpenMP: the kernels run on one thread only")
@pytest.mark.parametrize("packed", [False, True], ids=["stacked", "packed"])
def test_compiled_attention_gives_the_same_bits_on_one_or_two_threads(packed):
    # Each head is computed whole by one thread, in the same order whatever the thread count.
    rng = np.random.default_rng(6)
    qkv = rng.standard_normal((4, 33, 3 * 2 * 24)).astype(np.float32)
    grad = rng.standard_normal((4, 33, 48)).astype(np.float32)
    heads = [np.ascontiguousarray(part) for part in qkv.reshape(4, 33, 3, 2, 24).transpose(2, 0, 3, 1, 4)]
    g = np.ascontiguousarray(grad.reshape(4, 33, 2, 24).transpose(0, 2, 1, 3))

    def run():
        if packed:
            out, probs, keep = compiled.attention_packed_forward(qkv, 2, None, True, None, 0.2, 3)
            return out, probs, compiled.attention_packed_backward(grad, qkv, 2, probs, keep, None, 0.2, True)
        out, probs, keep = compiled.attention_forward(*heads, None, True, None, 0.2, 3)
        return (out, probs, *compiled.attention_backward(g, *heads, probs, keep, None, 0.2, True))

    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        one = run()
        kernels.set_num_threads(2)
        two = run()
    finally:
        kernels.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


class ReferenceAttention(Function):
    """The attention kernels of one implementation as an autograd op, for gradcheck."""

    @staticmethod
    def forward(ctx, q, k, v, impl=reference, mask=None, causal=False, scale=None, dropout_p=0.0, seed=None):
        out, probs, keep = impl.attention_forward(q, k, v, mask, causal, scale, dropout_p, seed)
        ctx.save_for_backward(q, k, v, probs, keep)
        ctx.impl, ctx.scale, ctx.dropout_p, ctx.causal = impl, scale, dropout_p, causal
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probs, keep = ctx.saved
        return ctx.impl.attention_backward(grad, q, k, v, probs, keep, ctx.scale, ctx.dropout_p, causal=ctx.causal)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=12)
@given(case=attention_cases(dtype=np.float64, max_side=4))
def test_attention_backward_matches_finite_differences(impl, case):
    # A seed fixes the dropout mask, so the function is deterministic and differentiable.
    q, k, v = (leaf(case.pop(name)) for name in ("q", "k", "v"))
    gradcheck(
        lambda q, k, v: ReferenceAttention.apply(q, k, v, impl=IMPLEMENTATIONS[impl], **case),
        q, k, v, name=f"{impl} attention",
    )


def _torch_attention(torch, q, k, v, mask, causal, scale):
    """PyTorch's SDPA with the bottom-right causal alignment of our kernels, as an explicit mask."""
    tq, tk = q.shape[-2], k.shape[-2]
    # PyTorch wants a mask of at least the (Tq, Tk) axes
    attn_mask = None if mask is None else torch.tensor(np.broadcast_to(mask, np.broadcast_shapes(np.shape(mask), (tq, tk))))
    if causal and tq == tk and mask is None:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    if causal:
        allowed = torch.tensor(np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq))
        attn_mask = allowed if attn_mask is None else (allowed & attn_mask if attn_mask.dtype == torch.bool
                                                       else attn_mask.masked_fill(~allowed, float("-inf")))
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


@settings(max_examples=25)
@given(case=attention_cases(dtype=np.float64), data=st.data())
def test_reference_attention_matches_pytorch(case, data):
    torch = torch_oracle()
    case["dropout_p"] = 0.0
    out, probs, _ = reference.attention_forward(**case)
    # PyTorch returns NaN for a row with no visible key; ours are defined as 0, so compare the others.
    visible = probs.sum(axis=-1) > 0
    grad_out = data.draw(arrays(out.shape, np.float64))
    dq, dk, dv = reference.attention_backward(grad_out, case["q"], case["k"], case["v"], probs, None, case["scale"], 0.0)

    tq, tk, tv = (torch.tensor(case[name], requires_grad=True) for name in ("q", "k", "v"))
    torch_out = _torch_attention(torch, tq, tk, tv, case["mask"], case["causal"], case["scale"])
    torch_grad = torch.tensor(np.where(visible[..., None], grad_out, 0.0))  # keep NaN rows out of the gradients
    torch_out.backward(torch_grad)
    np.testing.assert_allclose(out[visible], torch_out.detach().numpy()[visible], rtol=1e-10, atol=1e-12)
    if visible.all():
        for name, ours, theirs in (("dq", dq, tq.grad), ("dk", dk, tk.grad), ("dv", dv, tv.grad)):
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_rows_give_zero_output_and_gradient(impl, dtype):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape).astype(dtype) for shape in ((2, 4, 3), (2, 5, 3), (2, 5, 2)))
    mask = np.ones((4, 5), dtype=bool)
    mask[1] = False
    out, probs, keep = impl.attention_forward(q, k, v, mask=mask)
    dq, dk, dv = impl.attention_backward(rng.standard_normal(out.shape).astype(dtype), q, k, v, probs, keep, None, 0.0)
    assert np.isfinite(out).all() and np.isfinite(dq).all() and np.isfinite(dk).all()
    assert not out[:, 1].any() and not probs[:, 1].any() and not dq[:, 1].any()
    np.testing.assert_allclose(probs[:, [0, 2, 3]].sum(axis=-1), 1, rtol=1e-6)
    # causal with more queries than keys: the first Tq - Tk queries see nothing
    out, probs, _ = impl.attention_forward(k, q, q, causal=True)
    assert not out[:, 0].any() and (probs[:, 1, 0] > 0).all() and not probs[:, 1, 1:].any()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_causal_single_query_sees_the_whole_kv_cache(impl):
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((2, 3, 1, 4)), rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 5))
    causal_out, causal_probs, _ = impl.attention_forward(q, k, v, causal=True)
    plain_out, _, _ = impl.attention_forward(q, k, v)
    assert (causal_probs > 0).all()
    np.testing.assert_allclose(causal_out, plain_out, rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_dropout_keeps_one_minus_p_and_is_reproducible(impl):
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((4, 64, 8)).astype(np.float32) for _ in range(3))
    out, probs, keep = impl.attention_forward(q, k, v, dropout_p=0.25, seed=7)
    assert keep.dtype == np.bool_ and keep.shape == probs.shape
    assert abs(keep.mean() - 0.75) < 0.01
    np.testing.assert_allclose(probs.sum(axis=-1), 1, rtol=1e-5)  # probs are before dropout
    np.testing.assert_allclose(out, (probs * keep / 0.75) @ v, rtol=1e-4, atol=1e-5)
    again = impl.attention_forward(q, k, v, dropout_p=0.25, seed=7)
    np.testing.assert_array_equal(again[0], out)
    other = impl.attention_forward(q, k, v, dropout_p=0.25, seed=8)
    assert (other[2] != keep).any()
    dropped_all, _, _ = impl.attention_forward(q, k, v, dropout_p=1.0, seed=7)
    assert not dropped_all.any()


def test_compiled_results_do_not_alias_reused_buffers():
    rng = np.random.default_rng(3)
    first = [rng.standard_normal((2, 3, 5, 4)).astype(np.float32) for _ in range(4)]
    second = [rng.standard_normal((2, 3, 5, 4)).astype(np.float32) for _ in range(4)]
    results = []
    for q, k, v, g in (first, second):
        out, probs, keep = compiled.attention_forward(q, k, v, causal=True, dropout_p=0.2, seed=1)
        grads = compiled.attention_backward(g, q, k, v, probs, keep, None, 0.2)
        results.append([a.copy() for a in (out, probs, *grads)] + [(out, probs, *grads)])
    for kept, live in zip(results[0][:-1], results[0][-1]):
        np.testing.assert_array_equal(live, kept, err_msg="a later call overwrote an earlier result")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_read_only_inputs_are_accepted(impl):
    # The framework hands kernels read-only arrays (saved tensors, shared gradients).
    rng = np.random.default_rng(4)
    q, k, v, grad_out = (rng.standard_normal((2, 5, 4)) for _ in range(4))
    mask = rng.random((5, 5)) < 0.7
    for a in (q, k, v, grad_out, mask):
        a.flags.writeable = False
    out, probs, keep = impl.attention_forward(q, k, v, mask=mask, causal=True, dropout_p=0.1, seed=1)
    probs.flags.writeable = keep.flags.writeable = False
    grads = impl.attention_backward(grad_out, q, k, v, probs, keep, None, 0.1, causal=True)
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_empty_key_axis_gives_zero_output(impl):
    q, k, v = np.ones((2, 3, 4)), np.ones((2, 0, 4)), np.ones((2, 0, 5))
    out, probs, _ = impl.attention_forward(q, k, v)
    assert out.shape == (2, 3, 5) and probs.shape == (2, 3, 0) and not out.any()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS)
def test_attention_errors_name_the_problem(impl):
    q, k, v = np.ones((2, 3, 4)), np.ones((2, 5, 4)), np.ones((2, 5, 6))
    fwd = impl.attention_forward
    with pytest.raises(ValueError, match=r"attention_forward: k has shape \(2, 5, 3\); expected"):
        fwd(q, np.ones((2, 5, 3)), v)
    with pytest.raises(ValueError, match=r"attention_forward: v has shape \(2, 4, 6\)"):
        fwd(q, k, np.ones((2, 4, 6)))
    with pytest.raises(TypeError, match="attention_forward: k has dtype float32 but the other inputs are float64"):
        fwd(q, k.astype(np.float32), v)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 5\) does not broadcast to the scores' shape \(2, 3, 5\)"):
        fwd(q, k, v, mask=np.ones((4, 5), dtype=bool))
    with pytest.raises(TypeError, match="mask has dtype int64; expected bool"):
        fwd(q, k, v, mask=np.ones((3, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\], got 1.5"):
        fwd(q, k, v, dropout_p=1.5)
    with pytest.raises(ValueError, match="at least 2 axes"):
        fwd(np.ones(4), k, v)
    out, probs, keep = fwd(q, k, v)
    with pytest.raises(ValueError, match="keep must be given exactly when dropout_p > 0"):
        impl.attention_backward(out * 0 + 1, q, k, v, probs, None, None, 0.5)
    with pytest.raises(ValueError, match=r"attention_backward: grad_out has shape \(2, 3, 5\); expected \(2, 3, 6\)"):
        impl.attention_backward(np.ones((2, 3, 5)), q, k, v, probs, None, None, 0.0)


def test_registry_runs_the_compiled_attention_kernels():
    described = kernels.describe()
    assert described["attention_forward"] == "tinytorch._kernels.attention"
    assert described["attention_backward"] == "tinytorch._kernels.attention"


@settings(max_examples=25)
@given(batch=st.lists(st.integers(1, 3), max_size=2), t=st.integers(1, 3), filled=st.integers(0, 6), spare=st.integers(0, 3),
       d=st.integers(1, 5), dv=st.integers(1, 4), dtype=st.sampled_from(DTYPES), scale=st.sampled_from([None, 0.6]), data=st.data())
def test_cached_attention_is_the_last_rows_of_causal_attention(batch, t, filled, spare, d, dv, dtype, scale, data):
    # a cache of filled + t + spare positions, the first filled + t of them in use: the t new queries'
    # outputs are the last t rows of causal attention over those positions, in both implementations
    batch, length = tuple(batch), filled + t
    size = length + spare
    k_cache, v_cache = data.draw(arrays((*batch, size, d), dtype)), data.draw(arrays((*batch, size, dv), dtype))
    q = data.draw(arrays((*batch, t, d), dtype))
    whole_q = np.concatenate([np.zeros((*batch, filled, d), dtype), q], axis=-2)
    expected = reference.attention_forward(whole_q, k_cache[..., :length, :], v_cache[..., :length, :], causal=True, scale=scale)[0][..., filled:, :]
    for impl in IMPLEMENTATIONS.values():
        assert_close(impl.attention_cached(q, k_cache, v_cache, length, scale), np.ascontiguousarray(expected), f"{impl.__name__} attention_cached")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_cached_attention_errors(impl):
    q, cache = np.ones((2, 1, 4)), np.ones((2, 8, 4))
    with pytest.raises(ValueError, match=r"attention_cached: length must be an integer from 1 \(the new queries\) to 8"):
        impl.attention_cached(q, cache, cache, 9)
    with pytest.raises(ValueError, match=r"k_cache of shape \(3, 8, 4\) and v_cache of shape \(3, 8, 4\) do not fit q"):
        impl.attention_cached(q, np.ones((3, 8, 4)), np.ones((3, 8, 4)), 2)
    with pytest.raises(TypeError, match="attention_cached: v_cache has dtype float32 but the other inputs are float64"):
        impl.attention_cached(q, cache, cache.astype(np.float32), 2)


@settings(max_examples=25)
@given(b=st.integers(1, 2), t=st.integers(1, 70), h=st.sampled_from([1, 2, 3]), d=st.sampled_from([1, 2, 3, 4, 17]), dtype=st.sampled_from(DTYPES),
       mask_kind=st.sampled_from([None, "bool", "float"]), causal=st.booleans(), dropout_p=st.sampled_from([0.0, 0.0, 0.3]),
       seed=st.integers(0, 2**16), data=st.data())
def test_packed_attention_is_attention_on_the_split_heads(b, t, h, d, dtype, mask_kind, causal, dropout_p, seed, data):
    # up to 70 tokens and heads of 17 features: edges of the compiled kernel's 4 x 16 tiles
    e = h * d
    qkv = data.draw(arrays((b, t, 3 * e), dtype))
    grad = data.draw(arrays((b, t, e), dtype))
    rng = np.random.default_rng(seed)
    mask = _mask(rng, mask_kind, (b, 1, 1, t), 0.3)
    if mask is not None:  # a (B, 1, 1, T) padding-style mask; every query keeps key 0
        mask[..., 0] = True if mask.dtype == np.bool_ else 0.0
    heads = [np.ascontiguousarray(part) for part in qkv.reshape(b, t, 3, h, d).transpose(2, 0, 3, 1, 4)]
    out_ref, probs_ref, keep_ref = reference.attention_forward(*heads, mask, causal, None, dropout_p, seed)
    grads_ref = reference.attention_backward(grad.reshape(b, t, h, d).transpose(0, 2, 1, 3), *heads, probs_ref, keep_ref, None, dropout_p)
    for impl in IMPLEMENTATIONS.values():
        out, probs, keep = impl.attention_packed_forward(qkv, h, mask, causal, None, dropout_p, seed)
        assert_close(out, np.ascontiguousarray(out_ref.transpose(0, 2, 1, 3).reshape(b, t, e)), f"{impl.__name__} packed out")
        assert_close(probs, probs_ref, f"{impl.__name__} packed probs")
        np.testing.assert_array_equal(keep, keep_ref)
        dqkv = impl.attention_packed_backward(grad, qkv, h, probs, keep, None, dropout_p, causal)
        expected = np.stack([g.transpose(0, 2, 1, 3) for g in grads_ref], axis=2).reshape(b, t, 3 * e)
        assert_close(dqkv, expected, f"{impl.__name__} packed dqkv", scale=10)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_packed_attention_errors(impl):
    with pytest.raises(ValueError, match=r"qkv of shape \(2, 3, 12\) must have 3 \* E features with E divisible by num_heads=3"):
        impl.attention_packed_forward(np.ones((2, 3, 12)), 3)
    with pytest.raises(ValueError, match=r"attention_packed_backward: grad_out has shape \(2, 3, 5\); expected \(2, 3, 4\)"):
        impl.attention_packed_backward(np.ones((2, 3, 5)), np.ones((2, 3, 12)), 2, np.ones((2, 2, 3, 3)), None, None, 0.0)
