"""Checkpoint 03, Components: "Can I build the fundamental building blocks of neural networks?"

Led to by lesson 04 (``kaiming_uniform_bound``, ``linear``, ``layer_norm``). ``Dense`` layers are
initialised with the student's bound, compute with their ``linear`` and normalise with their
``layer_norm``; the block must compute what the formulas say, pass a numerical gradient check in
float64, and learn: a Dense layer trained by gradient descent must recover the weights of a noisy
linear relation.
"""

from __future__ import annotations

import math

import numpy as np

from tinytorch.checkpoints.probe import Probe


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.testing import GradcheckError, gradcheck

    rng = np.random.default_rng(0)

    probe.step("initialising a Dense(400 -> 300) layer")
    layer = tt.Dense(400, 300)
    bound = 1 / math.sqrt(400)  # Kaiming-uniform with a = sqrt(5), PyTorch's default
    weights = layer.weight.data
    probe.measure("largest |weight| / bound", float(np.abs(weights).max()) / bound, at_most=1 + 1e-6)
    probe.measure("weight std / (bound / sqrt(3))", float(weights.std()) / (bound / math.sqrt(3)), at_least=0.97, at_most=1.03)

    probe.step("computing a Dense -> LayerNorm block and comparing with the formulas")
    dense, norm = tt.Dense(6, 5), tt.LayerNorm(5)
    norm.weight.data[...] = rng.uniform(0.5, 1.5, 5)
    norm.bias.data[...] = rng.normal(size=5)
    x = rng.standard_normal((7, 6)).astype(np.float32)
    with tt.no_grad():
        hidden = dense(tt.tensor(x)).data
        out = norm(tt.tensor(hidden)).data
    expected_hidden = x @ dense.weight.data.T + dense.bias.data
    probe.measure("Dense: largest error against x @ W.T + b", float(np.abs(hidden - expected_hidden).max()), at_most=1e-5)
    mean, var = expected_hidden.mean(axis=1, keepdims=True), expected_hidden.var(axis=1, keepdims=True)
    expected_out = (expected_hidden - mean) / np.sqrt(var + 1e-5) * norm.weight.data + norm.bias.data
    probe.measure("LayerNorm: largest error against the formula", float(np.abs(out - expected_out).max()), at_most=1e-4)

    probe.step("checking the block's gradients numerically (float64)")
    block = tt.Sequential(tt.Dense(4, 5), tt.Tanh(), tt.LayerNorm(5), tt.Dense(5, 3)).double()
    inputs = tt.tensor(rng.standard_normal((3, 4)), dtype=tt.float64, requires_grad=True)
    try:
        gradcheck(lambda x, *params: block(x), inputs, *block.parameters(), name="Dense-Tanh-LayerNorm-Dense")
        probe.check("gradients of inputs and all 6 parameters match finite differences", True)
    except GradcheckError as error:
        probe.check("gradients match finite differences", False, str(error))

    probe.step("recovering the weights of a noisy linear relation by gradient descent")
    true_w, true_b = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    features = rng.standard_normal((256, 8)).astype(np.float32)
    targets = features @ true_w.T + true_b + rng.normal(0, 0.05, size=(256, 3)).astype(np.float32)
    model, loss_fn = tt.Dense(8, 3), tt.MSELoss()
    optimizer = tt.SGD(model.parameters(), lr=0.1)
    for _ in range(150):
        optimizer.zero_grad()
        loss_fn(model(tt.tensor(features)), tt.tensor(targets)).backward()
        optimizer.step()
    error = max(float(np.abs(model.weight.data - true_w).max()), float(np.abs(model.bias.data - true_b).max()))
    probe.measure("largest error of the learned weights", error, at_most=0.05, headline=True)
