"""Kernel benchmark: TinyTorch's compiled kernels against their NumPy reference and PyTorch.

    python -m benchmarks.kernels [--repeats N] [--only TEXT] [--output NAME] [--no-wait] [--threads N]

Each case times one forward and backward pass of a kernel on CNN-sized float32 inputs (batch 64)
three ways: the compiled kernel, the NumPy reference (both through ``tinytorch.core.kernels``),
and the PyTorch op with autograd (when PyTorch is installed), all on the same threads. The table
goes to stdout and to ``benchmarks/results/<NAME>.md``; see benchmarks/README.md to read it.
"""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from . import kernels_attention_optim as attention_optim_cases
from .harness import THREADS, Case, Target, format_table, log, optional_torch, pin_threads, run_case, wait_for_idle, write_results

BATCH = 64
BLAS_FLOOR = "blas floor"  # label of the conv cases' matrix products alone

NOTES = f"""'{BLAS_FLOOR}' is the convolution's three matrix products alone (forward, weight gradient, input
gradient) on NumPy's BLAS, timed in the same rounds: no im2col convolution on this BLAS can be faster,
and the reference spends most of its time in the same products, which bounds 'compiled vs reference'
for the convolutions at (reference time) / (blas floor)."""


def kernel_implementations(*names: str) -> dict[str, tuple[Callable, ...]]:
    """{"compiled": (functions...), "reference": (functions...)} for the named kernels."""
    from tinytorch.core import kernels

    found = {}
    for backend in ("compiled", "reference"):
        with kernels.use(backend):
            found[backend] = tuple(kernels.implementation(name) for name in names)
    return found


def runs(kernel_names: tuple[str, ...], ours: Callable, theirs: Callable) -> dict[str, Callable[[], object]]:
    """The timed callables of a case: ``ours(*functions)`` for the compiled and the reference
    kernels named, and ``theirs(torch)`` when PyTorch is installed."""
    found = {label: ours(*functions) for label, functions in kernel_implementations(*kernel_names).items()}
    torch = optional_torch()
    return found if torch is None else {**found, "torch": theirs(torch)}


def blas_floor(weight: np.ndarray, positions: int) -> Callable[[], object]:
    """The three matrix products of a convolution's forward and backward pass alone, on NumPy's BLAS,
    with the shapes the compiled kernel gives them: a lower bound for any im2col convolution."""
    rng = np.random.default_rng(5)
    flat = weight.reshape(weight.shape[0], -1)  # (F, C*KH*KW)
    cols = rng.standard_normal((flat.shape[1], BATCH * positions), dtype=np.float32)
    product = np.empty((flat.shape[0], BATCH * positions), dtype=np.float32)

    def run():
        np.matmul(flat, cols, out=product)  # forward
        np.matmul(product, cols.T)  # weight gradient
        np.matmul(flat.T, product)  # window gradients

    return run


def conv_case(channels_in: int, channels_out: int, side: int) -> Case:
    """3x3 convolution, padding 1, stride 1, with bias; the backward computes all three gradients."""

    def build():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, channels_in, side, side), dtype=np.float32)
        weight = rng.standard_normal((channels_out, channels_in, 3, 3), dtype=np.float32) * 0.1
        bias = rng.standard_normal(channels_out, dtype=np.float32)
        grad = rng.standard_normal((BATCH, channels_out, side, side), dtype=np.float32)

        def ours(forward, backward):
            def run():
                forward(x, weight, bias, (1, 1), (1, 1))
                backward(x, weight, grad, (1, 1), (1, 1))

            return run

        def theirs(torch):
            xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, weight, bias))
            gt = torch.from_numpy(grad)

            def run():
                xt.grad = wt.grad = bt.grad = None
                torch.nn.functional.conv2d(xt, wt, bt, 1, 1).backward(gt)

            return run

        return {**runs(("conv2d_forward", "conv2d_backward"), ours, theirs), BLAS_FLOOR: blas_floor(weight, side * side)}

    name = f"conv2d fwd+bwd {channels_in}->{channels_out} @{side}x{side}, 3x3 pad 1"
    return Case(name, build, (Target("torch", 0.8), Target("reference", 3.0)))


def maxpool_case(shape=(BATCH, 32, 32, 32)) -> Case:
    """2x2 max-pool, stride 2: forward (values and argmax) and backward."""

    def build():
        rng = np.random.default_rng(1)
        x = rng.standard_normal(shape, dtype=np.float32)
        grad = rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2), dtype=np.float32)

        def ours(forward, backward):
            def run():
                _, argmax = forward(x, (2, 2), (2, 2), (0, 0))
                backward(grad, argmax, x.shape)

            return run

        def theirs(torch):
            xt, gt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(grad)

            def run():
                xt.grad = None
                torch.nn.functional.max_pool2d(xt, 2, 2).backward(gt)

            return run

        return runs(("maxpool2d_forward", "maxpool2d_backward"), ours, theirs)

    return Case(f"maxpool2d 2x2 fwd+bwd on {shape}", build, (Target("torch", 2.0), Target("reference", 3.0)))


def unary_case(label: str, kernel_names: tuple[str, str], torch_fn: Callable, shape: tuple[int, ...], seed: int) -> Case:
    """A kernel pair ``y = forward(x)``, ``dx = backward(y, grad)``: forward, then backward from the output."""

    def build():
        rng = np.random.default_rng(seed)
        x, grad = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)

        def ours(forward, backward):
            return lambda: backward(forward(x), grad)

        def theirs(torch):
            xt, gt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(grad)

            def run():
                xt.grad = None
                torch_fn(torch, xt).backward(gt)

            return run

        return runs(kernel_names, ours, theirs)

    return Case(f"{label} fwd+bwd on {shape}", build)


def batchnorm_case(shape=(BATCH, 32, 32, 32)) -> Case:
    """Batch normalisation in training mode (batch statistics), forward and backward."""

    def build():
        rng = np.random.default_rng(3)
        x, grad = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)
        gamma = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
        beta = rng.standard_normal(shape[1], dtype=np.float32)

        def ours(forward, backward):
            def run():
                _, mean, invstd = forward(x, gamma, beta, 1e-5)
                backward(grad, x, mean, invstd, gamma)

            return run

        def theirs(torch):
            xt, gt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, gamma, beta))
            dy = torch.from_numpy(grad)

            def run():
                xt.grad = gt.grad = bt.grad = None
                torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(dy)

            return run

        return runs(("batchnorm_forward_train", "batchnorm_backward"), ours, theirs)

    return Case(f"batchnorm train fwd+bwd on {shape}", build)


# The cases this benchmark runs, in order: the CNN kernels above, then attention and the optimizer step.
CASES: list[Case] = [
    conv_case(32, 64, 16),
    conv_case(64, 128, 8),
    maxpool_case(),
    unary_case("relu", ("relu_forward", "relu_backward"), lambda torch, x: torch.nn.functional.relu(x), (BATCH, 32, 32, 32), 2),
    batchnorm_case(),
    # a classifier's or a language model's output layer
    unary_case("log_softmax", ("log_softmax_forward", "log_softmax_backward"), lambda torch, x: torch.log_softmax(x, dim=-1),
               (2048, 512), 4),
    *attention_optim_cases.CASES,
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per implementation (default 15)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    parser.add_argument("--output", help="results file name under benchmarks/results/ (default: kernels; with --only: none)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads for every library (default {THREADS})")
    args = parser.parse_args(argv)

    pin_threads(args.threads)
    cases = [case for case in CASES if args.only in case.name]
    if not cases:
        parser.error(f"no case name contains {args.only!r}")
    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    results = [run_case(case, repeats=args.repeats) for case in cases]
    print(format_table(results))
    output = args.output or (None if args.only else "kernels")
    if output:
        log(f"wrote {write_results(output, results, idle, NOTES)}")


if __name__ == "__main__":
    main()
