"""Winograd's transform against the windows' products, in TinyTorch's compiled convolution.

    python -m benchmarks.winograd [--repeats N] [--only TEXT] [--output NAME] [--no-wait] [--threads N]

The same build both ways: "compiled" as it ships (3x3 stride-1 convolutions with 8 or more input
channels through Winograd's F(2x2, 3x3)), "windows" with ``conv.WINOGRAD = False``, each in a worker
process of its own (see harness.py). A call is one forward and the backward's three gradients: the
kernels benchmark's two convolutions at batch 64, and the airbench network's 3x3 layers at its batch
of 512 (examples/train_cifar10_airbench.py, widths 64/128/128).
"""

from __future__ import annotations

from .harness import Case, Impl, suite_main

NOTES = """'compiled vs windows' is the windows' time over Winograd's, per round: above 1, Winograd's transform
is faster. 3x3 convolution, padding 1, float32, forward plus the gradients of input, weight and bias."""


def conv_case(c_in: int, c_out: int, side: int, batch: int) -> Case:
    params = {"c_in": c_in, "c_out": c_out, "side": side, "batch": batch}
    return Case(
        f"conv2d fwd+bwd {c_in}->{c_out} @{side}x{side}, batch {batch}",
        params,
        {
            "compiled": Impl("benchmarks.tinytorch_side:conv2d", backend="compiled"),
            "windows": Impl("benchmarks.tinytorch_side:conv2d", backend="compiled", winograd=False),
        },
    )


CASES = [
    conv_case(32, 64, 16, 64),
    conv_case(64, 128, 8, 64),
    conv_case(24, 64, 31, 512),
    conv_case(64, 64, 15, 512),
    conv_case(64, 128, 15, 512),
    conv_case(128, 128, 7, 512),
]


def main(argv: list[str] | None = None) -> None:
    suite_main("winograd", CASES, argv, NOTES, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
