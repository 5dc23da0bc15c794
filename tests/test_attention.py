"""Attention (lesson 07): scaled_dot_product_attention and MultiHeadAttention against PyTorch, gradients, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch.core import kernels
from tinytorch.core.attention import (
    MultiHeadAttention,
    MultiheadAttention,
    ScaledDotProductAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from tinytorch.testing import gradcheck

from .layer_checks import TORCH_REASON, gradcheck_module, torch  # noqa: F401  (torch is a fixture)
from .strategies import float64_arrays, leaf


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _leaves(*arrays):
    return [tt.from_numpy(np.array(a), requires_grad=True) for a in arrays]


# -- masks ------------------------------------------------------------------------------------------
def test_causal_mask_is_lower_triangular_and_top_left_aligned():
    np.testing.assert_array_equal(causal_mask(4).numpy(), np.tril(np.ones((4, 4), bool)))
    np.testing.assert_array_equal(causal_mask(2, 4).numpy(), [[1, 0, 0, 0], [1, 1, 0, 0]])
    assert causal_mask(3).dtype == np.bool_
    with pytest.raises(ValueError, match="causal_mask: size must be a non-negative integer"):
        causal_mask(-1)


def test_padding_mask_marks_real_tokens():
    np.testing.assert_array_equal(padding_mask([2, 0, 3], 3).numpy(), [[1, 1, 0], [0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"every length must be in \[0, 3\]"):
        padding_mask([4], 3)


# -- scaled_dot_product_attention ------------------------------------------------------------------
@st.composite
def sdpa_cases(draw):
    """Shapes with broadcasting batch axes, L != S, size-1 axes; masks of every kind and shape."""
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    k_batch = tuple(1 if draw(st.booleans()) else n for n in batch)  # key/value may broadcast over the batch
    L, S, E, Ev = (draw(st.integers(1, 4)) for _ in range(4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q = draw(float64_arrays((*batch, L, E)))
    k = draw(float64_arrays((*k_batch, S, E)))
    v = draw(float64_arrays((*k_batch, S, Ev)))
    kind = draw(st.sampled_from(["none", "causal", "bool", "float"]))
    mask = None
    if kind in ("bool", "float"):
        full = (*batch, L, S)
        shape = tuple(1 if draw(st.booleans()) else n for n in full[len(full) - draw(st.integers(1, len(full))):])
        if kind == "bool":
            mask = rng.random(shape) < 0.7
            mask[..., 0] = True  # every query keeps a key (a row masked entirely is an error, tested below)
        else:
            mask = np.where(rng.random(shape) < 0.3, -np.inf, rng.standard_normal(shape))
            mask[..., 0] = 0.5
    scale = draw(st.sampled_from([None, 0.3]))
    return dict(q=q, k=k, v=v, mask=mask, causal=kind == "causal", scale=scale)


@settings(max_examples=20)
@given(case=sdpa_cases())
def test_sdpa_matches_torch_values_and_gradients(case):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)  # not the fixture: hypothesis reruns the body
    q, k, v = _leaves(case["q"], case["k"], case["v"])
    out = scaled_dot_product_attention(q, k, v, attn_mask=case["mask"], is_causal=case["causal"], scale=case["scale"])
    cot = _randn(*out.shape, seed=1)
    out.backward(cot)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (case["q"], case["k"], case["v"]))
    mask = case["mask"]
    if mask is not None:  # PyTorch wants at least the (L, S) axes; ours broadcasts any trailing shape
        L, S = case["q"].shape[-2], case["k"].shape[-2]
        mask = torch.tensor(np.broadcast_to(mask, np.broadcast_shapes(mask.shape, (L, S))).copy())
    expected = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=mask, is_causal=case["causal"], scale=case["scale"]
    )
    expected.backward(torch.tensor(cot))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, ours, theirs in zip("qkv", (q, k, v), (tq, tk, tv)):
        assert ours.grad.shape == ours.shape
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=f"d{name}")


@settings(max_examples=10)
@given(case=sdpa_cases())
def test_sdpa_gradients_match_finite_differences(case):
    mask, causal, scale = case["mask"], case["causal"], case["scale"]
    gradcheck(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale),
        leaf(case["q"]), leaf(case["k"]), leaf(case["v"]), name="scaled_dot_product_attention",
    )


def test_sdpa_runs_on_the_reference_kernel_too():
    q, k, v = (tt.randn(2, 3, 6, 4) for _ in range(3))
    compiled = scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    with kernels.use("reference"):
        reference = scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    np.testing.assert_allclose(compiled, reference, rtol=1e-5, atol=1e-6)


def test_sdpa_is_the_formula_and_accepts_numpy_arrays():
    q, k, v = _randn(2, 3, 4), _randn(2, 5, 4, seed=1), _randn(2, 5, 2, seed=2)
    scores = q @ k.transpose(0, 2, 1) / 2.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = F.scaled_dot_product_attention(q, k, v)
    assert out.dtype == np.float64  # a float64 array stays float64
    np.testing.assert_allclose(out.numpy(), weights @ v, rtol=1e-12)


def test_sdpa_dropout_is_reproducible_with_the_framework_seed():
    q = tt.randn(1, 2, 8, 4)
    tt.manual_seed(3)
    a = scaled_dot_product_attention(q, q, q, dropout_p=0.5).numpy()
    tt.manual_seed(3)
    b = scaled_dot_product_attention(q, q, q, dropout_p=0.5).numpy()
    plain = scaled_dot_product_attention(q, q, q).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)
    assert np.abs(scaled_dot_product_attention(q, q, q, dropout_p=1.0).numpy()).max() == 0


def test_sdpa_dropout_gradients_match_finite_differences():
    def attend(q, k, v):
        tt.manual_seed(7)  # the same dropout mask at every evaluation
        return scaled_dot_product_attention(q, k, v, dropout_p=0.4, is_causal=True)

    gradcheck(attend, *(leaf(_randn(1, 2, 3, 2, seed=s)) for s in range(3)), name="sdpa with dropout")


def test_sdpa_errors_name_the_shapes():
    q, k = tt.randn(2, 4, 8), tt.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"query of shape \(2, 4, 8\) and key of shape \(2, 5, 6\) must have the same last"):
        scaled_dot_product_attention(q, tt.randn(2, 5, 6), tt.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"key of shape \(2, 5, 8\) and value of shape \(2, 6, 8\) must have the same number"):
        scaled_dot_product_attention(q, k, tt.randn(2, 6, 8))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 5\) does not broadcast to the scores' shape \(2, 4, 5\)"):
        scaled_dot_product_attention(q, k, k, attn_mask=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match=r"leading \(batch\) axes"):
        scaled_dot_product_attention(q, tt.randn(3, 5, 8), tt.randn(3, 5, 8))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, k, attn_mask=np.ones((4, 5), bool), is_causal=True)
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(q, k, k.astype(np.float64))


def test_sdpa_fully_masked_row_is_an_error_not_nan():
    q, k = tt.randn(2, 3, 4), tt.randn(2, 5, 4)
    mask = np.ones((2, 3, 5), bool)
    mask[1, 2] = False
    with pytest.raises(ValueError, match=r"masks every key for the query at index \(1, 2\)"):
        scaled_dot_product_attention(q, k, k, attn_mask=mask)
    float_mask = np.zeros((3, 5))
    float_mask[0] = -np.inf
    with pytest.raises(ValueError, match=r"masks every key for the query at index \(0,\)"):
        scaled_dot_product_attention(q, k, k, attn_mask=float_mask)


def test_scaled_dot_product_attention_module():
    attention = ScaledDotProductAttention(dropout=0.5)
    q = tt.randn(2, 5, 4)
    mask = causal_mask(5)
    train = attention(q, q, q, mask)
    attention.eval()
    np.testing.assert_allclose(attention(q, q, q, mask).numpy(), scaled_dot_product_attention(q, q, q, is_causal=True).numpy(), rtol=1e-6)
    assert not np.allclose(train.numpy(), attention(q, q, q, mask).numpy())  # dropout only while training


# -- heads ------------------------------------------------------------------------------------------
def test_split_and_merge_heads_are_inverse_layout_changes():
    x = tt.tensor(np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6))
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(heads.numpy()[1, 1, 2], x.numpy()[1, 2, 3:])  # head 1 = features 3..5
    np.testing.assert_array_equal(merge_heads(heads).numpy(), x.numpy())
    with pytest.raises(ValueError, match="embed_dim 6 is not divisible by num_heads=4"):
        split_heads(x, 4)
    gradcheck(lambda t: merge_heads(split_heads(t, 3) * 2.0), leaf(_randn(2, 2, 6)), name="split/merge heads")


# -- MultiHeadAttention against PyTorch --------------------------------------------------------------
def _pair(torch, embed_dim, num_heads, bias=True, kdim=None, vdim=None, batch_first=True):
    theirs = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias, kdim=kdim, vdim=vdim,
                                         batch_first=batch_first, dtype=torch.float64)
    ours = MultiheadAttention(embed_dim, num_heads, bias=bias, kdim=kdim, vdim=vdim, batch_first=batch_first).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _compare(torch, ours, theirs, inputs, cot_seed=5, **kwargs):
    """Run both with the same inputs and masks; compare outputs, weights, input and parameter gradients."""
    import warnings

    warnings.filterwarnings("ignore", "Support for mismatched key_padding_mask and attn_mask", UserWarning)
    ours_in = _leaves(*inputs)
    theirs_in = [torch.tensor(a, requires_grad=True) for a in inputs]
    torch_kwargs = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    if kwargs.get("is_causal") and kwargs.get("attn_mask") is None:  # PyTorch wants the mask beside the hint
        L, S = inputs[0].shape[-2], inputs[min(1, len(inputs) - 1)].shape[-2]
        torch_kwargs["attn_mask"] = torch.tensor(~np.tri(L, S, dtype=bool))
    need_weights = kwargs.get("need_weights", False)
    got = ours(*ours_in, **kwargs)
    expected, expected_weights = theirs(*(theirs_in * (3 // len(inputs))), **torch_kwargs)
    out, weights = got if need_weights else (got, None)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    if need_weights:
        np.testing.assert_allclose(weights.numpy(), expected_weights.detach().numpy(), rtol=1e-10, atol=1e-12)
    cot = _randn(*out.shape, seed=cot_seed)
    out.backward(cot)
    expected.backward(torch.tensor(cot))
    for a, b in zip(ours_in, theirs_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def test_torch_state_dict_loads_as_it_is(torch):
    ours, theirs = _pair(torch, 8, 2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert set(ours.state_dict()) == {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}
    cross, theirs_cross = _pair(torch, 8, 2, kdim=5, vdim=3)
    assert set(cross.state_dict()) == set(theirs_cross.state_dict())


MASKS = ["none", "causal", "bool_attn", "float_attn_3d", "key_padding", "both"]


def _masks(kind, B, H, L, S, rng):
    if kind == "none":
        return {}
    if kind == "causal":
        return {"is_causal": True}
    if kind == "bool_attn":
        mask = rng.random((L, S)) < 0.3
        mask[:, 0] = False
        return {"attn_mask": mask}
    if kind == "float_attn_3d":
        return {"attn_mask": rng.standard_normal((B * H, L, S))}
    padding = np.zeros((B, S), bool)
    padding[0, 1:] = True  # the first sequence has one real key
    if kind == "key_padding":
        return {"key_padding_mask": padding}
    return {"key_padding_mask": padding, "attn_mask": np.where((rng.random((L, S)) < 0.3) & (np.arange(S) > 0), -np.inf, 0.0)}


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("masks", MASKS)
def test_self_attention_matches_torch(torch, masks, need_weights):
    ours, theirs = _pair(torch, 12, 3)
    rng = np.random.default_rng(len(masks))
    _compare(torch, ours, theirs, [_randn(2, 5, 12)], need_weights=need_weights, **_masks(masks, 2, 3, 5, 5, rng))


@pytest.mark.parametrize("masks", ["none", "key_padding", "float_attn_3d"])
def test_cross_attention_matches_torch(torch, masks):
    ours, theirs = _pair(torch, 8, 2)
    rng = np.random.default_rng(1)
    inputs = [_randn(3, 4, 8), _randn(3, 6, 8, seed=1), _randn(3, 6, 8, seed=2)]
    _compare(torch, ours, theirs, inputs, need_weights=masks == "none", **_masks(masks, 3, 2, 4, 6, rng))


def test_kdim_vdim_unbatched_and_sequence_first_match_torch(torch):
    ours, theirs = _pair(torch, 6, 2, kdim=4, vdim=3, bias=False)
    _compare(torch, ours, theirs, [_randn(2, 3, 6), _randn(2, 5, 4, seed=1), _randn(2, 5, 3, seed=2)])
    ours, theirs = _pair(torch, 6, 3)
    _compare(torch, ours, theirs, [_randn(4, 6)], need_weights=True, average_attn_weights=False)
    ours, theirs = _pair(torch, 6, 3, batch_first=False)
    _compare(torch, ours, theirs, [_randn(4, 2, 6)], key_padding_mask=np.array([[False] * 4, [False, False, True, True]]))


@settings(max_examples=8)
@given(B=st.integers(1, 2), L=st.integers(1, 4), S=st.integers(1, 4), H=st.sampled_from([1, 2]),
       D=st.integers(1, 3), kind=st.sampled_from(MASKS), seed=st.integers(0, 2**16))
def test_attention_on_drawn_shapes_and_masks_matches_torch(B, L, S, H, D, kind, seed):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    rng = np.random.default_rng(seed)
    ours, theirs = _pair(torch, H * D, H)
    if kind == "causal":
        S = L
    inputs = [rng.standard_normal((B, L, H * D))] + ([] if S == L and kind == "causal" else [rng.standard_normal((B, S, H * D))] * 2)
    _compare(torch, ours, theirs, inputs, need_weights=bool(seed % 2), **_masks(kind, B, H, L, S, rng))


def test_multi_head_attention_gradcheck_with_dropout_off_and_on():
    mha = MultiHeadAttention(4, 2)
    gradcheck_module(mha, _randn(2, 3, 4))
    mha = MultiHeadAttention(4, 2, dropout=0.3).double()

    def attend(x, *params):
        tt.manual_seed(11)
        return mha(x, is_causal=True)

    gradcheck(attend, leaf(_randn(1, 4, 4)), *mha.parameters(), name="MultiHeadAttention with dropout")


def test_multi_head_attention_reference_backend_agrees():
    mha = MultiHeadAttention(8, 2)
    x = tt.randn(2, 6, 8)
    compiled = mha(x, is_causal=True).numpy()
    with kernels.use("reference"):
        np.testing.assert_allclose(mha(x, is_causal=True).numpy(), compiled, rtol=1e-5, atol=1e-6)


def test_multi_head_attention_dropout_only_in_training():
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = tt.randn(2, 6, 8)
    tt.manual_seed(1)
    a = mha(x).numpy()
    tt.manual_seed(1)
    np.testing.assert_array_equal(mha(x).numpy(), a)
    mha.eval()
    plain = mha(x).numpy()
    assert not np.allclose(plain, a)
    np.testing.assert_array_equal(mha(x).numpy(), plain)


def test_seed_course_spelling_and_repr():
    mha = MultiHeadAttention(d_model=16, num_heads=4)
    assert mha.embed_dim == 16 and mha.head_dim == 4
    assert repr(mha).startswith("MultiHeadAttention(\n  embed_dim=16, num_heads=4")
    assert mha.num_parameters() == 4 * 16 * 16 + 4 * 16
    assert MultiheadAttention is MultiHeadAttention and tt.MultiheadAttention is MultiHeadAttention


def test_multi_head_attention_errors_name_the_shapes():
    with pytest.raises(ValueError, match="embed_dim=10 is not divisible by num_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="embed_dim=8 and d_model=16 disagree"):
        MultiHeadAttention(8, 2, d_model=16)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"got query of shape \(2, 5, 6\); expected \(B, T, 8\)"):
        mha(tt.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"key of shape \(2, 4, 8\) and value of shape \(2, 3, 8\) must have the same"):
        mha(tt.randn(2, 5, 8), tt.randn(2, 4, 8), tt.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 5\) does not fit: expected \(5, 4\)"):
        mha(tt.randn(2, 5, 8), tt.randn(2, 4, 8), tt.randn(2, 4, 8), attn_mask=np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 5\) does not fit: expected \(2, 4\)"):
        mha(tt.randn(2, 5, 8), tt.randn(2, 4, 8), tt.randn(2, 4, 8), key_padding_mask=np.zeros((2, 5), bool))
    with pytest.raises(ValueError, match=r"masks every key for the query at index \(1, 0, 0\)"):
        mha(tt.randn(2, 5, 8), key_padding_mask=np.array([[False] * 5, [True] * 5]))
    with pytest.raises(TypeError, match="got query of dtype float64, but its parameters are float32"):
        mha(tt.randn(2, 5, 8, dtype=np.float64))
