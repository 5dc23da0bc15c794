"""Kernel benchmark: TinyTorch's compiled kernels against their NumPy reference and against PyTorch.

    python -m benchmarks.kernels [--repeats N] [--only TEXT] [--output NAME] [--no-wait] [--threads N]

Each case times one forward and backward pass of a kernel on CNN-sized float32 inputs (batch 64),
or one optimizer step: the compiled kernel and the reference (both through
``tinytorch.core.kernels``) and the PyTorch op with autograd, each in a worker process of its
own (see harness.py). The table goes to stdout and to ``benchmarks/results/kernels.md``, the raw
times to ``kernels.json``; benchmarks/README.md says how to read them.

To add a case: a factory in ``tinytorch_side.py`` and one in ``torch_side.py`` that take the same
parameters and return a zero-argument callable, and a ``Case`` below.
"""

from __future__ import annotations

from .harness import Case, Impl, Target, suite_main
from .specs import BATCH

BLAS_FLOOR = "blas floor"  # label of the conv cases' matrix products alone

NOTES = f"""'{BLAS_FLOOR}' is a convolution's three matrix products alone (forward, weight gradient, input
gradient) on NumPy's BLAS, shaped as an im2col convolution shapes them: no im2col convolution on this BLAS
can be faster; only an algorithm with fewer multiplications can, as the compiled kernel's Winograd
transform for 3x3 stride-1 convolutions does."""


def kernel_case(name: str, factory: str, params: dict, targets: tuple[Target, ...] = (), **extra: Impl) -> Case:
    """A case run three ways: TinyTorch compiled, TinyTorch reference, PyTorch (same factory name on each side)."""
    return Case(
        name,
        params,
        {
            "compiled": Impl(f"benchmarks.tinytorch_side:{factory}", backend="compiled"),
            "reference": Impl(f"benchmarks.tinytorch_side:{factory}", backend="reference"),
            "torch": Impl(f"benchmarks.torch_side:{factory}"),
            **extra,
        },
        targets,
    )


def conv_case(c_in: int, c_out: int, side: int) -> Case:
    return kernel_case(
        f"conv2d fwd+bwd {c_in}->{c_out} @{side}x{side}, 3x3 pad 1",
        "conv2d",
        {"c_in": c_in, "c_out": c_out, "side": side},
        (Target("torch", 1.0), Target("reference", 2.0)),
        **{BLAS_FLOOR: Impl("benchmarks.numpy_side:conv2d_blas_floor")},
    )


CNN_ACTIVATION = [BATCH, 32, 32, 32]

CASES: list[Case] = [
    conv_case(32, 64, 16),
    conv_case(64, 128, 8),
    kernel_case(f"maxpool2d 2x2 fwd+bwd on {tuple(CNN_ACTIVATION)}", "maxpool2d", {"shape": CNN_ACTIVATION},
                (Target("torch", 2.0), Target("reference", 3.0))),
    kernel_case(f"relu fwd+bwd on {tuple(CNN_ACTIVATION)}", "unary", {"kernel": "relu", "shape": CNN_ACTIVATION}),
    kernel_case(f"batchnorm train fwd+bwd on {tuple(CNN_ACTIVATION)}", "batchnorm", {"shape": CNN_ACTIVATION}),
    # a classifier's or a language model's output layer
    kernel_case("log_softmax fwd+bwd on (2048, 512)", "unary", {"kernel": "log_softmax", "shape": [2048, 512]}),
    kernel_case("causal attention fwd+bwd B16 H4 T128 D32", "attention", {"shape": [16, 4, 128, 32]},
                (Target("torch", 1.0),)),
    kernel_case("adam step, 10M float32 params (torch: fused Adam)", "adam", {"size": 10_000_000},
                (Target("torch", 1.0), Target("reference", 3.0))),
]


def main(argv: list[str] | None = None) -> None:
    suite_main("kernels", CASES, argv, NOTES, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
