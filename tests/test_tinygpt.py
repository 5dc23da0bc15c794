"""TinyGPT (lesson 16): tokenizer, sampling, blocks, the model against PyTorch, the KV cache, generation, saving."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.core.checkpoint import CheckpointError, save_checkpoint
from tinytorch.testing import gradcheck
from tinytorch.tinygpt import (
    CharTokenizer,
    KVCache,
    MultiHeadAttention,
    TinyGPT,
    TransformerBlock,
    attention_step,
    component_reuse,
    decode,
    encode,
    sample_next_token,
)

from .layer_checks import TORCH_REASON, gradcheck_module, torch  # noqa: F401  (torch is a fixture)
from .strategies import leaf

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def _model(dtype=np.float32, **kwargs) -> TinyGPT:
    config = dict(vocab_size=11, d_model=8, num_heads=2, num_layers=2, max_length=6) | kwargs
    return TinyGPT(**config).to(dtype)


# -- tokenizer ---------------------------------------------------------------------------------------
def test_char_tokenizer_round_trip_and_sorted_vocabulary():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.chars == sorted(set(TEXT)) and tok.vocab_size == len(set(TEXT)) == len(tok)
    ids = tok.encode("hear me")
    assert ids.dtype == np.int64 and ids.tolist() == [tok.chars.index(c) for c in "hear me"]
    assert tok.decode(ids) == "hear me" and tok.decode(tt.tensor(ids)) == "hear me"


def test_unknown_characters_are_an_error_or_the_unknown_token():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"character 'z' at position 2 is not in the vocabulary of 3 characters"):
        tok.encode("abz")
    lenient = CharTokenizer.from_text("abc", unknown="?")
    assert lenient.vocab_size == 4 and lenient.decode(lenient.encode("abzc")) == "ab?c"
    assert tok.fit("zz").chars == ["a", "b", "c", "z"] and tok.decode(tok.encode("abz")) == "abz"


def test_tokenizer_saves_as_json_and_loads(tmp_path):
    tok = CharTokenizer.from_text(TEXT + "é", unknown="~")
    path = tmp_path / "tok.json"
    tok.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["chars"] == "".join(tok.chars)
    assert CharTokenizer.load(path) == tok
    path.write_text('{"chars": "ab"}')
    with pytest.raises(ValueError, match="not a saved CharTokenizer"):
        CharTokenizer.load(path)


def test_encode_decode_functions():
    assert encode("cab", "abc").tolist() == [2, 0, 1]
    assert decode([2, 0, 1], ["a", "b", "c"]) == "cab"
    with pytest.raises(ValueError, match=r"token ids must be integers in \[0, 3\)"):
        decode([3], "abc")


# -- sampling ---------------------------------------------------------------------------------------
def test_greedy_and_top_k_1_take_the_best_token():
    logits = np.array([[0.1, 2.0, -1.0, 1.9], [3.0, 0.0, 0.0, 0.0]])
    assert sample_next_token(logits, temperature=0).tolist() == [1, 0]
    rng = np.random.default_rng(0)
    assert all(sample_next_token(logits[0], top_k=1, rng=rng) == 1 for _ in range(20))


def test_sampling_follows_the_distribution_and_its_restrictions():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs)
    rows = np.tile(logits, (20000, 1))
    rng = np.random.default_rng(0)
    counts = np.bincount(sample_next_token(rows, rng=rng), minlength=4) / len(rows)
    np.testing.assert_allclose(counts, probs, atol=0.015)
    # temperature 0.5 squares the probabilities (renormalised)
    sharp = probs**2 / (probs**2).sum()
    counts = np.bincount(sample_next_token(rows, temperature=0.5, rng=rng), minlength=4) / len(rows)
    np.testing.assert_allclose(counts, sharp, atol=0.015)
    top2 = np.bincount(sample_next_token(rows, top_k=2, rng=rng), minlength=4) / len(rows)
    np.testing.assert_allclose(top2, [0.625, 0.375, 0, 0], atol=0.015)
    nucleus = np.bincount(sample_next_token(rows, top_p=0.7, rng=rng), minlength=4) / len(rows)
    np.testing.assert_allclose(nucleus, [0.625, 0.375, 0, 0], atol=0.015)  # 0.5 < 0.7 <= 0.5 + 0.3
    assert set(sample_next_token(rows[:500], top_p=0.5, rng=rng).tolist()) == {0}


def test_sampling_is_reproducible_and_checks_its_arguments():
    logits = np.random.default_rng(3).standard_normal((4, 9))
    a = sample_next_token(logits, rng=np.random.default_rng(5))
    assert np.array_equal(a, sample_next_token(logits, rng=np.random.default_rng(5)))
    tt.manual_seed(2)
    b = sample_next_token(logits)
    tt.manual_seed(2)
    assert np.array_equal(b, sample_next_token(logits))
    for bad, match in [(dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p")]:
        with pytest.raises(ValueError, match=match):
            sample_next_token(logits, **bad)
    with pytest.raises(ValueError, match=r"expected logits of shape \(V,\) or \(B, V\)"):
        sample_next_token(np.zeros((2, 2, 2)))


# -- the cached attention step ------------------------------------------------------------------------
@settings(max_examples=15)
@given(b=st.integers(1, 2), h=st.integers(1, 2), d=st.integers(1, 3), cuts=st.lists(st.integers(1, 3), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_attention_step_in_pieces_equals_causal_attention(b, h, d, cuts, seed):
    total = sum(cuts)
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((b, h, total, d)) for _ in range(3))
    expected = scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    cache_k, cache_v = np.zeros((b, h, total + 2, d)), np.zeros((b, h, total + 2, d))
    start, pieces = 0, []
    for n in cuts:
        part = slice(start, start + n)
        pieces.append(attention_step(q[:, :, part], k[:, :, part], v[:, :, part], cache_k, cache_v, start))
        start += n
    np.testing.assert_allclose(np.concatenate(pieces, axis=2), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cache_k[:, :, :total], k)
    with pytest.raises(ValueError, match="do not fit in a cache"):
        attention_step(*[np.zeros((b, h, 3, d))] * 3, cache_k, cache_v, total)  # 3 more do not fit in total + 2


# -- blocks and the model -----------------------------------------------------------------------------
def test_transformer_block_gradients():
    block = TransformerBlock(4, 2, d_ff=6)
    gradcheck_module(block, np.random.default_rng(0).standard_normal((2, 3, 4)))


def test_transformer_block_is_pre_layer_norm_causal():
    block = TransformerBlock(8, 2)
    x = tt.randn(1, 5, 8)
    expected = x + block.attn(block.ln1(x), is_causal=True)
    expected = expected + block.mlp(block.ln2(expected))
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), rtol=1e-6)
    changed = x.numpy().copy()
    changed[0, 3:] += 1.0  # the future must not change the past
    np.testing.assert_allclose(block(tt.tensor(changed)).numpy()[0, :3], block(x).numpy()[0, :3], rtol=1e-6)


def test_tinygpt_structure_parameters_and_initialisation():
    model = TinyGPT(65, d_model=32, num_heads=4, num_layers=3, max_length=16)
    d, v, L = 32, 65, 3
    per_block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert model.num_parameters() == v * d + 16 * d + L * per_block + 2 * d  # the tied head adds nothing
    assert model.head.weight is model.token_embedding.weight
    names = model.state_dict()
    assert "head.weight" in names and "blocks.2.attn.in_proj_weight" in names and "blocks.0.mlp.2.weight" in names
    assert model.token_embedding.weight.numpy().std() == pytest.approx(0.02, rel=0.1)
    assert model.blocks[0].mlp[2].weight.numpy().std() == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.1)
    untied = TinyGPT(65, d_model=32, num_heads=4, num_layers=3, max_length=16, tie_weights=False)
    assert untied.num_parameters() == model.num_parameters() + v * d


def test_tinygpt_forward_loss_and_errors():
    model = _model()
    ids = np.random.default_rng(0).integers(0, 11, (3, 6))
    logits, loss = model(ids, ids)
    assert logits.shape == (3, 6, 11)
    log_probs = logits.numpy() - np.log(np.exp(logits.numpy()).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, ids[..., None], -1).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert model(ids[0]).shape == (1, 6, 11)
    with pytest.raises(ValueError, match=r"a sequence of 7 tokens; the model has positions for max_length=6"):
        model(np.zeros((1, 7), dtype=np.int64))
    with pytest.raises(IndexError, match=r"indices must be in \[0, 11\)"):
        model(np.array([[11]]))
    with pytest.raises(ValueError, match="expected token ids"):
        model(np.zeros((1, 2), dtype=np.float32))


def test_tinygpt_gradients_match_finite_differences():
    model = TinyGPT(5, d_model=4, num_heads=2, num_layers=1, max_length=3, d_ff=4).double()
    ids = np.array([[1, 4, 0], [2, 2, 3]])
    params = model.parameters()
    gradcheck(lambda *ps: model(ids), *params, name="TinyGPT")


@pytest.mark.parametrize("bias", [True, False])
def test_tinygpt_matches_torch_logits_and_gradients(torch, bias):
    from benchmarks.torch_gpt import TorchGPT

    config = dict(vocab_size=13, d_model=12, num_heads=3, num_layers=2, max_length=7, bias=bias)
    ours = TinyGPT(**config).double()
    theirs = TorchGPT(**config).double()
    assert set(theirs.state_dict()) == set(ours.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ids = np.random.default_rng(0).integers(0, 13, (2, 7))
    logits, loss = ours(ids, ids)
    expected = theirs(torch.from_numpy(ids))
    expected_loss = torch.nn.functional.cross_entropy(expected.reshape(-1, 13), torch.from_numpy(ids).reshape(-1))
    np.testing.assert_allclose(logits.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    loss.backward()
    expected_loss.backward()
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_benchmark_weights_fit_both_models_exactly(torch):
    """benchmarks/gpt_specs.py's weights load into TinyGPT and TorchGPT alike, tied head included, so the
    TinyGPT benchmark times the same model on both sides."""
    from benchmarks import gpt_specs
    from benchmarks.torch_gpt import TorchGPT

    state = gpt_specs.gpt_state()
    ours, theirs = TinyGPT(**gpt_specs.GPT), TorchGPT(**gpt_specs.GPT)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in state.items()}
    ours.load_state_dict(state)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert ours.head.weight is ours.token_embedding.weight and theirs.head.weight is theirs.token_embedding.weight
    x, y = gpt_specs.token_batch(2, 16)
    logits, _ = ours(x, y)
    np.testing.assert_allclose(logits.numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


# -- KV cache and generation ---------------------------------------------------------------------------
@settings(max_examples=10)
@given(cuts=st.lists(st.integers(1, 3), min_size=1, max_size=4).filter(lambda c: sum(c) <= 6), seed=st.integers(0, 99))
def test_feeding_tokens_in_pieces_through_the_cache_gives_the_full_forward(cuts, seed):
    model = _model(np.float64, bias=seed % 2 == 0)  # without biases too: the cached path's LayerNorms then have no shift
    ids = np.random.default_rng(seed).integers(0, 11, (2, sum(cuts)))
    cache = model.new_cache(2)
    start, pieces = 0, []
    for n in cuts:
        pieces.append(model.forward_cached(ids[:, start:start + n], cache).numpy())
        start += n
    assert cache.length == sum(cuts)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), model(ids).numpy(), rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def counting_model() -> TinyGPT:
    """A tiny model trained to continue 0, 1, ..., 10, 0, 1, ...: its greedy continuation changes at every
    step (an untrained one repeats a single token), so a cache that went wrong would show."""
    tt.manual_seed(0)
    model = _model()
    optimizer = tt.AdamW(model.parameters(), lr=3e-2)
    cycle, rng = np.arange(200) % 11, np.random.default_rng(0)
    for _ in range(60):
        starts = rng.integers(0, 190, 8)
        optimizer.zero_grad()
        _, loss = model(np.stack([cycle[s:s + 6] for s in starts]), np.stack([cycle[s + 1:s + 7] for s in starts]))
        loss.backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_greedy_generation_with_the_cache_is_exactly_the_uncached_one(counting_model, dtype):
    model = copy.deepcopy(counting_model).to(dtype)
    prompt = np.array([3, 1, 4])
    cached = model.generate(prompt, max_new_tokens=12, temperature=0, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=12, temperature=0, use_cache=False)
    assert cached.shape == (15,) and len(set(cached[3:].tolist())) > 6  # not stuck on one token
    np.testing.assert_array_equal(cached, uncached)  # 15 tokens > max_length 6: the window slid 9 times


def test_sampled_generation_is_reproducible_and_cache_independent(counting_model):
    model = counting_model
    prompts = np.array([[1, 2], [5, 6]])
    a = model.generate(prompts, 10, temperature=3.0, top_k=5, top_p=0.95, seed=4)
    assert a.shape == (2, 12) and np.array_equal(a[:, :2], prompts)
    np.testing.assert_array_equal(a, model.generate(prompts, 10, temperature=3.0, top_k=5, top_p=0.95, seed=4, use_cache=False))
    assert not np.array_equal(a, model.generate(prompts, 10, temperature=3.0, top_k=5, top_p=0.95, seed=5))


def test_generate_takes_text_with_a_tokenizer_and_restores_training_mode():
    tok = CharTokenizer.from_text(TEXT)
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_length=8, dropout=0.5, tokenizer=tok)
    text = model.generate("hear", max_new_tokens=5, seed=0)
    assert text.startswith("hear") and len(text) == 9 and set(text) <= set(TEXT)
    assert model.training and text == model.generate("hear", max_new_tokens=5, seed=0)  # dropout is off while generating
    with pytest.raises(ValueError, match="a text prompt needs a tokenizer"):
        _model().generate("abc", 3)
    with pytest.raises(ValueError, match="the prompt is empty"):
        _model().generate([], 3)
    with pytest.raises(ValueError, match="the tokenizer has"):
        TinyGPT(3, tokenizer=tok)


def test_kv_cache_memory_is_two_tensors_per_layer():
    model = TinyGPT(65, d_model=32, num_heads=4, num_layers=3, max_length=16)
    cache = model.new_cache(batch=2)
    assert isinstance(cache, KVCache) and cache.nbytes == 2 * 3 * 2 * 16 * 32 * 4
    assert repr(cache) == "KVCache(length=0/16, 0.02 MiB)"


# -- saving and reuse ------------------------------------------------------------------------------
def test_save_and_load_with_the_tokenizer(tmp_path):
    tok = CharTokenizer.from_text(TEXT)
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=2, max_length=8, tokenizer=tok, tie_weights=False)
    path = tmp_path / "tinygpt.npz"
    model.save(path, val_loss=1.5)
    with np.load(path, allow_pickle=False) as archive:  # a safe checkpoint: nothing pickled
        assert "model/head.weight" in archive.files
    loaded = TinyGPT.load(path)
    assert loaded.tokenizer == tok and loaded.config == model.config and loaded.saved_extra == {"val_loss": 1.5}
    ids = tok.encode("hear me")[None]
    np.testing.assert_array_equal(loaded(ids).numpy(), model(ids).numpy())
    assert loaded.generate("hear", 6, seed=1) == model.generate("hear", 6, seed=1)
    other = tmp_path / "other.npz"
    save_checkpoint(other, tt.Dense(2, 2))
    with pytest.raises(CheckpointError, match="not of a TinyGPT"):
        TinyGPT.load(other)


def test_component_reuse_counts_the_framework_classes():
    model = TinyGPT(65, d_model=16, num_heads=2, num_layers=2, max_length=8)
    reuse = component_reuse(model)
    # per block: TransformerBlock (new) + ln1, attn, out_proj, attn_dropout, ln2, mlp, fc, GELU, proj, dropout (reused)
    assert reuse["modules"] == (2 * 10 + 6, 2 * 11 + 7)  # TinyGPT itself and its two blocks are the new classes
    assert reuse["parameters"] == (model.num_parameters(), model.num_parameters())
    assert MultiHeadAttention is tt.MultiHeadAttention
