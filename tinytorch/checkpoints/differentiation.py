"""Checkpoint 08, Differentiation: "Can I automatically compute gradients for learning?"

Led to by lesson 09 (``unbroadcast``, ``topological_order``). A small network (Dense, Tanh,
LayerNorm, Dense, a broadcast per-class scale and log-softmax) is differentiated by the backward
engine and checked against central differences in float64, for its input and every parameter.
The student's two functions are then run on that network's real graph: ``topological_order``
must list every node the loss's gradient flows through, the loss's first and each before the
nodes of its inputs, and
``unbroadcast`` must reduce the gradient of every broadcast in the graph to the shape of what
was broadcast, as the engine does.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import Probe

EDGE_CASES = [((4, 2, 3), (2, 1)), ((5,), ()), ((3, 1), (1, 1)), ((2, 3), (2, 3)), ((6, 1, 4), (1, 4)), ((1, 1), (1,))]


def _broadcasts(shape: tuple, to: tuple) -> bool:
    """True when an array of ``shape`` broadcasts to ``to`` (so its gradient is reduced from ``to``)."""
    try:
        return np.broadcast_shapes(shape, to) == tuple(to)
    except ValueError:
        return False


def network(rng: np.random.Generator):
    import tinytorch as tt

    net = tt.Sequential(tt.Dense(5, 7), tt.Tanh(), tt.LayerNorm(7), tt.Dense(7, 3)).double()
    scale = tt.tensor(rng.uniform(0.5, 2.0, size=3), dtype=tt.float64, requires_grad=True)

    def loss_of(x, *params):
        return tt.log_softmax(net(x) * scale, axis=-1)

    return net, scale, loss_of


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core import autograd, exercises
    from tinytorch.core.autograd import Context
    from tinytorch.testing import GradcheckError, gradcheck

    topological_order = exercises.implementation(autograd.topological_order)
    unbroadcast = exercises.implementation(autograd.unbroadcast)
    framework_order = getattr(autograd.topological_order, "__wrapped__", autograd.topological_order)
    framework_unbroadcast = getattr(autograd.unbroadcast, "__wrapped__", autograd.unbroadcast)
    rng = np.random.default_rng(0)
    net, scale, loss_of = network(rng)
    x = tt.tensor(rng.standard_normal((4, 5)), dtype=tt.float64, requires_grad=True)
    params = [*net.parameters(), scale]

    probe.step(f"checking the gradients of the input and {len(params)} parameters against central differences")
    try:
        gradcheck(loss_of, x, *params, name="Dense-Tanh-LayerNorm-Dense-scale-log_softmax")
        probe.check(f"backward agrees with finite differences for the input and {len(params)} parameters", True)
    except GradcheckError as error:
        probe.check("backward agrees with finite differences", False, str(error))

    probe.step("ordering the network's graph with topological_order")
    loss = (loss_of(x) * tt.tensor(rng.standard_normal((4, 3)))).sum()
    order = list(topological_order(loss))
    expected = framework_order(loss)
    position = {id(node): i for i, node in enumerate(order)}
    probe.check("the loss's node comes first", bool(order) and order[0] is loss.grad_fn,
                f"the first entry is {order[0]!r}" if order else "the order is empty")
    missing = [node for node in expected if id(node) not in position]
    probe.check(
        "every node the loss depends on is listed once",
        not missing and len(order) == len(expected) == len(position),
        f"{len(order)} listed ({len(position)} distinct), the graph has {len(expected)}",
    )
    late = sum(
        1
        for node in order
        for parent in node.parents
        if isinstance(parent, Context) and position.get(id(parent), -1) <= position[id(node)]
    )
    probe.measure("nodes listed after a node made from them", late, at_most=0)
    probe.measure("graph nodes ordered", len(order), at_least=len(expected), unit=f"of {len(expected)}", headline=True)

    probe.step("reducing the gradient of every broadcast in the graph with unbroadcast")
    cases = list(EDGE_CASES)
    for node in expected:
        for parent in node.parents:
            if parent is None:
                continue
            shape = tuple(parent.output_shape) if isinstance(parent, Context) else tuple(parent.shape)
            if shape != tuple(node.output_shape) and _broadcasts(shape, tuple(node.output_shape)):
                cases.append((tuple(node.output_shape), shape))
    wrong = []
    for grad_shape, shape in cases:
        grad = rng.standard_normal(grad_shape)
        got = np.asarray(unbroadcast(grad.copy(), shape))
        want = framework_unbroadcast(grad, shape)
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            wrong.append(f"{grad_shape} -> {shape}: got shape {got.shape}")
    probe.measure("broadcast gradients reduced correctly", len(cases) - len(wrong), at_least=len(cases), unit=f"of {len(cases)}")
    if wrong:
        probe.check("unbroadcast agrees with the engine", False, "; ".join(wrong[:3]))
