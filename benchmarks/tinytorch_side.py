"""TinyTorch's side of every benchmark case: factories that build the inputs and return the timed callable.

Imported only by a benchmark worker process (``benchmarks/worker.py``), never beside PyTorch. Each
kernel factory takes ``backend`` ("compiled" or "reference") and reaches the kernels only through
``tinytorch.core.kernels``; the model factories run the real layers, loss and optimizer.
"""

from __future__ import annotations

import cProfile
import gc
import os
import platform
import tracemalloc
from typing import Callable

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np

from tinytorch.core import kernels
from tinytorch.core.allocator import allocator_policy
from tinytorch.core.blas_wait import blas_wait_policy
from tinytorch.core.losses import cross_entropy

from . import specs
from .memory import peak_rss_growth

Run = Callable[[], object]


def pin_threads(threads: int) -> None:
    """TinyTorch's kernels on ``threads`` OpenMP threads (NumPy's BLAS got the same from the environment)."""
    if kernels.compiled_available():
        kernels.set_num_threads(threads)


def describe() -> dict[str, str]:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "TinyTorch": f"{tt.__version__} (compiled kernels {'built' if kernels.compiled_available() else 'NOT built'}, "
        f"OpenMP {'on' if kernels.openmp_enabled() else 'off'}, "
        f"{kernels.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}, products {kernels.products()}, "
        f"BLAS threads: {blas_wait_policy()}, allocator: {allocator_policy()})",
        "NumPy": f"{np.__version__} (BLAS {blas.get('name', '?')} {blas.get('version', '')})",
        "Python": platform.python_version(),
    }


def _kernels(backend: str, *names: str) -> tuple[Callable, ...]:
    with kernels.use(backend):
        return tuple(kernels.implementation(name) for name in names)


# -- kernels ----------------------------------------------------------------------------------------
def conv2d(backend: str, c_in: int, c_out: int, side: int, batch: int = specs.BATCH, winograd: bool = True) -> Run:
    """3x3 convolution, padding 1: forward, then the backward's three gradients. ``winograd=False``
    keeps the compiled kernel on the windows' products (``conv.WINOGRAD``) in this worker process."""
    from tinytorch._kernels import conv

    conv.WINOGRAD = winograd
    forward, backward = _kernels(backend, "conv2d_forward", "conv2d_backward")
    a = specs.conv_inputs(c_in, c_out, side, batch)

    def run():
        forward(a["x"], a["weight"], a["bias"], (1, 1), (1, 1))
        backward(a["x"], a["weight"], a["grad"], (1, 1), (1, 1))

    return run


def maxpool2d(backend: str, shape: list[int]) -> Run:
    """2x2 max-pool, stride 2: forward (values and argmax), then backward."""
    forward, backward = _kernels(backend, "maxpool2d_forward", "maxpool2d_backward")
    x = specs.normal(tuple(shape), 1)
    grad = specs.normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2), 2)

    def run():
        _, argmax = forward(x, (2, 2), (2, 2), (0, 0))
        backward(grad, argmax, x.shape)

    return run


def unary(backend: str, kernel: str, shape: list[int]) -> Run:
    """A kernel pair ``y = <kernel>_forward(x)``, ``dx = <kernel>_backward(y, grad)``."""
    forward, backward = _kernels(backend, f"{kernel}_forward", f"{kernel}_backward")
    x, grad = specs.normal(tuple(shape), 3), specs.normal(tuple(shape), 4)
    return lambda: backward(forward(x), grad)


def batchnorm(backend: str, shape: list[int]) -> Run:
    """Batch normalisation with the batch's statistics, forward and backward."""
    forward, backward = _kernels(backend, "batchnorm_forward_train", "batchnorm_backward")
    x, grad = specs.normal(tuple(shape), 5), specs.normal(tuple(shape), 6)
    gamma = np.random.default_rng(7).uniform(0.5, 1.5, shape[1]).astype(np.float32)
    beta = specs.normal((shape[1],), 8)

    def run():
        _, mean, invstd = forward(x, gamma, beta, 1e-5)
        backward(grad, x, mean, invstd, gamma)

    return run


def attention(backend: str, shape: list[int]) -> Run:
    """Causal attention: forward (out, probs), then the backward for dq, dk, dv."""
    forward, backward = _kernels(backend, "attention_forward", "attention_backward")
    q, k, v, grad = (specs.normal(tuple(shape), seed) for seed in (10, 11, 12, 13))

    def run():
        _, probs, keep = forward(q, k, v, causal=True)
        backward(grad, q, k, v, probs, keep, None, 0.0, causal=True)

    return run


def adam(backend: str, size: int) -> Run:
    """One Adam step, in place, over ``size`` float32 parameters."""
    (step,) = _kernels(backend, "adam_step")
    param, grad = specs.normal((size,), 14), specs.normal((size,), 15)
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    count = [0]

    def run():
        count[0] += 1
        step(param, grad, exp_avg, exp_avg_sq, count[0], **specs.ADAM)

    return run


# -- the framework's own cost per op (benchmarks/op_overhead.py) --------------------------------------
def op_overhead(op: str, ops: int) -> Run:
    """``ops`` ops on 4x4 float32 tensors: ``a * b`` or ``a @ b`` recorded (``a`` requires grad), or ``a * b`` under no_grad."""
    a, b = tt.randn(4, 4, requires_grad=True), tt.randn(4, 4)
    steps = range(ops)

    def mul():
        for _ in steps:
            a * b

    def matmul():
        for _ in steps:
            a @ b

    def mul_no_grad():
        with tt.no_grad():
            for _ in steps:
                a * b

    return {"mul": mul, "matmul": matmul, "mul_no_grad": mul_no_grad}[op]


def backward_overhead(ops: int) -> Run:
    """One backward pass through a retained chain of ``ops`` multiplications of 4x4 float32 tensors."""
    a, b = tt.randn(4, 4, requires_grad=True), tt.ones(4, 4)
    y = a
    for _ in range(ops):
        y = y * b
    seed = np.ones((4, 4), dtype=np.float32)
    return lambda: y.backward(seed, retain_graph=True)


# -- the reference CNN ------------------------------------------------------------------------------
def cnn(seed: int = 0) -> tt.Sequential:
    """The reference CNN (see specs.py) with the weights ``specs.cnn_state(seed)``."""
    layers = []
    for c_in, c_out in specs.CNN_BLOCKS:
        layers += [tt.Conv2D(c_in, c_out, 3, padding=1), tt.BatchNorm2D(c_out), tt.ReLU(), tt.MaxPool2D(2)]
    flat = specs.CNN_BLOCKS[-1][1] * 4 * 4
    model = tt.Sequential(*layers, tt.Flatten(), tt.Dense(flat, specs.CNN_HIDDEN), tt.ReLU(),
                          tt.Dense(specs.CNN_HIDDEN, specs.CNN_CLASSES))
    model.load_state_dict(specs.cnn_state(seed))
    return model


def _trainer(model: tt.Module, batch: int) -> Callable[[], tt.Tensor]:
    images, labels = specs.cnn_batch(batch)
    x = tt.from_numpy(images)
    hyper = specs.ADAM
    optimizer = tt.Adam(model.parameters(), lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])

    def step():
        optimizer.zero_grad()
        loss = cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        return loss

    return step


def cnn_train_step(backend: str, batch: int) -> Run:
    """One training step: forward, cross-entropy, backward, Adam."""
    step = _trainer(cnn(), batch)
    if backend == "compiled":
        return step

    def on_backend():
        with kernels.use(backend):
            step()

    return on_backend


def cnn_inference(backend: str, batch: int) -> Run:
    """The CNN in evaluation mode, without a graph."""
    model = cnn().eval()
    x = tt.from_numpy(specs.cnn_batch(batch, seed=1)[0])

    def run():
        with tt.no_grad(), kernels.use(backend):
            return model(x)

    return run


def cnn_first_losses(batch: int, steps: int = 2) -> list[float]:
    """The losses of the first training steps from the shared weights: both frameworks must agree."""
    step = _trainer(cnn(), batch)
    return [float(step().item()) for _ in range(steps)]


def cnn_train_memory(batch: int, steps: int = 3) -> dict[str, float]:
    """Peak RSS growth (MiB) over building the model and optimizer and ``steps`` training steps (memory.py)."""
    return peak_rss_growth(lambda: _trainer(cnn(), batch), steps)


def cnn_step_tracemalloc(batch: int) -> dict[str, float]:
    """What the model holds between steps, and the peak of one step above that (MiB), by tracemalloc."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step = _trainer(cnn(), batch)
    for _ in range(2):
        step()  # gradients, optimizer state and kernel scratch buffers exist after the first step
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"held_mib": (held - base) / 2**20, "step_peak_mib": (peak - held) / 2**20}


def cnn_profile(batch: int, steps: int = 5, top: int = 14) -> str:
    """Where a training step spends its time: cProfile by function's own time, as a Markdown table."""
    step = _trainer(cnn(), batch)
    for _ in range(2):
        step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = profiler.getstats()
    total = sum(e.inlinetime for e in stats)
    rows = sorted((e for e in stats if not isinstance(e.code, str)), key=lambda e: e.inlinetime, reverse=True)[:top]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lines = [
        f"cProfile of {steps} TinyTorch training steps ({total / steps * 1e3:.1f} ms per step under the profiler), by "
        "own time. The Cython kernels do not report to the profiler: their time is counted in the Python function "
        "that calls them (the Function's forward or backward).",
        "",
        "| function | calls per step | own time per step (ms) | share |",
        "|---|---|---|---|",
    ]
    for e in rows:
        where = os.path.relpath(e.code.co_filename, root)
        lines.append(f"| `{e.code.co_qualname}` ({where}) | {e.callcount / steps:g} | {e.inlinetime / steps * 1e3:.2f} | "
                     f"{e.inlinetime / total:.0%} |")
    return "\n".join(lines)
