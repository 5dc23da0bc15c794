"""Memory of one training step of the reference CNN: what the autograd graph keeps, measured.

    python -m benchmarks.graph_memory [--batch-size N] [--no-record]

The model is ``build_model()`` of ``examples/train_cifar10.py``; the step is forward,
cross-entropy, backward and a plain SGD update on a random batch (values do not change what is
allocated). One warm-up step comes first, so the optimizer's and the kernels' one-time buffers
are not counted. ``MemoryProfiler`` (tracemalloc) measures what NumPy allocates: "forward keeps"
is what the forward pass and the loss leave allocated for backward, "peak" the most the step
holds above what was allocated before it. Memory does not depend on how busy the machine is, so
this runs as is, in one process. The table goes to stdout and to
``benchmarks/results/graph_memory.md`` (unless ``--no-record``).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import tinytorch as tt
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD
from tinytorch.core.profiling import MemoryProfiler

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "graph_memory.md"


def reference_cnn() -> tt.Module:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from train_cifar10 import build_model
    finally:
        sys.path.pop(0)
    return build_model()


def measure_step(batch_size: int) -> dict[str, float]:
    """MiB that one training step's forward pass keeps, and the step's peak."""
    tt.manual_seed(0)
    model = reference_cnn()
    optimizer = SGD(model.parameters(), lr=0.01)
    loss_fn = CrossEntropyLoss()
    images = tt.randn(batch_size, 3, 32, 32)
    labels = tt.randint(0, 10, (batch_size,))

    def step(profiler: MemoryProfiler | None = None) -> dict[str, float]:
        optimizer.zero_grad()
        if profiler is None:
            loss_fn(model(images), labels).backward()
            optimizer.step()
            return {}
        with profiler.measure("step") as whole:
            with profiler.measure("forward") as forward:
                loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            del loss
        return {"forward keeps": forward.net_mb, "peak": whole.peak_mb}

    step()
    return step(MemoryProfiler())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Memory of one training step of the reference CNN.")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write the results file")
    args = parser.parse_args(argv)
    batch_size = args.batch_size
    figures = measure_step(batch_size)
    table = "\n".join(
        [
            "| reference CNN training step (SGD) | MiB |",
            "|---|---|",
            *(f"| {name}, batch {batch_size} | {value:.1f} |" for name, value in figures.items()),
        ]
    )
    print(table)
    if not args.no_record:
        command = "python -m benchmarks.graph_memory" + (f" --batch-size {batch_size}" if batch_size != 64 else "")
        record = (
            "# Graph memory: one training step of the reference CNN\n\n"
            f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}  \n"
            f"Date: {datetime.date.today().isoformat()}  \n"
            f"Command: `{command}`\n\n{table}\n"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        temporary = RESULTS.with_suffix(".tmp")
        temporary.write_text(record)
        temporary.replace(RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
