"""Checkpoint 15, Capstone: "Can I build complete end-to-end ML systems from scratch?"

Led to by lesson 16 (``encode``, ``decode``, ``sample_next_token``, ``attention_step``). The
course's two systems, in miniature, from raw files to a saved model that answers; with a workspace,
on every function of the student's from lessons 01 to 16 (the CNN's convolutions on their
``im2col``, Adam on their update, CIFAR-10 read by their record parser, and so on).

A character-level TinyGPT: Tiny Shakespeare is tokenized with the student's ``encode``, and every
character must come back through their ``decode``. The model trains for a few seconds and must
predict held-out Shakespeare better than a model that knows only how often each character occurs
(a held-out loss at least 0.3 nats per character below that unigram model's). It is saved and
loaded back (tokenizer included) and must score the same. Generation then runs on the student's
KV-cache attention (``attention_step``): feeding a text one token at a time must give the logits
of running the model over all of it, and a sampled continuation must be the same with and without
the cache; their ``sample_next_token`` must draw characters with the model's probabilities (at
temperature 1, at 0.7 and with top-k 5).

A CNN on CIFAR-10 photographs: two convolution stages and a classifier train for two epochs on
4,000 photographs, are saved as a checkpoint file, loaded into a fresh network, and must classify
at least 30 % of 1,000 others correctly (three times chance; the network sees each photograph
twice), the same as before saving.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinytorch.checkpoints.data import real_images, shakespeare
from tinytorch.checkpoints.loop import held_out_accuracy, train_epochs
from tinytorch.checkpoints.probe import Probe

# TinyGPT: one block of width 64 over 32-character windows (about 60,000 parameters)
CONTEXT, GPT_BATCH, GPT_STEPS, GPT_LR = 32, 32, 150, 0.02
TRAIN_CHARS, HELD_OUT_CHARS, HELD_OUT_WINDOWS = 500_000, 100_000, 64
DRAWS = 20_000
# CNN: CIFAR-10's test split, 4,000 photographs to learn from and 1,000 others to score on
CNN_TRAIN, CNN_HELD_OUT, CNN_EPOCHS, CNN_WIDTH = 4000, 1000, 2, 8


def windows(ids: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, CONTEXT) starting at ``starts`` and their targets, the same windows one token later."""
    rows = starts[:, None] + np.arange(CONTEXT)
    return ids[rows], ids[rows + 1]


def held_out_loss(model, ids: np.ndarray, starts: np.ndarray) -> float:
    import tinytorch as tt

    model.eval()
    with tt.no_grad():
        _, loss = model(*windows(ids, starts))
    return float(loss.item())


def total_variation(drawn: np.ndarray, probabilities: np.ndarray) -> float:
    """Half the summed gap between how often each token was drawn and its probability."""
    frequencies = np.bincount(np.asarray(drawn).ravel(), minlength=len(probabilities))[: len(probabilities)] / np.size(drawn)
    return 0.5 * float(np.abs(frequencies - probabilities).sum()) if np.size(drawn) == DRAWS else float("nan")


def softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max())
    return e / e.sum()


def cifar_cnn():
    import tinytorch as tt

    w = CNN_WIDTH
    return tt.Sequential(
        tt.Conv2D(3, w, kernel_size=3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Conv2D(w, 2 * w, kernel_size=3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(2 * w * 8 * 8, 10),
    )


def language_model(probe: Probe, scratch: Path) -> None:
    import tinytorch as tt
    from tinytorch.tinygpt import CharTokenizer, TinyGPT, decode, sample_next_token

    text = shakespeare()
    train_text, held_text = text[:TRAIN_CHARS], text[-HELD_OUT_CHARS:]
    probe.step(f"tokenizing {len(train_text) + len(held_text):,} characters of Tiny Shakespeare with encode")
    tokenizer = CharTokenizer.from_text(text)
    ids, held = (np.asarray(tokenizer.encode(part)) for part in (train_text, held_text))
    expected = np.searchsorted(np.array(tokenizer.chars), np.array(list(held_text)))
    probe.check("every character's id is its place in the sorted vocabulary", ids.shape == (len(train_text),)
                and np.array_equal(held, expected), f"encode gave {held[:8].tolist()} for {held_text[:8]!r}; expected {expected[:8].tolist()}")
    probe.check("decode gives the text back", decode(held, tokenizer.chars) == held_text,
                f"decode of the ids of {held_text[:20]!r} gave {decode(held[:20], tokenizer.chars)!r}")

    counts = np.bincount(ids, minlength=tokenizer.vocab_size) + 1  # add-one: a character unseen in training still has a chance
    unigram = float(-np.log(counts / counts.sum())[held].mean())
    starts = np.random.default_rng(1).integers(0, len(held) - CONTEXT - 1, HELD_OUT_WINDOWS)

    probe.step(f"training a TinyGPT (1 block, width 64) for {GPT_STEPS} AdamW steps on {GPT_BATCH} windows of {CONTEXT} characters")
    tt.manual_seed(0)
    model = TinyGPT(tokenizer.vocab_size, d_model=64, num_heads=2, num_layers=1, max_length=CONTEXT, tokenizer=tokenizer)
    optimizer, rng = tt.AdamW(model.parameters(), lr=GPT_LR, weight_decay=0.0), np.random.default_rng(0)
    for _ in range(GPT_STEPS):
        optimizer.zero_grad()
        _, loss = model(*windows(ids, rng.integers(0, len(ids) - CONTEXT - 1, GPT_BATCH)))
        loss.backward()
        optimizer.step()
    loss = held_out_loss(model, held, starts)
    probe.measure("TinyGPT held-out loss", loss, at_most=unigram - 0.3, unit="nats/char", headline=True)
    probe.measure("below the unigram model's", unigram - loss, at_least=0.3, unit="nats/char")

    probe.step("saving the model with its tokenizer and loading it back")
    model.save(scratch / "tinygpt.npz")
    model = TinyGPT.load(scratch / "tinygpt.npz")
    probe.check("the loaded model scores the same", model.tokenizer == tokenizer and held_out_loss(model, held, starts) == loss,
                "its tokenizer or its held-out loss differs from the saved model's")

    probe.step("generating through the KV cache (attention_step) and sampling with sample_next_token")
    window = held[starts[0]:starts[0] + CONTEXT]
    with tt.no_grad():
        full = model(window[None]).data
    cache = model.new_cache()
    pieces = [model.forward_cached(window[None, :8], cache).data]
    pieces += [model.forward_cached(window[None, i:i + 1], cache).data for i in range(8, CONTEXT)]
    probe.measure("largest |cached - full| logit, 8 tokens then 24 one at a time",
                  float(np.abs(np.concatenate(pieces, axis=1) - full).max()), at_most=1e-4)
    prompt = held_text[starts[0]:starts[0] + 8]
    cached, recomputed = model.generate(prompt, 24, seed=0), model.generate(prompt, 24, seed=0, use_cache=False)
    probe.check("a sampled continuation is the same with and without the cache", cached == recomputed,
                f"with the cache: {cached!r}; without: {recomputed!r}")
    probe.step(f"the model writes: {model.generate(chr(10), 80, seed=1)!r}")

    scores = full[0, -1].astype(np.float64)
    k5 = np.where(scores >= np.sort(scores)[-5], scores, -np.inf)
    for name, options, probabilities in (
        ("temperature 1", {}, softmax(scores)),
        ("temperature 0.7", {"temperature": 0.7}, softmax(scores / 0.7)),
        ("top-k 5", {"top_k": 5}, softmax(k5)),
    ):
        drawn = sample_next_token(np.tile(scores, (DRAWS, 1)), rng=np.random.default_rng(3), **options)
        probe.measure(f"{DRAWS:,} draws at {name}: total variation from the model's probabilities",
                      total_variation(drawn, probabilities), at_most=0.03)
    probe.check("temperature 0 picks the most likely character", sample_next_token(scores, temperature=0) == int(scores.argmax()),
                f"got {sample_next_token(scores, temperature=0)!r}, expected {int(scores.argmax())}")


def image_classifier(probe: Probe, scratch: Path) -> None:
    import tinytorch as tt

    x_train, y_train, x_test, y_test = real_images("cifar10", CNN_TRAIN, CNN_HELD_OUT)
    probe.step(f"training a CNN on {CNN_TRAIN} CIFAR-10 photographs for {CNN_EPOCHS} epochs")
    tt.manual_seed(0)
    model = cifar_cnn()
    optimizer = tt.Adam(model.parameters(), lr=0.003)
    loader = tt.DataLoader(x_train, y_train, batch_size=50, shuffle=True, seed=0)
    train_epochs(model, optimizer, tt.CrossEntropyLoss(), loader, CNN_EPOCHS)
    before = held_out_accuracy(model, x_test, y_test)

    probe.step("saving it as a checkpoint file and loading it into a fresh network")
    tt.save_checkpoint(scratch / "cnn.npz", model, optimizer, epoch=CNN_EPOCHS)
    fresh = cifar_cnn()
    tt.load_checkpoint(scratch / "cnn.npz", fresh)
    accuracy = held_out_accuracy(fresh, x_test, y_test)
    probe.measure(f"reloaded CNN: accuracy on {CNN_HELD_OUT} held-out photographs", accuracy, at_least=0.3)
    probe.check("the reloaded CNN classifies as the trained one", accuracy == before, f"{accuracy} after loading, {before} before saving")


def run(probe: Probe) -> None:
    with tempfile.TemporaryDirectory(prefix="tinytorch-checkpoint-15-") as scratch:
        language_model(probe, Path(scratch))
        image_classifier(probe, Path(scratch))
