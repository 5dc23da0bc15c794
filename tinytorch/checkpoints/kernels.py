"""Checkpoint 12, Kernels: "Can I implement high-performance computational kernels?"

Led to by lesson 13 (``maxpool2d_forward``, ``maxpool2d_backward``). With a workspace, the
student's pooling kernels are registered with the kernel registry, so every ``MaxPool2D`` in the
framework runs on them. They must match the NumPy reference exactly (values and argmax indices)
on awkward geometries (odd sizes, overlapping windows, padding, float32 and float64), give a
pooling layer correct gradients (checked numerically), carry a CNN's forward and backward pass,
and be fast: a forward and backward pass may take at most five times as long as the NumPy
reference's (a loop over pixels in Python is hundreds of times slower).
"""

from __future__ import annotations

import time

import numpy as np

from tinytorch.checkpoints.probe import Probe

GEOMETRIES = [  # (input shape, kernel, stride, padding)
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1)),
    ((2, 1, 5, 6), (3, 2), (1, 1), (1, 1)),
    ((1, 4, 6, 6), (3, 3), (3, 3), (0, 0)),
]


def best_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch._kernels import reference
    from tinytorch.core import kernels
    from tinytorch.testing import GradcheckError, gradcheck

    forward, backward = kernels.implementation("maxpool2d_forward"), kernels.implementation("maxpool2d_backward")
    probe.step(f"max pooling runs on: {kernels.describe()['maxpool2d_forward']}")
    rng = np.random.default_rng(0)
    wrong = []
    for dtype in (np.float32, np.float64):
        for shape, kernel, stride, padding in GEOMETRIES:
            x = rng.standard_normal(shape).astype(dtype)
            out, argmax = forward(x, kernel, stride, padding)
            want, want_argmax = reference.maxpool2d_forward(x, kernel, stride, padding)
            grad = rng.standard_normal(want.shape).astype(dtype)
            grad_x = backward(grad, np.asarray(argmax), shape)
            want_grad = reference.maxpool2d_backward(grad, want_argmax, shape)
            if not (np.array_equal(out, want) and np.array_equal(argmax, want_argmax) and np.allclose(grad_x, want_grad)
                    and np.asarray(out).dtype == dtype and np.asarray(grad_x).dtype == dtype):
                wrong.append(f"{np.dtype(dtype)} {shape} kernel {kernel} stride {stride} padding {padding}")
    cases = 2 * len(GEOMETRIES)
    probe.measure("geometries matching the reference exactly", cases - len(wrong), at_least=cases, unit=f"of {cases}", headline=True)
    if wrong:
        probe.check("the kernels agree with the reference", False, "differ on " + "; ".join(wrong[:3]))

    probe.step("checking MaxPool2D's gradient numerically (float64, overlapping windows)")
    pool = tt.MaxPool2D(3, stride=2, padding=1)
    x = tt.tensor(rng.standard_normal((2, 2, 7, 7)), dtype=tt.float64, requires_grad=True)
    try:
        gradcheck(pool, x, name="MaxPool2D(3, stride=2, padding=1)")
        probe.check("MaxPool2D's backward agrees with finite differences", True)
    except GradcheckError as error:
        probe.check("MaxPool2D's backward agrees with finite differences", False, str(error))

    probe.step("a CNN's forward and backward pass on them")
    cnn = tt.Sequential(tt.Conv2D(3, 8, 3, padding=1), tt.ReLU(), tt.MaxPool2D(2), tt.Flatten(), tt.Dense(8 * 8 * 8, 10))
    images = tt.tensor(rng.standard_normal((16, 3, 16, 16)).astype(np.float32), requires_grad=True)
    tt.CrossEntropyLoss()(cnn(images), rng.integers(0, 10, 16)).backward()
    finite = all(np.isfinite(p.grad.data).all() for p in cnn.parameters()) and np.isfinite(images.grad.data).all()
    probe.check("every gradient of the CNN is finite", finite, "a gradient holds NaN or infinity")

    probe.step("timing a forward and backward pass on a (32, 16, 32, 32) batch against the NumPy reference")
    x = rng.standard_normal((32, 16, 32, 32)).astype(np.float32)
    grad = rng.standard_normal((32, 16, 16, 16)).astype(np.float32)

    def yours():
        _, argmax = forward(x, (2, 2), (2, 2), (0, 0))
        backward(grad, np.asarray(argmax), x.shape)

    def numpy_reference():
        _, argmax = reference.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
        reference.maxpool2d_backward(grad, argmax, x.shape)

    probe.measure("time / the NumPy reference's time", best_time(yours) / best_time(numpy_reference), at_most=5.0)
