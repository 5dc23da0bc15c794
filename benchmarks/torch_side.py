"""PyTorch's side of every benchmark case: the same inputs (from specs.py), PyTorch's ops with autograd.

Imported only by a benchmark worker process (``benchmarks/worker.py``), never beside TinyTorch.
PyTorch runs as shipped: its own OpenMP settings, ``torch.set_num_threads`` to the pinned count.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import specs
from .memory import peak_rss_growth

Run = Callable[[], object]


def pin_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def describe() -> dict[str, str]:
    return {"PyTorch": f"{torch.__version__} ({torch.get_num_threads()} threads, {torch.backends.mkldnn.is_available() and 'oneDNN' or 'no oneDNN'})"}


def _leaf(array) -> torch.Tensor:
    return torch.from_numpy(array).requires_grad_()


def conv2d(c_in: int, c_out: int, side: int) -> Run:
    a = specs.conv_inputs(c_in, c_out, side)
    x, weight, bias = _leaf(a["x"]), _leaf(a["weight"]), _leaf(a["bias"])
    grad = torch.from_numpy(a["grad"])

    def run():
        x.grad = weight.grad = bias.grad = None
        F.conv2d(x, weight, bias, 1, 1).backward(grad)

    return run


def conv2d_once() -> None:
    """One small convolution forward and backward: what a notebook that also used PyTorch has done."""
    conv2d(8, 8, 8)()


def maxpool2d(shape: list[int]) -> Run:
    x = _leaf(specs.normal(tuple(shape), 1))
    grad = torch.from_numpy(specs.normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2), 2))

    def run():
        x.grad = None
        F.max_pool2d(x, 2, 2).backward(grad)

    return run


UNARY = {"relu": F.relu, "log_softmax": lambda x: torch.log_softmax(x, dim=-1)}


def unary(kernel: str, shape: list[int]) -> Run:
    op = UNARY[kernel]
    x, grad = _leaf(specs.normal(tuple(shape), 3)), torch.from_numpy(specs.normal(tuple(shape), 4))

    def run():
        x.grad = None
        op(x).backward(grad)

    return run


def batchnorm(shape: list[int]) -> Run:
    import numpy as np

    x, grad = _leaf(specs.normal(tuple(shape), 5)), torch.from_numpy(specs.normal(tuple(shape), 6))
    gamma = _leaf(np.random.default_rng(7).uniform(0.5, 1.5, shape[1]).astype(np.float32))
    beta = _leaf(specs.normal((shape[1],), 8))

    def run():
        x.grad = gamma.grad = beta.grad = None
        F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5).backward(grad)

    return run


def attention(shape: list[int]) -> Run:
    q, k, v = (_leaf(specs.normal(tuple(shape), seed)) for seed in (10, 11, 12))
    grad = torch.from_numpy(specs.normal(tuple(shape), 13))

    def run():
        q.grad = k.grad = v.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    return run


def adam(size: int) -> Run:
    """One step of ``torch.optim.Adam(fused=True)`` (the fastest PyTorch has on a CPU)."""
    param = torch.nn.Parameter(torch.from_numpy(specs.normal((size,), 14)))
    param.grad = torch.from_numpy(specs.normal((size,), 15))
    hyper = specs.ADAM
    optimizer = torch.optim.Adam([param], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"], fused=True)
    return optimizer.step


# -- the framework's own cost per op (benchmarks/op_overhead.py) --------------------------------------
def op_overhead(op: str, ops: int) -> Run:
    a, b = torch.randn(4, 4, requires_grad=True), torch.randn(4, 4)
    steps = range(ops)

    def mul():
        for _ in steps:
            a * b

    def matmul():
        for _ in steps:
            a @ b

    def mul_no_grad():
        with torch.no_grad():
            for _ in steps:
                a * b

    return {"mul": mul, "matmul": matmul, "mul_no_grad": mul_no_grad}[op]


def backward_overhead(ops: int) -> Run:
    a, b = torch.randn(4, 4, requires_grad=True), torch.ones(4, 4)
    y = a
    for _ in range(ops):
        y = y * b
    seed = torch.ones(4, 4)
    return lambda: y.backward(seed, retain_graph=True)


# -- the reference CNN ------------------------------------------------------------------------------
def cnn(seed: int = 0) -> torch.nn.Sequential:
    nn = torch.nn
    layers = []
    for c_in, c_out in specs.CNN_BLOCKS:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    flat = specs.CNN_BLOCKS[-1][1] * 4 * 4
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, specs.CNN_HIDDEN), nn.ReLU(),
                          nn.Linear(specs.CNN_HIDDEN, specs.CNN_CLASSES))
    model.load_state_dict({name: torch.from_numpy(value) for name, value in specs.cnn_state(seed).items()})
    return model


def _trainer(model: torch.nn.Module, batch: int) -> Callable[[], torch.Tensor]:
    images, labels = specs.cnn_batch(batch)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    hyper = specs.ADAM
    optimizer = torch.optim.Adam(model.parameters(), lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def cnn_train_step(batch: int) -> Run:
    return _trainer(cnn(), batch)


def cnn_inference(batch: int) -> Run:
    model = cnn().eval()
    x = torch.from_numpy(specs.cnn_batch(batch, seed=1)[0])

    def run():
        with torch.no_grad():
            return model(x)

    return run


def cnn_first_losses(batch: int, steps: int = 2) -> list[float]:
    step = _trainer(cnn(), batch)
    return [float(step().item()) for _ in range(steps)]


def cnn_train_memory(batch: int, steps: int = 3) -> dict[str, float]:
    """The same measurement as ``tinytorch_side.cnn_train_memory``, in PyTorch."""
    return peak_rss_growth(lambda: _trainer(cnn(), batch), steps)
