"""Checkpoint 09, Optimization: "Can I optimize neural networks with sophisticated algorithms?"

Led to by lesson 10 (``adam_update``, ``cosine_lr``, ``clip_grad_norm_``). A regression whose
features differ in scale by a factor of 1,000 is badly conditioned: plain gradient descent, at
the largest rate that does not diverge, crawls along the small directions. Adam (every step
through the student's ``adam_update``), with a warm-up and cosine schedule (their ``cosine_lr``)
and gradient clipping (their ``clip_grad_norm_``), must fit it within the same number of steps,
and do at least 100 times better than gradient descent.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.checkpoints.probe import Probe

STEPS, FEATURES, SAMPLES = 300, 8, 256


def problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features whose scales span 1,000x, and noise-free targets of a fixed linear model."""
    scales = np.logspace(-1.5, 1.5, FEATURES)
    x = (rng.standard_normal((SAMPLES, FEATURES)) * scales).astype(np.float32)
    true_w = rng.standard_normal((1, FEATURES)) / scales
    return x, (x @ true_w.T).astype(np.float32)


def fit(optimizer_of, x: np.ndarray, y: np.ndarray, clip: float | None = None, schedule=None):
    """Train a Dense(FEATURES -> 1) for STEPS steps; return (initial loss, final loss, the model)."""
    import tinytorch as tt

    tt.manual_seed(0)
    model, loss_fn = tt.Dense(FEATURES, 1), tt.MSELoss()
    optimizer = optimizer_of(model.parameters())
    scheduler = schedule(optimizer) if schedule else None
    inputs, targets = tt.tensor(x), tt.tensor(y)
    with tt.no_grad():
        initial = float(loss_fn(model(inputs), targets).item())
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        if clip is not None:
            tt.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    with tt.no_grad():
        final = float(loss_fn(model(inputs), targets).item())
    return initial, final, model


def run(probe: Probe) -> None:
    import tinytorch as tt

    rng = np.random.default_rng(0)
    x, y = problem(rng)

    probe.step("clipping a real gradient with clip_grad_norm_")
    model, loss_fn = tt.Dense(FEATURES, 1), tt.MSELoss()
    loss_fn(model(tt.tensor(x)), tt.tensor(y)).backward()
    norm_before = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in model.parameters()))
    returned = tt.clip_grad_norm_(model.parameters(), 1.0)
    norm_after = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in model.parameters()))
    probe.measure("norm returned / norm before clipping", float(returned) / norm_before, at_least=0.9999, at_most=1.0001)
    probe.measure("gradient norm after clipping to 1", norm_after, at_most=1.0 + 1e-4)

    # The largest stable rate of gradient descent on a least-squares loss is 2 / (largest curvature).
    curvature = 2 * np.linalg.eigvalsh(np.c_[x, np.ones(SAMPLES)].T @ np.c_[x, np.ones(SAMPLES)] / SAMPLES).max()
    sgd_lr = float(1.0 / curvature)
    probe.step(f"gradient descent, {STEPS} steps at its best safe rate ({sgd_lr:.2g})")
    start, sgd_final, _ = fit(lambda params: tt.SGD(params, lr=sgd_lr), x, y)
    probe.measure("gradient descent: final loss / initial loss", sgd_final / start)

    probe.step(f"Adam with warm-up and cosine decay and clipping, {STEPS} steps")
    lrs = []

    def schedule(optimizer):
        scheduler = tt.WarmupCosineLR(optimizer, warmup_steps=20, total_steps=STEPS, min_lr=1e-3)
        lrs.append(optimizer.param_groups[0]["lr"])
        return scheduler

    _, adam_final, _ = fit(lambda params: tt.Adam(params, lr=0.3), x, y, clip=10.0, schedule=schedule)
    probe.measure("Adam: final loss / initial loss", adam_final / start, at_most=1e-3, headline=True)
    probe.measure("gradient descent's final loss / Adam's", sgd_final / max(adam_final, 1e-30), at_least=100)
    probe.measure("first learning rate of the warm-up / peak", lrs[0] / 0.3, at_most=0.1)
