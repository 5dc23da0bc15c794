"""Checkpoint 01, Foundation: "Can I create and manipulate the building blocks of ML?"

Led to by lesson 02 (``broadcast_shape``, ``contiguous_strides``). Tensors are created, combined
and reshaped on random shapes (size-1 axes, different ranks, incompatible pairs), and the
student's functions must predict what the framework really does: the shape every broadcasting
op produces (and which pairs it refuses), and the strides of every tensor's memory. Views must
share memory with their base, and a gradient must flow back through broadcasting to the right
shapes.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import Probe

CASES = 200


def _random_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that mostly broadcast (size-1 axes, missing leading axes) and sometimes do not."""
    full = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(0, 5)))
    a = tuple(1 if rng.random() < 0.3 else n for n in full)
    b = tuple(1 if rng.random() < 0.3 else n for n in full)[int(rng.integers(0, len(full) + 1)):]
    if rng.random() < 0.2 and b:
        b = b[:-1] + (b[-1] + 5,)  # an axis of two different sizes, neither 1: incompatible
    return a, b


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core import exercises, tensor

    broadcast_shape = exercises.implementation(tensor.broadcast_shape)
    contiguous_strides = exercises.implementation(tensor.contiguous_strides)
    rng = np.random.default_rng(0)

    probe.step(f"combining {CASES} random pairs of tensors and predicting each result's shape")
    agreed, disagreements = 0, []
    for _ in range(CASES):
        a, b = _random_pair(rng)
        try:
            actual: tuple | str = (tt.zeros(a) + tt.ones(b)).shape
        except ValueError:
            actual = "refused"
        try:
            predicted: tuple | str = tuple(broadcast_shape(a, b))
        except ValueError:
            predicted = "refused"
        if predicted == actual:
            agreed += 1
        elif len(disagreements) < 3:
            disagreements.append(f"{a} with {b}: the tensors gave {actual}, broadcast_shape gave {predicted}")
    probe.measure("broadcast shapes predicted", agreed, at_least=CASES, unit=f"of {CASES}", headline=True)
    if disagreements:
        probe.check("broadcast_shape agrees with the tensors", False, "; ".join(disagreements))

    probe.step(f"creating {CASES} tensors and predicting their strides")
    agreed, disagreements = 0, []
    for _ in range(CASES):
        shape = tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(0, 5)))
        dtype = tt.float64 if rng.random() < 0.5 else tt.float32
        t = tt.zeros(shape, dtype=dtype)
        predicted = tuple(contiguous_strides(shape, np.dtype(dtype).itemsize))
        if predicted == t.data.strides:
            agreed += 1
        elif len(disagreements) < 3:
            disagreements.append(f"{shape} {np.dtype(dtype)}: the tensor's strides are {t.data.strides}, predicted {predicted}")
    probe.measure("strides predicted", agreed, at_least=CASES, unit=f"of {CASES}")
    if disagreements:
        probe.check("contiguous_strides agrees with the tensors", False, "; ".join(disagreements))

    probe.step("manipulating views and sending a gradient back through broadcasting")
    base = tt.arange(24, dtype=tt.float32).reshape(2, 3, 4)
    view = base.transpose(0, 2, 1)
    probe.check("a transpose is a view of the same memory", np.shares_memory(view.data, base.data))
    probe.check(
        "the view's strides are its base's, permuted",
        view.data.strides == tuple(base.data.strides[i] for i in (0, 2, 1)),
        f"{view.data.strides} from {base.data.strides}",
    )
    weights = tt.tensor(rng.standard_normal((3, 1)), requires_grad=True)
    inputs = tt.tensor(rng.standard_normal((5, 1, 4)), requires_grad=True)
    (weights * inputs).sum().backward()
    probe.check(
        "gradients come back in each input's own shape",
        weights.grad.shape == (3, 1) and inputs.grad.shape == (5, 1, 4),
        f"got {weights.grad.shape} and {inputs.grad.shape}",
    )
    expected = np.broadcast_to(inputs.data, (5, 3, 4)).sum(axis=(0, 2))[:, None]
    probe.measure("largest gradient error", float(np.abs(weights.grad.data - expected).max()), at_most=1e-9)
