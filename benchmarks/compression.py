"""Compressed models against float32, each side in its own process: int8 Dense at batch 1, the int8 CNN
and the channel-pruned CNN at batch 64.

    python -m benchmarks.compression [--rounds N] [--threads N] [--no-wait] [--json PATH] [--output NAME]

Cases (the compressed side against its float32 baseline; ratio = baseline time / compressed time,
above 1 the compressed side is faster):

- ``dense_4096_batch1``: Dense(4096 -> 4096) against DynamicQuantizedDense (int8 weights, the float
  input quantized per call, float output), one input row. Target: >= 1.2x.
- ``dense_2048x256_batch1``: the same for the CIFAR CNN's first Dense layer (2048 -> 256).
- ``int8_cnn_batch64``: the reference CIFAR CNN (conv-BN-ReLU-pool x3, dense 2048 -> 256 -> 10) in
  evaluation mode against its static int8 version (``quantize_static``: BN folded, ReLU fused, int8
  kernels), 64 images, float input and float logits on both sides. Target: >= 0.5x; stretch >= 1.0x.
- ``slim_cnn_batch64``: the same float CNN against the copy with half the channels of conv2 and
  conv3 removed (``prune_channels``), 64 images. Reported with the FLOP cut; target: a latency cut at
  least 0.7 of the FLOP cut.

Method (DESIGN §8): the parent pins every thread pool to ``--threads`` (default 2) in the
environment the workers inherit and waits for an idle machine; each side of a case runs in its own
worker process, which builds its model once (random weights: the kernels' work does not depend on
the values) and times calls on request. A round asks both workers in turn (the order alternates),
one sample each; a sample is the mean of enough calls to last >= 20 ms. Rounds during which other
processes kept more than 0.35 cores busy are dropped and rerun. The ratio is the median over rounds
of the per-round ratio. Results go to ``benchmarks/results/<NAME>.md`` (default ``compression``)
and, with ``--json``, to a JSON file (the compression example records it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .harness import RESULTS_DIR, THREADS, LoadMeter, log, machine_description, pin_threads, wait_for_idle

CASES = {
    "dense_4096_batch1": ("Dense 4096 -> 4096, batch 1: int8 (dynamic) vs float32", 1.2),
    "dense_2048x256_batch1": ("Dense 2048 -> 256 (the CNN's first), batch 1: int8 (dynamic) vs float32", None),
    "int8_cnn_batch64": ("CIFAR CNN inference, batch 64: static int8 vs float32", 0.5),
    "slim_cnn_batch64": ("CIFAR CNN inference, batch 64: half the channels of conv2/conv3 vs all", None),
}
SIDES = ("baseline", "compressed")
#: conv2 and conv3 of benchmarks.training_step.tinytorch_model(), as layer indices, and the fraction of channels removed
CHANNELS_REMOVED = {4: 0.5, 8: 0.5}
MIN_SAMPLE_S = 0.02
MAX_OUTSIDE_LOAD = 0.35


# -- the worker: one side of one case -----------------------------------------------------------------
def _dense(features_in: int, features_out: int, compressed: bool):
    import tinytorch as tt
    from tinytorch.core.compression import DynamicQuantizedDense

    tt.manual_seed(0)
    layer = tt.Dense(features_in, features_out)
    x = tt.randn(1, features_in)
    return (DynamicQuantizedDense.from_float(layer) if compressed else layer), x


def _cnn(case: str, compressed: bool):
    import numpy as np

    import tinytorch as tt
    from tinytorch.core.compression import prune_channels, quantize_static

    from .training_step import batch, tinytorch_model

    tt.manual_seed(0)
    model = tinytorch_model().eval()
    images = batch(64)[0]
    if compressed and case == "int8_cnn_batch64":
        calibration = [batch(64, seed)[0] for seed in range(1, 3)]
        model = quantize_static(model, calibration)
    elif compressed:
        model = prune_channels(model, CHANNELS_REMOVED).eval()
    return model, tt.from_numpy(np.ascontiguousarray(images))


def build(case: str, side: str):
    """The zero-argument callable one side of ``case`` times: a forward pass without a graph."""
    import tinytorch as tt

    compressed = side == "compressed"
    if case == "dense_4096_batch1":
        model, x = _dense(4096, 4096, compressed)
    elif case == "dense_2048x256_batch1":
        model, x = _dense(2048, 256, compressed)
    else:
        model, x = _cnn(case, compressed)

    def call():
        with tt.no_grad():
            return model(x)

    return call


def worker(case: str, side: str, threads: int) -> None:
    """Serve timing requests on stdin ("<calls>" per line), answering with the seconds per call."""
    from tinytorch.core import kernels

    if kernels.compiled_available():
        kernels.set_num_threads(threads)
    call = build(case, side)
    for _ in range(2):  # warm-up: page faults, scratch buffers, thread start-up
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        calls = int(line)
        started = time.perf_counter()
        for _ in range(calls):
            call()
        print(json.dumps((time.perf_counter() - started) / calls), flush=True)


# -- the parent: rounds over both workers --------------------------------------------------------------
class Side:
    """A worker process timing one side of one case."""

    def __init__(self, case: str, side: str, threads: int):
        command = [sys.executable, "-m", "benchmarks.compression", "--worker", case, side, f"--threads={threads}"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).resolve().parent.parent)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"benchmarks.compression: the {side} worker of {case} did not start")

    def time(self, calls: int) -> float:
        self.process.stdin.write(f"{calls}\n")
        self.process.stdin.flush()
        return float(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(case: str, rounds: int, threads: int) -> dict:
    sides = {side: Side(case, side, threads) for side in SIDES}
    try:
        calls = {side: max(1, int(MIN_SAMPLE_S / max(worker.time(1), 1e-9)) + 1) for side, worker in sides.items()}
        samples: dict[str, list[float]] = {side: [] for side in SIDES}
        loads, dropped = [], 0
        while len(samples["baseline"]) < rounds:
            order = SIDES if len(samples["baseline"]) % 2 == 0 else SIDES[::-1]
            meter = LoadMeter().start()
            times = {side: sides[side].time(calls[side]) for side in order}
            load = meter.stop()
            if load is not None and load > MAX_OUTSIDE_LOAD and dropped < 4 * rounds:
                dropped += 1
                time.sleep(1.0)
                continue
            loads.append(load)
            for side in SIDES:
                samples[side].append(times[side])
        ratios = [b / c for b, c in zip(samples["baseline"], samples["compressed"])]
    finally:
        for worker in sides.values():
            worker.close()
    title, target = CASES[case]
    return {
        "title": title,
        "baseline_ms": 1e3 * statistics.median(samples["baseline"]),
        "ms": 1e3 * statistics.median(samples["compressed"]),
        "ratio": statistics.median(ratios),
        "ratio_quartiles": [float(q) for q in statistics.quantiles(ratios, n=4)] if len(ratios) > 1 else [ratios[0]] * 3,
        "target": f">= {target}x" if target else "",
        "met": None if target is None else statistics.median(ratios) >= target,
        "rounds": rounds,
        "dropped": dropped,
        "outside_load": statistics.mean(l for l in loads if l is not None) if any(l is not None for l in loads) else None,
    }


def flop_cut() -> dict:
    """Forward FLOPs per image of the float CNN and of the channel-pruned one (the profiler's counter)."""
    from tinytorch.core.compression import prune_channels
    from tinytorch.core.profiling import count_flops

    from .training_step import tinytorch_model

    model = tinytorch_model()
    full = float(count_flops(model, (1, 3, 32, 32), backward=False).forward)
    slim = float(count_flops(prune_channels(model, CHANNELS_REMOVED), (1, 3, 32, 32), backward=False).forward)
    return {"flops": full, "slim_flops": slim, "cut": 1 - slim / full}


def markdown(results: dict, idle_text: str, command: str) -> str:
    lines = [
        "# Benchmark: compression",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Command: `{command}`",
        *(f"- {line}" for line in machine_description()),
        f"- Machine before the run: {idle_text}",
        f"- Method: each side in its own worker process, {results['threads']} threads each; {results['rounds']} kept rounds "
        "per case, sides alternating; a sample is the mean of calls lasting >= 20 ms; the ratio is the median of per-round "
        "ratios (baseline time / compressed time: above 1 the compressed side is faster).",
        "",
        "| case | float32 (ms) | compressed (ms) | ratio | ratio quartiles | target | met | outside load (cores) | rounds dropped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"].values():
        q = case["ratio_quartiles"]
        load = "—" if case["outside_load"] is None else f"{case['outside_load']:.2f}"
        met = "—" if case["met"] is None else ("yes" if case["met"] else "NO")
        lines.append(f"| {case['title']} | {case['baseline_ms']:.3f} | {case['ms']:.3f} | {case['ratio']:.2f}x | "
                     f"{q[0]:.2f}-{q[2]:.2f} | {case['target'] or '—'} | {met} | {load} | {case['dropped']} |")
    flops = results.get("flops")
    slim = results["cases"].get("slim_cnn_batch64")
    if flops and slim:
        latency_cut = 1 - 1 / slim["ratio"]
        lines += ["", f"Channel pruning: forward FLOPs per image {flops['flops'] / 1e6:.2f} M -> {flops['slim_flops'] / 1e6:.2f} M "
                  f"({100 * flops['cut']:.1f} % fewer); measured time {100 * latency_cut:.1f} % less, "
                  f"{latency_cut / flops['cut']:.2f} of the FLOP cut (target >= 0.7)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compression", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--no-wait", action="store_true", help="skip the idle-machine wait (the load is still recorded)")
    parser.add_argument("--only", help="comma-separated cases to run")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--output", default="compression", help="results file name under benchmarks/results/")
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, threads=args.threads)
        return 0
    pin_threads(args.threads)
    cases = [c.strip() for c in args.only.split(",")] if args.only else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    idle = wait_for_idle(timeout=0 if args.no_wait else 900.0)
    command = " ".join(["python", *sys.orig_argv[1:]])
    results: dict = {"command": command, "threads": args.threads, "rounds": args.rounds, "load": idle.describe(), "cases": {}}
    for case in cases:
        log(f"{case} ...")
        results["cases"][case] = measure(case, args.rounds, args.threads)
        log(f"{case}: {results['cases'][case]['ratio']:.2f}x")
    if "slim_cnn_batch64" in cases:
        results["flops"] = flop_cut()
    text = markdown(results, idle.describe(), command)
    print(text)
    path = RESULTS_DIR / f"{args.output}.md"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    if args.json:
        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(results, indent=2))
        os.replace(temporary, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
