"""What a second framework in the same process costs: TinyTorch's and PyTorch's convolution, alone and not.

    python -m benchmarks.same_process [--repeats N] [--no-wait] [--threads N]

A student who times TinyTorch and PyTorch in one notebook measures both with the other's thread
pools in the process. Here each implementation still runs in a process of its own and only one
framework is ever timed; what changes is what else the process loaded (and ran) first:

- ``alone``: nothing else;
- ``torch imported first`` / ``torch used first``: PyTorch imported (and one small convolution run)
  before TinyTorch is imported, as in a notebook whose first cell is ``import torch``;
- ``tinytorch imported first``: the other way round, for PyTorch's convolution.

Both frameworks use OpenMP through a library named ``libgomp.so.1``; whichever is imported first
loads it, and the other shares it, with the settings the first one read (TinyTorch asks for
passive waiting, PyTorch spins). The same 3x3 convolution (32 -> 64 channels, 16x16, batch 64,
forward and backward) as in ``benchmarks.kernels``.
"""

from __future__ import annotations

from .harness import Case, Impl, suite_main

PARAMS = {"c_in": 32, "c_out": 64, "side": 16}
OURS, THEIRS = "benchmarks.tinytorch_side:conv2d", "benchmarks.torch_side:conv2d"
TORCH_USED, TINYTORCH_IMPORTED = "benchmarks.torch_side:conv2d_once", "benchmarks.tinytorch_side:describe"

CASES = [
    Case(
        "TinyTorch conv2d fwd+bwd 32->64 @16x16",
        PARAMS,
        {
            "alone": Impl(OURS, backend="compiled"),
            "torch imported first": Impl(OURS, preload=("benchmarks.torch_side:describe",), backend="compiled"),
            "torch used first": Impl(OURS, preload=(TORCH_USED,), backend="compiled"),
        },
        compare=(("alone", "torch imported first"), ("alone", "torch used first")),
    ),
    Case(
        "PyTorch conv2d fwd+bwd 32->64 @16x16",
        PARAMS,
        {
            "alone": Impl(THEIRS),
            "tinytorch imported first": Impl(THEIRS, preload=(TINYTORCH_IMPORTED,)),
        },
        compare=(("alone", "tinytorch imported first"),),
    ),
]

NOTES = """A ratio 'alone vs X' above 1 means the convolution is that many times slower with X in its process."""


def main(argv: list[str] | None = None) -> None:
    suite_main("same_process", CASES, argv, NOTES, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
