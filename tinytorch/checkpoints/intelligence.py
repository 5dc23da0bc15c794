"""Checkpoint 02, Intelligence: "Can I add nonlinearity — the key to neural network intelligence?"

Led to by lesson 03 (``leaky_relu``, ``softmax``, ``log_softmax``). First, the student's
``Softmax`` and ``LogSoftmax`` must turn scores as large as 1,000 into finite probabilities that
sum to one. Then two classes of points lie on two concentric rings, which no straight line
separates. A linear classifier is trained on them, then the same classifier with hidden layers
and the student's ``LeakyReLU`` between them; both end in the student's ``LogSoftmax``. The
nonlinear network must classify held-out points almost perfectly, the linear one must not: the
difference is what nonlinearity buys.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.loop import fit_full_batch
from tinytorch.checkpoints.probe import Probe

STEPS = 200


def rings(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on two noisy concentric rings (radius 1 and 2.2), labelled 0 (inner) and 1 (outer)."""
    labels = rng.integers(0, 2, size=n)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    radius = np.where(labels == 0, 1.0, 2.2) + rng.normal(0, 0.2, size=n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32), labels


def train(model, x, y, steps: int) -> None:
    import tinytorch as tt

    fit_full_batch(model, tt.Adam(model.parameters(), lr=0.03), tt.NLLLoss(), x, y, steps)


def accuracy_of(model, x, y) -> float:
    import tinytorch as tt

    with tt.no_grad():
        return float((model(tt.tensor(x)).data.argmax(axis=1) == y).mean())


def run(probe: Probe) -> None:
    import tinytorch as tt

    rng = np.random.default_rng(0)
    probe.step("turning scores into probabilities with Softmax and LogSoftmax (logits up to 1000)")
    logits = rng.standard_normal((64, 5)).astype(np.float32) * np.float32(1000) ** rng.uniform(0, 1, (64, 1)).astype(np.float32)
    with tt.no_grad():
        probabilities = tt.Softmax(axis=-1)(tt.tensor(logits)).data
        log_probabilities = tt.LogSoftmax(axis=-1)(tt.tensor(logits)).data
    probe.check("every probability and log-probability is finite", bool(np.isfinite(probabilities).all() and np.isfinite(log_probabilities).all()),
                "exp overflowed: subtract each row's maximum first")
    probe.measure("largest |row sum - 1| of the probabilities", float(np.abs(probabilities.sum(axis=1) - 1).max()), at_most=1e-5)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probe.measure("largest |log_softmax - the formula|", float(np.abs(log_probabilities - expected).max()), at_most=1e-3)

    x_train, y_train = rings(400, rng)
    x_test, y_test = rings(400, rng)
    probe.step(f"training a linear classifier on two rings ({STEPS} Adam steps)")
    linear = tt.Sequential(tt.Dense(2, 2), tt.LogSoftmax(axis=-1))
    train(linear, x_train, y_train, STEPS)
    linear_accuracy = probe.measure("linear model, held-out accuracy", accuracy_of(linear, x_test, y_test), at_most=0.8)

    probe.step(f"training the same classifier with two hidden layers and LeakyReLU ({STEPS} Adam steps)")
    net = tt.Sequential(
        tt.Dense(2, 16), tt.LeakyReLU(0.1), tt.Dense(16, 16), tt.LeakyReLU(0.1), tt.Dense(16, 2), tt.LogSoftmax(axis=-1)
    )
    train(net, x_train, y_train, STEPS)
    accuracy = probe.measure("nonlinear network, held-out accuracy", accuracy_of(net, x_test, y_test), at_least=0.95, headline=True)
    probe.measure("accuracy gained by nonlinearity", accuracy - linear_accuracy, at_least=0.15)
