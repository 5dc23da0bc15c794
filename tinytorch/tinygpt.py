"""TinyGPT (lesson 16): a character-level GPT built from the framework's own pieces.

The model is a stack of pre-LayerNorm transformer blocks between a token + position embedding
and a linear head that scores the next character:

    x = token_embedding[idx] + position_embedding[0..T-1]            (B, T, d_model)
    x = x + attention(ln1(x))      causal: token t sees tokens 0..t    (each block)
    x = x + mlp(ln2(x))            Dense -> GELU -> Dense
    logits = head(ln_f(x))                                            (B, T, vocab_size)

Every layer in it is a class the earlier lessons built (Embedding, LayerNorm, MultiHeadAttention,
Dense, GELU, Dropout, Sequential); this file adds the tokenizer, the block, the model, sampling,
and the KV cache that makes generation cost one token's work per new token.

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> tokenizer = CharTokenizer.from_text("to be or not to be")
>>> model = TinyGPT(tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=2, max_length=32, tokenizer=tokenizer)
>>> model(tokenizer.encode("to be")[None]).shape                  # (batch, tokens, vocabulary)
(1, 5, 7)
>>> len(model.generate("to be", max_new_tokens=10, seed=0))       # the prompt and 10 new characters
15
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .core import kernels
from .core.activations import GELU
from .core.attention import MultiHeadAttention
from .core.autograd import no_grad
from .core.checkpoint import CheckpointError, load_state, save_state
from .core.exercises import exercise
from .core.init import normal_, zeros_
from .core.layers import Dense, Dropout, Embedding, LayerNorm, linear
from .core.losses import cross_entropy
from .core.module import Module
from .core.networks import Sequential
from .core.random import generator
from .core.tensor import Tensor

__all__ = [
    "CharTokenizer",
    "encode",
    "decode",
    "sample_next_token",
    "attention_step",
    "KVCache",
    "TransformerBlock",
    "TinyGPT",
    "MultiHeadAttention",
    "component_reuse",
]

TOKENIZER_FORMAT = "tinytorch-char-tokenizer"


# -- characters <-> token ids -------------------------------------------------------------------------
@exercise
def encode(text: str, vocab: Sequence[str]) -> np.ndarray:
    """The token id of each character of ``text``: its position in ``vocab``.

    Parameters
    ----------
    text : str
        Any string made of characters in ``vocab``.
    vocab : sequence of str
        The vocabulary, one character per entry (a string works: ``"abc"``).

    Returns
    -------
    np.ndarray
        int64, shape (len(text),).

    Raises
    ------
    ValueError
        A character that is not in ``vocab``; the message names it and where it is.
    """
    index = {c: i for i, c in enumerate(vocab)}
    try:
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError as error:
        char = error.args[0]
        raise ValueError(
            f"encode: character {char!r} at position {text.index(char)} is not in the vocabulary of {len(index)} characters"
        ) from None


@exercise
def decode(ids: Iterable[int] | np.ndarray | Tensor, vocab: Sequence[str]) -> str:
    """The text of a sequence of token ids: ``"".join(vocab[i] for i in ids)``.

    Raises ``ValueError`` for an id outside ``[0, len(vocab))``.
    """
    values = np.asarray(ids.data if isinstance(ids, Tensor) else ids).reshape(-1)
    if values.size and (values.dtype.kind not in "iu" or values.min() < 0 or values.max() >= len(vocab)):
        raise ValueError(f"decode: token ids must be integers in [0, {len(vocab)}), got {values.tolist()[:10]}")
    return "".join(vocab[i] for i in values.tolist())


class CharTokenizer:
    """One token per character, ids in sorted character order (nanoGPT's character-level scheme).

    Parameters
    ----------
    chars : str or sequence of str
        The vocabulary: distinct single characters. Ids follow their sorted order.
    unknown : str, optional
        A character to use for any character not in the vocabulary (added to it when missing).
        Without one, an unknown character is an error.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.vocab_size, tok.chars
    (4, ['e', 'h', 'l', 'o'])
    >>> tok.encode("hole").tolist()
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, chars: str | Sequence[str] = (), unknown: str | None = None):
        chars = list(chars)
        if unknown is not None:
            if not isinstance(unknown, str) or len(unknown) != 1:
                raise ValueError(f"CharTokenizer: unknown must be one character, got {unknown!r}")
            chars.append(unknown)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"CharTokenizer: every vocabulary entry must be one character, got {bad[:5]}")
        self.chars: list[str] = sorted(set(chars))
        self.unknown = unknown
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str, unknown: str | None = None) -> CharTokenizer:
        """A tokenizer whose vocabulary is every distinct character of ``text``."""
        return cls(set(text), unknown=unknown)

    def fit(self, text: str) -> CharTokenizer:
        """Add the characters of ``text`` to the vocabulary (ids are re-sorted); returns self."""
        self.__init__(set(self.chars) | set(text), unknown=self.unknown)
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids of ``text``; an unknown character becomes ``unknown``'s id, or is an error without one."""
        if self.unknown is not None:
            text = "".join(c if c in self.stoi else self.unknown for c in text)
        return encode(text, self.chars)

    def decode(self, ids: Iterable[int] | np.ndarray | Tensor) -> str:
        return decode(ids, self.chars)

    def to_dict(self) -> dict:
        """The tokenizer as JSON-able data: a format tag, the characters and the unknown character."""
        return {"format": TOKENIZER_FORMAT, "chars": "".join(self.chars), "unknown": self.unknown}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        if not isinstance(data, dict) or data.get("format") != TOKENIZER_FORMAT or not isinstance(data.get("chars"), str):
            raise ValueError(f"CharTokenizer.from_dict: not a saved CharTokenizer: {str(data)[:80]}")
        return cls(list(data["chars"]), unknown=data.get("unknown"))

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (atomically: a temporary file renamed into place)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"CharTokenizer.load: {path} is not JSON ({error})") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and (self.chars, self.unknown) == (other.chars, other.unknown)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# -- sampling ---------------------------------------------------------------------------------------
@exercise
def sample_next_token(
    logits: np.ndarray | Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> int | np.ndarray:
    """Draw the next token from the model's scores for it.

    Parameters
    ----------
    logits : ndarray or Tensor
        (V,) scores of the V possible tokens, or (B, V) for a batch.
    temperature : float
        The logits are divided by it before the softmax: below 1 sharpens the distribution, above 1
        flattens it. 0 means greedy: the highest-scoring token, no randomness.
    top_k : int, optional
        Keep only the k highest-scoring tokens (ties with the k-th are kept too).
    top_p : float, optional
        Nucleus sampling: keep the smallest set of most likely tokens whose probabilities add up to
        at least ``top_p`` (always at least one token). Applied after ``top_k``.
    rng : numpy.random.Generator, optional
        Where the uniform draw comes from (one draw per row); the framework's generator when None.

    Returns
    -------
    int or ndarray
        The token id, or an int64 array of B ids for batched logits.
    """
    scores = np.asarray(logits.data if isinstance(logits, Tensor) else logits, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[-1] == 0:
        raise ValueError(f"sample_next_token: expected logits of shape (V,) or (B, V), got {scores.shape}")
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"sample_next_token: temperature must be >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"sample_next_token: top_k must be a positive integer, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"sample_next_token: top_p must be in (0, 1], got {top_p!r}")
    rows = scores.reshape(-1, scores.shape[-1])
    if temperature == 0:
        chosen = rows.argmax(axis=-1)
    else:
        rows = rows / temperature
        if top_k is not None and top_k < rows.shape[-1]:
            kth = np.partition(rows, -top_k, axis=-1)[:, -top_k:].min(axis=-1, keepdims=True)
            rows = np.where(rows >= kth, rows, -np.inf)
        probs = np.exp(rows - rows.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        if top_p is not None and top_p < 1.0:
            order = np.argsort(-probs, axis=-1, kind="stable")
            sorted_probs = np.take_along_axis(probs, order, axis=-1)
            before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the more likely tokens
            keep = np.zeros_like(probs, dtype=bool)
            np.put_along_axis(keep, order, before < top_p, axis=-1)
            probs = np.where(keep, probs, 0.0)
            probs /= probs.sum(axis=-1, keepdims=True)
        cumulative = np.cumsum(probs, axis=-1)
        draws = (rng if rng is not None else generator()).random(len(rows))
        # the first token whose cumulative probability passes the draw (clipped: rounding may leave the total at 1 - 1e-16)
        chosen = np.minimum((cumulative < (draws * cumulative[:, -1])[:, None]).sum(axis=-1), rows.shape[-1] - 1)
    chosen = chosen.astype(np.int64)
    return int(chosen[0]) if scores.ndim == 1 else chosen


# -- the KV cache --------------------------------------------------------------------------------------
@exercise
def attention_step(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, cache_k: np.ndarray, cache_v: np.ndarray, length: int
) -> np.ndarray:
    """Attend new queries to everything cached so far, after adding the new keys and values to the cache.

    Parameters
    ----------
    q, k, v : ndarray
        (B, H, t, D): the queries, keys and values of t new tokens, at positions length .. length+t-1.
    cache_k, cache_v : ndarray
        (B, H, max_length, D) buffers holding the keys and values of positions 0 .. length-1. The
        new keys and values are written into positions length .. length+t-1, in place.
    length : int
        How many positions the cache held before this step.

    Returns
    -------
    ndarray
        (B, H, t, D): new token i (at position length + i) attends to the cached positions
        0 .. length + i, with the usual 1/sqrt(D) scaling: exactly what causal attention over the
        whole sequence gives for those rows.
    """
    t = q.shape[-2]
    end = length + t
    if end > cache_k.shape[-2]:
        raise ValueError(f"attention_step: {t} new token(s) after {length} do not fit in a cache of {cache_k.shape[-2]} positions")
    cache_k[..., length:end, :] = k
    cache_v[..., length:end, :] = v
    return kernels.attention_cached(q, cache_k, cache_v, end)


class KVCache:
    """The keys and values every layer computed for the tokens seen so far, preallocated.

    Generating token n+1 needs the keys and values of tokens 0..n in every layer; they do not change
    once computed (a token only attends to the past), so the cache keeps them and each step computes
    only the new token's. Memory: 2 * num_layers * batch * max_length * d_model numbers.
    """

    def __init__(self, num_layers: int, batch: int, num_heads: int, max_length: int, head_dim: int, dtype: Any = np.float32):
        shape = (num_layers, batch, num_heads, max_length, head_dim)
        self.keys = np.zeros(shape, dtype=dtype)
        self.values = np.zeros(shape, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self.keys.shape[3]

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes

    def reset(self) -> None:
        """Forget every cached position (the buffers are kept and overwritten)."""
        self.length = 0

    def __repr__(self) -> str:
        return f"KVCache(length={self.length}/{self.max_length}, {self.nbytes / 2**20:.2f} MiB)"


# -- the model --------------------------------------------------------------------------------------
class TransformerBlock(Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``.

    ``attn`` is causal multi-head self-attention; ``mlp`` is Dense(d_model -> d_ff), GELU,
    Dense(d_ff -> d_model), Dropout. Normalising before each sub-layer (GPT-2's arrangement, not
    the original Transformer's) leaves the residual path untouched from input to output, which
    keeps deep stacks trainable without warm-up tricks.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int | None = None, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.ln1 = LayerNorm(d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.ln2 = LayerNorm(d_model, bias=bias)
        self.mlp = Sequential(Dense(d_model, d_ff, bias=bias), GELU(), Dense(d_ff, d_model, bias=bias), Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> the same shape."""
        x = x + self.attn_dropout(self.attn(self.ln1(x), is_causal=True))
        return x + self.mlp(self.ln2(x))

    def step(self, x: np.ndarray, keys: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
        """The block on the arrays of t new tokens that follow ``length`` cached ones (generation; no graph).

        ``keys`` and ``values`` are this block's (B, H, max_length, D) part of a :class:`KVCache`; the
        new tokens' keys and values are written into it. It computes what :meth:`forward` computes for
        those positions (in evaluation mode) but on NumPy arrays and the kernels directly: a generated
        token costs a few dozen small operations, and the autograd machinery around each of them,
        needed only for training, would cost more than the arithmetic.
        """
        attn = self.attn
        b, t, e = x.shape
        qkv = _dense(_layer_norm(self.ln1, x), attn.in_proj_weight, attn.in_proj_bias)  # (B, t, 3E)
        q, k, v = qkv.reshape(b, t, 3, attn.num_heads, attn.head_dim).transpose(2, 0, 3, 1, 4)  # each (B, H, t, D)
        # a student's attention_step (lesson 16) may compute in float64: the block goes on in its own dtype
        heads = np.asarray(attention_step(q, k, v, keys, values, length), dtype=x.dtype)  # (B, H, t, D)
        x = x + _dense(heads.transpose(0, 2, 1, 3).reshape(b, t, e), attn.out_proj.weight, attn.out_proj.bias)
        fc, gelu, proj, _ = self.mlp  # Dense, GELU, Dense, Dropout (off while generating)
        hidden = kernels.gelu_forward(_dense(_layer_norm(self.ln2, x), fc.weight, fc.bias), gelu.approximate)
        return x + _dense(hidden, proj.weight, proj.bias)


def _dense(x: np.ndarray, weight: Tensor, bias: Tensor | None) -> np.ndarray:
    """``x @ weight.T + bias`` on arrays: a Dense layer's arithmetic without a graph."""
    out = x @ weight.data.T
    if bias is not None:
        out += bias.data
    return out


def _layer_norm(norm: LayerNorm, x: np.ndarray) -> np.ndarray:
    """A LayerNorm over the last axis, on arrays, through the layer-norm kernel."""
    w, b = norm.weight, norm.bias
    y, _, _ = kernels.layer_norm_forward(x.reshape(-1, x.shape[-1]), None if w is None else w.data,
                                         None if b is None else b.data, norm.eps)
    return y.reshape(x.shape)


class TinyGPT(Module):
    """A character-level GPT: token and position embeddings, ``num_layers`` blocks, a final LayerNorm, a head.

    Parameters
    ----------
    vocab_size : int
        V, how many distinct tokens (characters) there are.
    d_model : int
        The width of every token's vector.
    num_heads : int
        Attention heads per block (d_model must be divisible by it).
    num_layers : int
        Transformer blocks.
    max_length : int
        The longest context (block size): position embeddings exist for positions 0..max_length-1.
    dropout : float
        Dropout after the embeddings, on the attention weights and on each residual branch.
    d_ff : int, optional
        Hidden width of each block's MLP (4 * d_model when None).
    tie_weights : bool
        The head reuses the token embedding matrix (V, d_model) as its weight, as GPT-2 does: one
        matrix both reads and writes tokens.
    bias : bool
        Biases in the Dense layers, the projections and the LayerNorms (``False`` is nanoGPT's default).
    tokenizer : CharTokenizer, optional
        Kept with the model, so ``generate`` takes text and ``save`` stores it.

    Weights start as GPT-2's: N(0, 0.02) for embeddings and projections, N(0, 0.02 / sqrt(2 *
    num_layers)) for the projections that write into the residual stream, zero biases.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        max_length: int = 128,
        dropout: float = 0.0,
        d_ff: int | None = None,
        tie_weights: bool = True,
        bias: bool = True,
        tokenizer: CharTokenizer | None = None,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("d_model", d_model), ("num_heads", num_heads),
                            ("num_layers", num_layers), ("max_length", max_length)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TinyGPT: {name} must be a positive integer, got {value!r}")
        if tokenizer is not None and tokenizer.vocab_size != vocab_size:
            raise ValueError(f"TinyGPT: the tokenizer has {tokenizer.vocab_size} tokens but vocab_size is {vocab_size}")
        self.config = dict(vocab_size=int(vocab_size), d_model=int(d_model), num_heads=int(num_heads),
                           num_layers=int(num_layers), max_length=int(max_length), dropout=float(dropout),
                           d_ff=None if d_ff is None else int(d_ff), tie_weights=bool(tie_weights), bias=bool(bias))
        self.vocab_size, self.d_model, self.max_length = int(vocab_size), int(d_model), int(max_length)
        self.tokenizer = tokenizer
        self.token_embedding = Embedding(vocab_size, d_model)
        self.position_embedding = Embedding(max_length, d_model)
        self.dropout = Dropout(dropout)
        self.blocks = Sequential(*(TransformerBlock(d_model, num_heads, d_ff, dropout, bias) for _ in range(num_layers)))
        self.ln_f = LayerNorm(d_model, bias=bias)
        self.head = Dense(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.token_embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (see the class docstring)."""
        residual_std = 0.02 / math.sqrt(2 * len(self.blocks))
        for module in self.modules():
            if isinstance(module, (Dense, Embedding)):
                normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    zeros_(module.bias)
            elif isinstance(module, MultiHeadAttention):
                normal_(module.in_proj_weight, 0.0, 0.02)
                if module.in_proj_bias is not None:
                    zeros_(module.in_proj_bias)
        for block in self.blocks:
            normal_(block.attn.out_proj.weight, 0.0, residual_std)
            normal_(block.mlp[2].weight, 0.0, residual_std)

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab_size={c['vocab_size']}, d_model={c['d_model']}, num_heads={c['num_heads']}, "
                f"num_layers={c['num_layers']}, max_length={c['max_length']}")

    # -- forward ---------------------------------------------------------------------------------------
    def _ids(self, idx: Any) -> np.ndarray:
        ids = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"TinyGPT: expected token ids of shape (B, T) (integers), got shape {ids.shape} of {ids.dtype}")
        return ids

    def _check_fits(self, tokens: int) -> None:
        if tokens > self.max_length:
            raise ValueError(
                f"TinyGPT got a sequence of {tokens} tokens; the model has positions for max_length={self.max_length} "
                "(crop the context to its last max_length tokens)"
            )

    def _embed(self, ids: np.ndarray) -> Tensor:
        self._check_fits(ids.shape[1])
        positions = self.position_embedding(np.arange(ids.shape[1]))  # (T, d_model), broadcast over the batch
        return self.dropout(self.token_embedding(ids) + positions)

    def forward(self, idx: Any, targets: Any = None) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, T, V) for token ids ``idx`` (B, T); with ``targets`` (B, T) also the mean cross-entropy.

        ``logits[b, t]`` scores the token that follows ``idx[b, :t + 1]``.
        """
        ids = self._ids(idx)
        x = self._embed(ids)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        labels = self._ids(targets)
        if labels.shape != ids.shape:
            raise ValueError(f"TinyGPT: targets of shape {labels.shape} must match idx of shape {ids.shape}")
        b, t, v = logits.shape
        return logits, cross_entropy(logits.reshape(b * t, v), labels.reshape(-1))

    def new_cache(self, batch: int = 1) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences of up to ``max_length`` tokens."""
        attn = self.blocks[0].attn
        return KVCache(len(self.blocks), batch, attn.num_heads, self.max_length, attn.head_dim, self.ln_f.weight.dtype)

    @no_grad()
    def forward_cached(self, idx: Any, cache: KVCache) -> Tensor:
        """Logits (B, t, V) of t new tokens that follow the ``cache.length`` tokens already in ``cache``.

        The new tokens' keys and values are added to the cache. It runs in evaluation mode (no
        dropout) and builds no graph: this is for generation. Feeding a sequence in pieces gives the
        same logits as :meth:`forward` on all of it.
        """
        ids = self._ids(idx)
        t = ids.shape[1]
        self._check_fits(cache.length + t)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise IndexError(f"TinyGPT.forward_cached got token id {int(ids.min() if ids.min() < 0 else ids.max())}; "
                             f"ids must be in [0, {self.vocab_size})")
        x = self.token_embedding.weight.data[ids] + self.position_embedding.weight.data[cache.length:cache.length + t]
        for i, block in enumerate(self.blocks):
            x = block.step(x, cache.keys[i], cache.values[i], cache.length)
        cache.length += t
        logits = _layer_norm(self.ln_f, x) @ self.head.weight.data.T
        return Tensor(logits, dtype=logits.dtype)

    # -- generation ------------------------------------------------------------------------------------
    def _prompt(self, prompt: Any) -> tuple[np.ndarray, str]:
        """(ids (B, T), kind): kind is "text", "1d" or "2d", the form the result is returned in."""
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ValueError("TinyGPT.generate: a text prompt needs a tokenizer (TinyGPT(..., tokenizer=...)); or pass token ids")
            return self.tokenizer.encode(prompt)[None], "text"
        ids = np.asarray(prompt.data if isinstance(prompt, Tensor) else prompt)
        kind = "1d" if ids.ndim == 1 else "2d"
        ids = self._ids(ids).astype(np.int64, copy=False)
        if ids.shape[1] == 0:
            raise ValueError("TinyGPT.generate: the prompt is empty; give at least one token")
        return ids, kind

    @no_grad()
    def generate(
        self,
        prompt: str | Sequence[int] | np.ndarray | Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> str | np.ndarray:
        """Continue ``prompt`` by ``max_new_tokens`` tokens, one at a time, each sampled from the model.

        Parameters
        ----------
        prompt : str, sequence of int, ndarray or Tensor
            Text (needs the model's tokenizer), token ids (T,), or a batch of them (B, T).
        max_new_tokens : int
            How many tokens to add.
        temperature, top_k, top_p : see :func:`sample_next_token`
            ``temperature=0`` is greedy decoding.
        seed : int, optional
            Seed of the sampling draws, for a reproducible result; the framework's generator when None.
        use_cache : bool
            Keep every layer's keys and values (:class:`KVCache`) so each step computes one token;
            without it each step runs the model over the whole context again. Both give the same
            tokens. Past ``max_length`` tokens the context window slides, every position shifts,
            and the cache is rebuilt from the window at each step.

        Returns
        -------
        str or ndarray
            The prompt followed by the new tokens: text for a text prompt, else int64 ids of shape
            (T + max_new_tokens,) or (B, T + max_new_tokens).
        """
        ids, kind = self._prompt(prompt)
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(f"TinyGPT.generate: max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
        rng = np.random.default_rng(seed) if seed is not None else None
        was_training = self.training
        self.eval()
        try:
            generated = [ids]
            cache = self.new_cache(len(ids)) if use_cache and max_new_tokens else None
            context = ids[:, -self.max_length:]
            for step in range(max_new_tokens):
                if cache is None:
                    logits = self(context)
                elif step == 0 or cache.length == self.max_length:
                    cache.reset()  # the first step, or the window slid: every cached position is stale
                    logits = self.forward_cached(context, cache)
                else:
                    logits = self.forward_cached(context[:, -1:], cache)
                token = sample_next_token(logits.data[:, -1], temperature, top_k, top_p, rng)
                generated.append(token[:, None])
                context = np.concatenate([context, token[:, None]], axis=1)[:, -self.max_length:]
        finally:
            self.train(was_training)
        out = np.concatenate(generated, axis=1)
        if kind == "text":
            return self.tokenizer.decode(out[0])
        return out[0] if kind == "1d" else out

    # -- saving ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """Save the weights, the configuration and the tokenizer in one safe checkpoint (``.npz`` + JSON, no pickle).

        ``extra`` values (numbers, strings, lists; e.g. the validation loss) are stored beside them.
        """
        state = {"format": "tinygpt", "config": self.config, "model": self.state_dict(),
                 "tokenizer": None if self.tokenizer is None else self.tokenizer.to_dict(), "extra": extra}
        save_state(path, state)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TinyGPT:
        """Rebuild a model saved with :meth:`save`, tokenizer included; ``model.saved_extra`` holds the extras."""
        state = load_state(path)
        if state.get("format") != "tinygpt" or "config" not in state:
            raise CheckpointError(f"TinyGPT.load: {path} is a checkpoint, but not of a TinyGPT (saved by TinyGPT.save)")
        tokenizer = None if state.get("tokenizer") is None else CharTokenizer.from_dict(state["tokenizer"])
        model = cls(**state["config"], tokenizer=tokenizer)
        try:
            model.load_state_dict(state["model"])
        except ValueError as error:
            raise CheckpointError(f"TinyGPT.load: {path} does not fit its own configuration: {error}") from None
        model.saved_extra = state.get("extra", {})
        return model


def component_reuse(model: Module) -> dict[str, tuple[int, int]]:
    """How much of ``model`` is the framework's existing classes (those defined in ``tinytorch.core``).

    Returns ``{"modules": (reused, total), "parameters": (reused, total)}``: modules counted once
    each; parameters counted in numbers, each credited to the module that owns it directly.
    """
    modules = model.modules()
    reused = [m for m in modules if type(m).__module__.startswith("tinytorch.core.")]
    seen: set[int] = set()
    owned_by_reused = total = 0
    for m in modules:
        for p in m._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            total += p.size
            if type(m).__module__.startswith("tinytorch.core."):
                owned_by_reused += p.size
    return {"modules": (len(reused), len(modules)), "parameters": (owned_by_reused, total)}
