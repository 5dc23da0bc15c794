"""Training-step benchmark: the reference CNN in TinyTorch and in PyTorch, on the same machine and threads.

    python -m benchmarks.training_step [--repeats N] [--no-wait] [--threads N] [--reference] [--output NAME]

The model (NCHW, float32): three blocks of Conv 3x3 (padding 1) -> BatchNorm2D -> ReLU -> MaxPool 2x2
(channels 3 -> 32 -> 64 -> 128, images 32 -> 16 -> 8 -> 4), then Dense 2048 -> 256, ReLU,
Dense 256 -> 10. Both frameworks start from the same weights.

Three measurements:

1. **Training step**, batch 64: forward, cross-entropy (log-softmax, then the true class's
   entry), backward, Adam step (TinyTorch: ``kernels.adam_step`` per parameter; PyTorch:
   ``torch.optim.Adam``). Reported as images per second. Target: at least PyTorch's.
2. **Inference**, batch 256, evaluation mode, no graph. Target: at least PyTorch's.
3. **Peak memory of training**, measured the same way for both, each in a fresh process: the
   resident set (RSS) after imports and the input batch, then the kernel's high-water mark is
   reset (``/proc/self/clear_refs``) and the model, the optimizer and three training steps run;
   the peak is the high-water mark minus that baseline: parameters, gradients, optimizer state,
   activations, temporaries and any allocator caching, whoever allocated them. Target: at most
   1.5x PyTorch. For TinyTorch, ``tracemalloc`` (which sees every NumPy allocation) also gives the
   peak of one step above the memory held between steps.

In the table, ``compiled`` is TinyTorch (on its compiled kernels) and ``torch`` is PyTorch;
``--reference`` adds TinyTorch on its NumPy reference kernels as a third column (slow). A cProfile
of TinyTorch's training step (where the time goes, by function) is appended to the results.
The results go to stdout and to ``benchmarks/results/<NAME>.md`` (default ``training_step``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any, Callable

from .harness import (
    THREADS,
    Case,
    LoadMeter,
    Result,
    Target,
    format_table,
    log,
    pin_threads,
    run_case,
    wait_for_idle,
    write_results,
)

TRAIN_BATCH, INFER_BATCH, CLASSES = 64, 256, 10
BLOCKS = ((3, 32), (32, 64), (64, 128))
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


# -- the model in both frameworks -------------------------------------------------------------------
def tinytorch_model():
    import tinytorch as tt

    layers = []
    for c_in, c_out in BLOCKS:
        layers += [tt.Conv2D(c_in, c_out, 3, padding=1), tt.BatchNorm2D(c_out), tt.ReLU(), tt.MaxPool2D(2)]
    return tt.Sequential(*layers, tt.Flatten(), tt.Dense(128 * 4 * 4, 256), tt.ReLU(), tt.Dense(256, CLASSES))


def torch_model(torch):
    nn = torch.nn
    layers = []
    for c_in, c_out in BLOCKS:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, CLASSES))


def batch(size: int, seed: int = 0):
    """A CIFAR-shaped float32 batch and its labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((size, 3, 32, 32), dtype=np.float32), rng.integers(0, CLASSES, size)


class KernelAdam:
    """Adam with torch.optim.Adam's defaults, one ``kernels.adam_step`` call per parameter."""

    def __init__(self, params):
        import numpy as np

        self.params = list(params)
        self.moments = [(np.zeros_like(p.data), np.zeros_like(p.data)) for p in self.params]
        self.steps = 0

    def step(self) -> None:
        from tinytorch.core import kernels

        self.steps += 1
        for p, (exp_avg, exp_avg_sq) in zip(self.params, self.moments):
            kernels.adam_step(p.data, p.grad.data, exp_avg, exp_avg_sq, self.steps, LR, *BETAS, EPS)


def tinytorch_trainer(model, images, labels) -> Callable[[], Any]:
    """One training step of ``model`` on the batch: returns the loss tensor."""
    import numpy as np

    import tinytorch as tt

    x, rows = tt.from_numpy(images), np.arange(len(labels))
    optimizer = KernelAdam(model.parameters())

    def step():
        model.zero_grad()
        loss = -model(x).log_softmax(axis=1)[rows, labels].mean()
        loss.backward()
        optimizer.step()
        return loss

    return step


def torch_trainer(torch, model, images, labels) -> Callable[[], Any]:
    x, y, rows = torch.from_numpy(images), torch.from_numpy(labels), torch.arange(len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = -model(x).log_softmax(dim=1)[rows, y].mean()
        loss.backward()
        optimizer.step()
        return loss

    return step


def paired_models(torch):
    """A TinyTorch model and a PyTorch model holding the same initial weights."""
    import tinytorch as tt

    tt.manual_seed(0)
    ours = tinytorch_model()
    theirs = torch_model(torch)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def check_same_loss(torch) -> str:
    """Both frameworks' first two losses from the same weights and batch: a check that the models match."""
    images, labels = batch(TRAIN_BATCH)
    ours, theirs = paired_models(torch)
    ours_step, theirs_step = tinytorch_trainer(ours, images, labels), torch_trainer(torch, theirs, images, labels)
    pairs = [(float(ours_step().item()), float(theirs_step().item())) for _ in range(2)]
    return "; ".join(f"step {i + 1}: TinyTorch {a:.6f}, PyTorch {b:.6f}" for i, (a, b) in enumerate(pairs))


# -- timed cases ------------------------------------------------------------------------------------
def training_case(torch, with_reference: bool) -> Case:
    def build():
        from tinytorch.core import kernels

        images, labels = batch(TRAIN_BATCH)
        ours, theirs = paired_models(torch)
        runs = {"compiled": tinytorch_trainer(ours, images, labels)}
        if with_reference:
            slow_model = tinytorch_model()
            slow_step = tinytorch_trainer(slow_model, images, labels)

            def reference():
                with kernels.use("reference"):
                    slow_step()

            runs["reference"] = reference
        runs["torch"] = torch_trainer(torch, theirs, images, labels)
        return runs

    return Case(f"training step, batch {TRAIN_BATCH}", build, (Target("torch", 1.0),))


def inference_case(torch, with_reference: bool) -> Case:
    def build():
        import tinytorch as tt
        from tinytorch.core import kernels

        images, _ = batch(INFER_BATCH, seed=1)
        ours, theirs = paired_models(torch)
        ours.eval(), theirs.eval()
        x, xt = tt.from_numpy(images), torch.from_numpy(images)

        def compiled():
            with tt.no_grad():
                return ours(x)

        def reference():
            with tt.no_grad(), kernels.use("reference"):
                return ours(x)

        def torch_run():
            with torch.no_grad():
                return theirs(xt)

        runs = {"compiled": compiled}
        if with_reference:
            runs["reference"] = reference
        runs["torch"] = torch_run
        return runs

    return Case(f"inference, batch {INFER_BATCH}", build, (Target("torch", 1.0),))


# -- memory -----------------------------------------------------------------------------------------
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def memory_probe(framework: str) -> dict[str, float]:
    """Run in a fresh process: peak RSS growth (MiB) over building the model, its optimizer and three steps."""
    import gc

    images, labels = batch(TRAIN_BATCH)
    if framework == "torch":
        import torch

        def make():
            return torch_trainer(torch, torch_model(torch), images, labels)
    else:
        import tinytorch as tt

        def make():
            tt.manual_seed(0)
            return tinytorch_trainer(tinytorch_model(), images, labels)

    gc.collect()
    baseline = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM, the peak RSS, to the current RSS
    step = make()
    for _ in range(3):
        step()
    return {"peak_mib": (_status_kib("VmHWM") - baseline) / 1024, "baseline_mib": baseline / 1024}


def measure_rss(framework: str, threads: int) -> dict[str, float]:
    """:func:`memory_probe` in a fresh interpreter with the same threads."""
    command = [sys.executable, "-m", "benchmarks.training_step", "--threads", str(threads), "--memory-probe", framework]
    done = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    if done.returncode != 0:
        raise RuntimeError(f"the {framework} memory probe failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tracemalloc_step_peak() -> dict[str, float]:
    """TinyTorch only: what a model held between steps, and the peak of one step above that (MiB)."""
    import gc

    import tinytorch as tt

    images, labels = batch(TRAIN_BATCH)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tt.manual_seed(0)
    step = tinytorch_trainer(tinytorch_model(), images, labels)
    for _ in range(2):
        step()  # gradients, optimizer state and kernel scratch buffers exist after the first step
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"held_mib": (held - base) / 2**20, "step_peak_mib": (peak - held) / 2**20}


# -- profile ----------------------------------------------------------------------------------------
def profile_training(steps: int = 5, top: int = 14) -> str:
    """Where TinyTorch's training step spends its time: cProfile, by function's own time."""
    import tinytorch as tt

    images, labels = batch(TRAIN_BATCH)
    tt.manual_seed(0)
    step = tinytorch_trainer(tinytorch_model(), images, labels)
    for _ in range(2):
        step()
    meter = LoadMeter().start()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    load = meter.stop()
    entries = [e for e in profiler.getstats() if not isinstance(e.code, str)]  # str: a C function
    total = sum(e.inlinetime for e in profiler.getstats())
    rows = sorted(entries, key=lambda e: e.inlinetime, reverse=True)[:top]
    lines = [
        f"cProfile of {steps} TinyTorch training steps ({total / steps * 1e3:.1f} ms per step under the profiler; "
        f"outside load {'unknown' if load is None else f'{load:.2f} cores'}), by own time. The Cython kernels do not report to the profiler: their time is counted in the "
        "Python function that calls them (the Function's forward or backward).",
        "",
        "| function | calls per step | own time per step (ms) | share |",
        "|---|---|---|---|",
    ]
    for e in rows:
        where = os.path.relpath(e.code.co_filename, os.path.dirname(os.path.dirname(__file__)))
        lines.append(
            f"| `{e.code.co_qualname}` ({where}) | {e.callcount / steps:g} | {e.inlinetime / steps * 1e3:.2f} | "
            f"{e.inlinetime / total:.0%} |"
        )
    return "\n".join(lines)


# -- report -----------------------------------------------------------------------------------------
NAMES = {"compiled": "TinyTorch", "reference": "TinyTorch on its reference kernels", "torch": "PyTorch"}


def images_per_second(result: Result, batch_size: int) -> str:
    return ", ".join(f"{NAMES[label]} {batch_size / result.median(label):,.0f} images/s" for label in result.labels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per implementation (default 15)")
    parser.add_argument("--output", default="training_step", help="results file under benchmarks/results/ (default training_step)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads for every library (default {THREADS})")
    parser.add_argument("--reference", action="store_true", help="also time TinyTorch on its NumPy reference kernels")
    parser.add_argument("--memory-probe", choices=("tinytorch", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    pin_threads(args.threads)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    import torch

    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    same_loss = check_same_loss(torch)
    train = run_case(training_case(torch, args.reference), repeats=args.repeats)
    infer = run_case(inference_case(torch, args.reference), repeats=args.repeats)
    log("measuring memory in fresh processes")
    rss = {name: measure_rss(name, args.threads) for name in ("tinytorch", "torch")}
    traced = tracemalloc_step_peak()
    log("profiling")
    profile = profile_training()

    ratio = rss["tinytorch"]["peak_mib"] / rss["torch"]["peak_mib"]
    notes = "\n".join(
        [
            "## Throughput",
            "",
            f"- Training (batch {TRAIN_BATCH}): {images_per_second(train, TRAIN_BATCH)}.",
            f"- Inference (batch {INFER_BATCH}): {images_per_second(infer, INFER_BATCH)}.",
            f"- Same start, same losses: {same_loss}.",
            "",
            "## Peak memory of training",
            "",
            "Peak RSS growth in a fresh process over building the model and optimizer and three training "
            "steps (VmHWM after, reset with /proc/self/clear_refs, minus VmRSS before); the same method for both.",
            "",
            f"- TinyTorch: {rss['tinytorch']['peak_mib']:.1f} MiB; PyTorch: {rss['torch']['peak_mib']:.1f} MiB; "
            f"ratio {ratio:.2f}x (target: at most 1.5x): {'met' if ratio <= 1.5 else 'MISSED'}.",
            f"- TinyTorch by tracemalloc: {traced['held_mib']:.1f} MiB held between steps (parameters, gradients, "
            f"Adam state, kernel scratch buffers), and one step peaks {traced['step_peak_mib']:.1f} MiB above that "
            "(the activations kept for backward, and the backward pass's temporaries).",
            "",
            "## Profile",
            "",
            profile,
        ]
    )
    table = format_table([train, infer])
    print(table)
    print()
    print(notes)
    log(f"wrote {write_results(args.output, [train, infer], idle, notes=notes)}")


if __name__ == "__main__":
    main()
