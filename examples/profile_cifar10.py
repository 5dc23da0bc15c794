"""Profile the CIFAR-10 CNN with TinyTorch's op profiler: where a training step and an inference batch
spend their time, how many FLOPs each op does, and how close it comes to the machine's matmul peak.

Usage:
  profile_cifar10.py [--model=<file>] [--batch-size=<n>] [--inference-batch=<n>] [--steps=<n>] [--peak-seconds=<s>]
                     [--peak-size=<n>] [--out=<dir>]
  profile_cifar10.py (-h | --help)

Options:
  --model=<file>          Trained weights (a safe checkpoint from train_cifar10.py --save); when the file
                          is missing a freshly initialised model is profiled (the times do not depend on
                          the weights) and the record says so [default: examples/checkpoints/cifar10_cnn.npz].
  --batch-size=<n>        Images per training step [default: 64].
  --inference-batch=<n>   Images per inference batch [default: 256].
  --steps=<n>             Training steps (and inference batches) profiled, after 3 unprofiled warm-up
                          steps [default: 10].
  --peak-seconds=<s>      How long to time the matmul that stands for the machine's peak [default: 1.0].
  --peak-size=<n>         That matmul's size: float32 (n, n) @ (n, n) [default: 1024].
  --out=<dir>             Where README.md, profile.json and trace.json go [default: examples/results/profile_cifar10].

The training step is the example's own: the CNN of train_cifar10.py, cross-entropy with label
smoothing 0.1, SGD with Nesterov momentum and weight decay. Inputs are random normal batches (a
CNN's arithmetic does not depend on the pixel values). Run it on an idle machine: the record notes
the load average before and after.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np
from docopt import docopt

from tinytorch.core.atomic_write import write_text_atomic
from tinytorch.core.benchmarking import Timer
from tinytorch.core.benchmarking.environment import describe_environment
from tinytorch.core.checkpoint import load_checkpoint
from tinytorch.core.flops import count_flops
from tinytorch.core.profiler_events import shapes_text
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD

from train_cifar10 import build_model

def matmul_peak_gflops(size: int, seconds: float) -> float:
    """GFLOP/s of NumPy's BLAS on a square float32 product (the best block, all BLAS threads): a peak is
    what the machine can do, and on a shared VM the median drifts with the neighbours (104 to 192 GFLOP/s
    in three runs within ten minutes)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    measurement = Timer("a @ a", globals={"a": a}).blocked_autorange(min_run_time=seconds)
    return 2 * size**3 / min(measurement.times) / 1e9


def per_call_rows(averages, divide: int) -> list[dict]:
    """The profiler's rows as plain numbers, times per step (or per batch) in milliseconds."""
    total = averages.self_cpu_time_total
    return [
        {
            "name": row.key, "calls": row.count / divide, "self_ms": row.self_cpu_time_total / divide / 1e3,
            "self_share": row.self_cpu_time_total / total, "total_ms": row.cpu_time_total / divide / 1e3,
            "mflops": None if row.flops is None else row.flops / divide / 1e6,
            "gflops_per_s": None if not row.flops else row.flops / (row.cpu_time_total * 1e3),
            "input_shapes": None if row.input_shapes is None else [None if s is None else list(s) for s in row.input_shapes],
        }
        for row in sorted(averages, key=lambda r: r.self_cpu_time_total, reverse=True)
    ]  # fmt: skip


def markdown_table(rows: list[dict], limit: int, unit: str) -> list[str]:
    lines = [f"| op | Self CPU % | Self CPU per {unit} (ms) | CPU total per {unit} (ms) | calls per {unit} | MFLOPs per {unit} | GFLOP/s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows[:limit]:
        flops = "—" if r["mflops"] is None else f"{r['mflops']:.1f}"
        rate = "—" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}"
        lines.append(f"| `{r['name']}` | {100 * r['self_share']:.1f} % | {r['self_ms']:.2f} | {r['total_ms']:.2f} | "
                     f"{r['calls']:g} | {flops} | {rate} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    batch, infer_batch, steps = int(args["--batch-size"]), int(args["--inference-batch"]), int(args["--steps"])
    out = Path(args["--out"])
    load_before = os.getloadavg()
    tt.manual_seed(0)
    model = build_model()
    weights = Path(args["--model"])
    source = f"trained weights from `{weights}`" if weights.is_file() else "freshly initialised weights (no checkpoint found)"
    if weights.is_file():
        load_checkpoint(weights, model)
    rng = np.random.default_rng(0)
    images = tt.tensor(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32))
    labels = tt.tensor(rng.integers(0, 10, batch))
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def train_step() -> None:
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    model.train()
    for _ in range(3):
        train_step()
    with tt.profiler.profile() as one_step:  # the timeline of a single step, for Perfetto
        train_step()
    with tt.profiler.profile(record_shapes=True) as training:
        for _ in range(steps):
            train_step()

    model.eval()
    batch_images = tt.tensor(rng.standard_normal((infer_batch, 3, 32, 32), dtype=np.float32))
    with tt.no_grad():
        for _ in range(2):
            model(batch_images)
        with tt.profiler.profile() as inference:
            for _ in range(steps):
                model(batch_images)

    peak_size = int(args["--peak-size"])
    peak = matmul_peak_gflops(peak_size, float(args["--peak-seconds"]))
    flops = count_flops(model, (1, 3, 32, 32))
    train_rows = per_call_rows(training.key_averages(), steps)
    infer_rows = per_call_rows(inference.key_averages(), steps)
    conv_layers = per_call_rows(training.key_averages(group_by_input_shape=True), steps)
    products = sorted((r for r in conv_layers if r["gflops_per_s"] is not None), key=lambda r: (r["name"], -r["mflops"]))
    load_after = os.getloadavg()

    step_ms = training.wall_time_us / steps / 1e3
    infer_ms = inference.wall_time_us / steps / 1e3
    environment = describe_environment()
    lines = [
        "# Profile of the CIFAR-10 CNN (TinyTorch's op profiler)",
        "",
        f"- Date: {environment['date']}",
        f"- Command: `{' '.join(['python', *sys.argv])}`",
        f"- Machine: {environment['cpu']}, {environment['logical_cores']} logical cores; NumPy {environment['numpy']}; "
        f"kernels {environment['kernels']}; {environment['thread_variables']}",
        f"- Load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}",
        f"- Model: `examples/train_cifar10.py` `build_model()`, {model.num_parameters():,} parameters, {source}; "
        "random normal inputs",
        f"- Forward: {flops.forward_per_sample / 1e6:.2f} MFLOP per image (a multiply-add = 2 FLOPs), backward "
        f"{flops.backward / 1e6:.2f} MFLOP per image",
        f"- Machine matmul peak: **{peak:.1f} GFLOP/s** (NumPy float32 {peak_size}x{peak_size} @ {peak_size}x{peak_size}, best block of "
        "`Timer.blocked_autorange`)",
        "",
        f"## Training step, batch {batch}: {step_ms:.1f} ms per step ({batch / step_ms * 1e3:.0f} images/s), {steps} steps profiled",
        "",
        f"Recorded events cover {100 * training.self_cpu_time_total / training.wall_time_us:.1f} % of the profiled wall time. "
        "Self CPU: the op's own time (a `kernels.*` row is the compiled loop inside the op above it); "
        "CPU total includes the kernels it called.",
        "",
        *markdown_table(train_rows, 16, "step"),
        "",
        "### Matrix products per layer: achieved rate against the matmul peak",
        "",
        "A convolution's FLOPs are counted as the windows' (2 per multiply-add of a 3x3 window). The compiled kernel "
        "takes 3x3 stride-1 convolutions through Winograd's transform, whose products do 2.25 times fewer "
        "multiplications, so their rate in these FLOPs can pass the matmul peak: it says how fast the layer ran, "
        "not how busy the multipliers were.",
        "",
        "| op | input shapes | MFLOPs per step | CPU total per step (ms) | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|",
        *(f"| `{r['name']}` | {shapes_text(r['input_shapes'])} | {r['mflops']:.1f} | {r['total_ms']:.2f} | {r['gflops_per_s']:.1f} | "
          f"{100 * r['gflops_per_s'] / peak:.0f} % |" for r in products),
        "",
        f"## Inference, batch {infer_batch}: {infer_ms:.1f} ms per batch ({infer_batch / infer_ms * 1e3:.0f} images/s)",
        "",
        f"Recorded events cover {100 * inference.self_cpu_time_total / inference.wall_time_us:.1f} % of the profiled wall time.",
        "",
        *markdown_table(infer_rows, 10, "batch"),
        "",
        "## FLOPs per layer (one image)",
        "",
        "```",
        flops.table(),
        "```",
        "",
        "`trace.json` is the timeline of one training step: open it in https://ui.perfetto.dev or chrome://tracing.",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    one_step.export_chrome_trace(out / "trace.json")
    record = {"environment": environment, "command": " ".join(["python", *sys.argv]), "steps": steps,
              "batch_size": batch, "inference_batch": infer_batch, "step_ms": step_ms, "inference_ms": infer_ms,
              "matmul_peak_gflops": peak, "forward_mflops_per_image": flops.forward_per_sample / 1e6,
              "load_average_before_after": [load_before[0], load_after[0]], "weights": source,
              "training": train_rows, "inference": infer_rows, "products": products}  # fmt: skip
    write_text_atomic(out / "profile.json", json.dumps(record, indent=1) + "\n")
    write_text_atomic(out / "README.md", "\n".join(lines))
    print("\n".join(lines))
    return record


if __name__ == "__main__":
    main()
