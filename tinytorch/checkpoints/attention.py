"""Checkpoint 06, Attention: "Can I build attention mechanisms for sequence understanding?"

Led to by lesson 07 (``scaled_dot_product_attention``, ``causal_mask``, ``split_heads``). First
the student's functions are compared with their definitions: the causal mask with ``j <= i``, the
head split with its reshape and transpose, and attention with ``softmax(QKᵀ·scale + mask)·V`` on
plain, scaled, masked (boolean and float), causal and overflowing (scores of a million) inputs.

Then a small causal self-attention model learns *associative recall*, a task only attention can
solve: a sequence lists five key-value pairs (``c 3 a 7 f 1 ...``) and ends with one of the keys;
the model must answer that key's value. Each position sees its own token and the one before it (so
a value's position knows its key), and the query's answer is wherever the matching key is, so the
model must find it by content. The attention in the model is the student's: their ``split_heads``
splits the heads, their ``causal_mask`` is the mask, their ``scaled_dot_product_attention`` mixes
the values in the forward pass, and gives the attention weights for the backward pass too (the
weights are attention with the identity matrix as the values). It must answer at least 90 % of
1,000 new sequences; the same trained model, with attention limited to each token itself, must
fall to near chance (1/8); and changing the tokens after a position must change nothing the model
computes at or before it (the causal mask keeps the future hidden).
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import Probe

KEYS, PAIRS, WIDTH, HEADS, STEPS, BATCH, LR = 8, 5, 32, 2, 120, 64, 0.01
VOCAB = 2 * KEYS  # keys are tokens 0..7, values 8..15
START = VOCAB  # the "previous token" of the first position
TRAIN, HELD_OUT = 4000, 1000


def recall_sequences(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` sequences ``k1 v1 ... k5 v5 q`` (distinct keys, q one of them) and the value of each q."""
    keys = np.argsort(rng.random((count, KEYS)), axis=1)[:, :PAIRS]
    values = rng.integers(0, KEYS, (count, PAIRS)) + KEYS
    asked = rng.integers(0, PAIRS, count)
    sequences = np.empty((count, 2 * PAIRS + 1), dtype=np.int64)
    sequences[:, 0:-1:2], sequences[:, 1:-1:2], sequences[:, -1] = keys, values, keys[np.arange(count), asked]
    return sequences, values[np.arange(count), asked]


def reference_attention(q, k, v, mask=None, causal=False, scale=None) -> np.ndarray:
    """``softmax(q @ kᵀ * scale + mask) @ v`` in float64, each row's maximum subtracted before ``exp``."""
    scores = (q @ np.swapaxes(k, -1, -2)) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if causal:
        mask = np.tri(q.shape[-2], k.shape[-2], dtype=bool)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, T, D) -> (B, T, H * D): undoes the head split (the split_heads check holds the student to its layout)."""
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def attention_op():
    """An autograd op for multi-head attention on the student's split_heads and scaled_dot_product_attention."""
    from tinytorch.core import attention, exercises
    from tinytorch.core.autograd import Function

    split_heads = exercises.implementation(attention.split_heads)  # not routed by the framework: asked for by name

    def attend(q, k, v, mask):
        return np.asarray(attention.scaled_dot_product_attention(q, k, v, attn_mask=mask), dtype=np.float64)

    class StudentAttention(Function):
        @staticmethod
        def forward(ctx, q, k, v, heads, mask):
            qh, kh, vh = (np.asarray(split_heads(x, heads), dtype=np.float64) for x in (q, k, v))
            ctx.save_for_backward(qh, kh, vh)
            ctx.mask = mask
            return merge_heads(attend(qh, kh, vh, mask)).astype(q.dtype)

        @staticmethod
        def backward(ctx, grad):
            qh, kh, vh = ctx.saved
            s = kh.shape[-2]
            weights = attend(qh, kh, np.broadcast_to(np.eye(s), (*kh.shape[:-2], s, s)), ctx.mask)  # P = attention(Q, K, I)
            g = grad.reshape(*grad.shape[:2], qh.shape[1], -1).transpose(0, 2, 1, 3).astype(np.float64)
            dv = np.swapaxes(weights, -1, -2) @ g
            dp = g @ np.swapaxes(vh, -1, -2)
            ds = weights * (dp - (dp * weights).sum(axis=-1, keepdims=True)) / np.sqrt(qh.shape[-1])
            return tuple(merge_heads(x).astype(grad.dtype) for x in (ds @ kh, np.swapaxes(ds, -1, -2) @ qh, dv))

    return StudentAttention


def recall_model():
    """Token and previous-token embeddings, one causal multi-head attention layer (the student's), a head."""
    import tinytorch as tt

    attend = attention_op()

    class Recall(tt.Module):
        def __init__(self):
            super().__init__()
            self.token, self.previous = tt.Embedding(VOCAB + 1, WIDTH), tt.Embedding(VOCAB + 1, WIDTH)
            self.query, self.key, self.value = (tt.Dense(WIDTH, WIDTH, bias=False) for _ in range(3))
            self.out, self.head = tt.Dense(WIDTH, WIDTH), tt.Dense(WIDTH, VOCAB)

        def forward(self, ids: np.ndarray, mask: np.ndarray):
            before = np.concatenate([np.full((len(ids), 1), START), ids[:, :-1]], axis=1)
            x = self.token(ids) + self.previous(before)
            mixed = attend.apply(self.query(x), self.key(x), self.value(x), heads=HEADS, mask=mask)
            return self.head(x + self.out(mixed))  # (B, T, VOCAB): every position's scores

    return Recall()


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core import attention, exercises

    probe.step("checking causal_mask against j <= i")
    wrong = []
    for call in ((1,), (5,), (2 * PAIRS + 1,), (3, 7), (6, 2)):
        got, want = np.asarray(attention.causal_mask(*call)), np.tri(call[0], call[-1], dtype=bool)
        if got.dtype != np.bool_ or not np.array_equal(got, want):
            shown = got.astype(int).tolist() if got.size <= 25 else f"an array of shape {got.shape} and dtype {got.dtype}"
            wrong.append(f"causal_mask{call!r}".replace(",)", ")") + f" gave {shown}; expected {want.astype(int).tolist()}")
    probe.check("every causal mask is a boolean j <= i", not wrong, wrong[0] if wrong else "")

    probe.step("checking split_heads against its reshape and transpose")
    split_heads = exercises.implementation(attention.split_heads)
    x = np.random.default_rng(1).standard_normal((2, 5, 12))
    wrong = []
    for heads in (1, 3, 4):
        got, want = np.asarray(split_heads(x, heads)), x.reshape(2, 5, heads, 12 // heads).transpose(0, 2, 1, 3)
        if not np.array_equal(got, want):
            found = f"shape {got.shape}; expected {want.shape}" if got.shape != want.shape else "the right shape, other values"
            wrong.append(f"split_heads(x of shape (2, 5, 12), {heads}) gave {found}")
    probe.check("head h holds features h*D .. (h+1)*D-1 of every token", not wrong, "; ".join(wrong))

    probe.step("comparing scaled_dot_product_attention with softmax(QKᵀ·scale + mask)·V")
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 6))
    allowed = rng.random((3, 5)) < 0.6
    allowed[:, 0] = True
    bias, square, big = rng.standard_normal((3, 5)), rng.standard_normal((1, 2, 4, 3)), np.full((1, 2, 2), 1000.0)
    cases = [
        ((q, k, v), {}, reference_attention(q, k, v)),
        ((q, k, v), {"scale": 0.3}, reference_attention(q, k, v, scale=0.3)),
        ((q, k, v), {"attn_mask": allowed}, reference_attention(q, k, v, allowed)),
        ((q, k, v), {"attn_mask": bias}, reference_attention(q, k, v, bias)),
        ((square, square, square), {"is_causal": True}, reference_attention(square, square, square, causal=True)),
        ((big, big, big), {}, big),
    ]
    errors = [np.abs(np.asarray(attention.scaled_dot_product_attention(*args, **kw), dtype=np.float64) - want).max()
              for args, kw, want in cases]
    probe.measure("largest |attention - reference| (plain, scaled, masked, causal, overflowing)",
                  float(np.max(errors)) if np.all(np.isfinite(errors)) else float("nan"), at_most=1e-6)

    probe.step(f"training one causal attention layer on associative recall ({PAIRS} key-value pairs, then a key), {STEPS} Adam steps")
    data = np.random.default_rng(0)
    x_train, y_train = recall_sequences(TRAIN, data)
    x_test, y_test = recall_sequences(HELD_OUT, data)
    length = x_train.shape[1]
    causal = np.asarray(attention.causal_mask(length), dtype=bool)
    model = recall_model()
    optimizer, loss_fn = tt.Adam(model.parameters(), lr=LR), tt.CrossEntropyLoss()
    for _ in range(STEPS):
        rows = data.integers(0, TRAIN, BATCH)
        optimizer.zero_grad()
        loss = loss_fn(model(x_train[rows], causal)[:, -1], y_train[rows])
        loss.backward()
        optimizer.step()
    probe.measure("last training loss", float(loss.item()), at_most=0.5)
    model.eval()
    with tt.no_grad():
        scores = model(x_test, causal).data
        alone = model(x_test, np.eye(length, dtype=bool)).data[:, -1].argmax(axis=-1)
        changed = x_test.copy()
        changed[:, 6:] = recall_sequences(HELD_OUT, data)[0][:, 6:]  # new tokens from position 6 on
        moved = np.abs(model(changed, causal).data[:, :6] - scores[:, :6]).max()
    probe.measure(f"value recalled for {HELD_OUT} new sequences", float((scores[:, -1].argmax(axis=-1) == y_test).mean()),
                  at_least=0.9, headline=True)
    probe.measure("recalled with attention limited to each token itself (chance is 0.125)", float((alone == y_test).mean()),
                  at_most=0.3)
    probe.measure("largest change at positions 0-5 when positions 6 on change", float(moved), at_most=1e-5)
