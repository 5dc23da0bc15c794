"""Checkpoint 04, Networks: "Can I build complete multi-layer neural networks?"

Led to by lesson 05 (``create_mlp``, ``mlp_parameter_count``, ``mlp_forward_flops``). The
student's ``create_mlp`` builds a network for three interleaved spirals; their parameter count
must equal what the network really holds, their FLOP count what its Dense layers really compute
for a batch; and the network must learn to separate the spirals on held-out points.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.loop import fit_full_batch
from tinytorch.checkpoints.probe import Probe

STEPS = 400


def spirals(n: int, rng: np.random.Generator, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on ``classes`` interleaved spiral arms (noisy), labelled by arm."""
    labels = rng.integers(0, classes, size=n)
    radius = rng.uniform(0.1, 1.0, size=n)
    angle = 2 * np.pi * labels / classes + 3.0 * radius + rng.normal(0, 0.15, size=n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32), labels


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core.networks import create_mlp, mlp_forward_flops, mlp_parameter_count

    hidden, batch = [64, 64], 500
    probe.step(f"building create_mlp(2, {hidden}, 3)")
    net = create_mlp(2, hidden, 3)
    dense = [m for m in net.modules() if isinstance(m, tt.Dense)]
    probe.check(
        "three Dense layers of the requested sizes",
        [(d.in_features, d.out_features) for d in dense] == [(2, 64), (64, 64), (64, 3)],
        f"got {[(d.in_features, d.out_features) for d in dense]}",
    )
    probe.check(
        "a nonlinearity after each hidden layer",
        sum(not isinstance(m, tt.Dense) for m in net.children()) >= len(hidden),
        f"the network is {net!r}",
    )
    held = net.num_parameters()
    counted = mlp_parameter_count(2, hidden, 3)
    probe.check("mlp_parameter_count equals the parameters the network holds", counted == held, f"counted {counted}, the network holds {held}")
    computed = sum(2 * batch * d.in_features * d.out_features for d in dense)
    flops = mlp_forward_flops(batch, 2, hidden, 3)
    probe.check("mlp_forward_flops equals its layers' matrix-product FLOPs", flops == computed, f"counted {flops}, the layers compute {computed}")

    rng = np.random.default_rng(0)
    x_train, y_train = spirals(batch, rng)
    x_test, y_test = spirals(batch, rng)
    probe.step(f"training it on three spirals ({STEPS} Adam steps)")
    fit_full_batch(net, tt.Adam(net.parameters(), lr=0.01), tt.CrossEntropyLoss(), x_train, y_train, STEPS)
    with tt.no_grad():
        accuracy = float((net(tt.tensor(x_test)).data.argmax(axis=1) == y_test).mean())
    probe.measure("held-out accuracy on the spirals", accuracy, at_least=0.9, headline=True)
