"""Per-op overhead: what recording an op, running one without a graph, and one backward node cost.

    python -m benchmarks.op_overhead [--repeats N] [--only TEXT] [--output NAME] [--no-wait] [--threads N]

The tensors are 4x4 float32, so the arithmetic is negligible and what is timed is the framework's
own work per op: unpacking the inputs, recording the node, making the result tensor, and in
backward walking the graph and routing the gradients. One call of a case is 1000 ops (or one
backward pass through a retained chain of 1000 recorded multiplications), so the table's
milliseconds per call read as **microseconds per op**. TinyTorch and PyTorch each run in a worker
process of their own (see harness.py), on one thread unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import sys

from .harness import Case, Impl, TimeLimit, suite_main

OPS = 1000  # ops per timed call: milliseconds per call are microseconds per op

NOTES = f"""A call is {OPS} ops on 4x4 float32 tensors, so 'ms' per call is microseconds per op (per node for the
backward case). 'recorded': ``a`` requires grad and ``b`` does not, so every op records a node; 'under
no_grad': the same multiplication inside ``no_grad()``; 'backward': ``backward(retain_graph=True)``
through a chain of {OPS} multiplications built once (the leaf's gradient accumulates). Target (issue 9):
a recorded ``a * b`` at most 3 µs (checked in the table), an unrecorded op cheaper still. Absolute times
are only meaningful from an idle machine (see the line 'Machine before the run')."""


def op_case(name: str, factory: str, targets: tuple[TimeLimit, ...] = (), **params) -> Case:
    """TinyTorch against PyTorch on the same factory (one in each side module)."""
    return Case(
        name,
        {**params, "ops": OPS},
        {"tinytorch": Impl(f"benchmarks.tinytorch_side:{factory}"), "torch": Impl(f"benchmarks.torch_side:{factory}")},
        targets,
        compare=(("tinytorch", "torch"),),
    )


CASES = [
    op_case("recorded a * b (4x4), per op", "op_overhead", (TimeLimit(3e-6, "tinytorch", OPS, "op"),), op="mul"),
    op_case("recorded a @ b (4x4), per op", "op_overhead", op="matmul"),
    op_case("a * b under no_grad (4x4), per op", "op_overhead", op="mul_no_grad"),
    op_case("backward, per node (4x4 multiplications)", "backward_overhead"),
]

if __name__ == "__main__":
    # One thread by default: a 4x4 op never uses a second one, and the dispatch is what is timed.
    suite_main("op_overhead", CASES, ["--threads", "1", *sys.argv[1:]], NOTES, description=__doc__.splitlines()[0])
