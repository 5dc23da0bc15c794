"""Training-step benchmark: the reference CNN in TinyTorch and in PyTorch, each in its own process.

    python -m benchmarks.training_step [--repeats N] [--only TEXT] [--no-wait] [--threads N] [--reference] [--output NAME]

The model (NCHW, float32; ``specs.py``): three blocks of Conv 3x3 (padding 1) -> BatchNorm2D -> ReLU
-> MaxPool 2x2 (channels 3 -> 32 -> 64 -> 128, images 32 -> 16 -> 8 -> 4), then Dense 2048 -> 256,
ReLU, Dense 256 -> 10. Both frameworks load the same initial weights.

1. **Training step**, batch 64: forward, cross-entropy, backward, Adam step, with each framework's
   own layers, loss and optimizer (``tt.Adam``; ``torch.optim.Adam``). Target: 1.2x PyTorch.
2. **Inference**, batch 256, evaluation mode, no graph. Target: 1.5x PyTorch.
3. **Same losses**: the first two training losses of each, from the same weights and batch.
4. **Peak memory of training**, the same measurement (``memory.py``) for both, each in a fresh
   process; for TinyTorch also tracemalloc's view of one step.
5. **Profile**: where TinyTorch's step spends its time (cProfile, in its own process).

``--reference`` adds TinyTorch on its NumPy reference kernels as a third implementation (slow).
Results: stdout, ``benchmarks/results/<NAME>.md`` and ``.json`` (default ``training_step``).
"""

from __future__ import annotations

from .harness import (
    Case,
    Impl,
    Target,
    call_in_fresh_process,
    format_table,
    log,
    run_case,
    suite_arguments,
    wait_for_idle,
    write_results,
)
from .specs import INFER_BATCH, TRAIN_BATCH

NAMES = {"compiled": "TinyTorch", "reference": "TinyTorch on its reference kernels", "torch": "PyTorch"}
MEMORY_LIMIT = 1.5  # TinyTorch's peak may be at most this many times PyTorch's


def model_case(name: str, factory: str, batch: int, target: float, with_reference: bool) -> Case:
    impls = {"compiled": Impl(f"benchmarks.tinytorch_side:{factory}", backend="compiled")}
    if with_reference:
        impls["reference"] = Impl(f"benchmarks.tinytorch_side:{factory}", backend="reference")
    impls["torch"] = Impl(f"benchmarks.torch_side:{factory}")
    return Case(name, {"batch": batch}, impls, (Target("torch", target),))


def cases(with_reference: bool = False) -> list[Case]:
    return [
        model_case(f"training step, batch {TRAIN_BATCH}", "cnn_train_step", TRAIN_BATCH, 1.2, with_reference),
        model_case(f"inference, batch {INFER_BATCH}", "cnn_inference", INFER_BATCH, 1.5, with_reference),
    ]


def images_per_second(result, batch_size: int) -> str:
    return ", ".join(f"{NAMES[label]} {batch_size / result.median(label):,.0f} images/s" for label in result.labels)


def main(argv: list[str] | None = None) -> None:
    parser = suite_arguments("python -m benchmarks.training_step", __doc__.split("\n\n")[0], "training_step")
    parser.add_argument("--reference", action="store_true", help="also time TinyTorch on its NumPy reference kernels")
    args = parser.parse_args(argv)
    threads = args.threads
    chosen = [case for case in cases(args.reference) if args.only in case.name]
    if not chosen:
        parser.error(f"no case name contains {args.only!r}")

    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    losses = {side: call_in_fresh_process(f"benchmarks.{side}_side:cnn_first_losses", threads, batch=TRAIN_BATCH)
              for side in ("tinytorch", "torch")}
    results = [run_case(case, threads=threads, repeats=args.repeats, warm_calls=args.warm_calls) for case in chosen]
    log("measuring memory in fresh processes")
    rss = {side: call_in_fresh_process(f"benchmarks.{side}_side:cnn_train_memory", threads, batch=TRAIN_BATCH)
           for side in ("tinytorch", "torch")}
    traced = call_in_fresh_process("benchmarks.tinytorch_side:cnn_step_tracemalloc", threads, batch=TRAIN_BATCH)
    log("profiling")
    profile = call_in_fresh_process("benchmarks.tinytorch_side:cnn_profile", threads, batch=TRAIN_BATCH)

    memory_ratio = rss["tinytorch"]["peak_mib"] / rss["torch"]["peak_mib"]
    same = "; ".join(f"step {i + 1}: TinyTorch {a:.6f}, PyTorch {b:.6f}"
                     for i, (a, b) in enumerate(zip(losses["tinytorch"], losses["torch"])))
    batches = {f"training step, batch {TRAIN_BATCH}": TRAIN_BATCH, f"inference, batch {INFER_BATCH}": INFER_BATCH}
    notes = "\n".join(
        [
            "## Throughput",
            "",
            *(f"- {r.case.name}: {images_per_second(r, batches[r.case.name])}." for r in results),
            f"- Same start, same losses: {same}.",
            "",
            "## Peak memory of training",
            "",
            "Peak RSS growth in a fresh process over building the model and optimizer and three training "
            "steps (VmHWM after, reset with /proc/self/clear_refs, minus VmRSS before); the same method for both.",
            "",
            f"- TinyTorch: {rss['tinytorch']['peak_mib']:.1f} MiB; PyTorch: {rss['torch']['peak_mib']:.1f} MiB; "
            f"ratio {memory_ratio:.2f}x (target: at most {MEMORY_LIMIT}x): {'met' if memory_ratio <= MEMORY_LIMIT else 'MISSED'}.",
            f"- TinyTorch by tracemalloc: {traced['held_mib']:.1f} MiB held between steps (parameters, gradients, "
            f"Adam state, kernel scratch buffers), and one step peaks {traced['step_peak_mib']:.1f} MiB above that "
            "(the activations kept for backward, and the backward pass's temporaries).",
            "",
            "## Profile",
            "",
            profile,
        ]
    )
    print(format_table(results))
    print()
    print(notes)
    output = args.output or (None if args.only else "training_step")
    if output:
        extra = {"first_losses": losses, "peak_rss_mib": rss, "tracemalloc_mib": traced}
        log(f"wrote {write_results(output, results, idle, threads, notes, extra)}")


if __name__ == "__main__":
    main()
