"""Serving benchmark: an MLP and the CIFAR-10 CNN behind ``tito serve``, under open-loop load on loopback.

    python -m benchmarks.serving [--duration S] [--probe S] [--repeats N] [--model FILE] [--max-batch N] [--max-delay-ms MS]
                                 [--no-wait] [--threads N] [--output NAME]

Each server runs in its own process (``tito serve``, started by ``ServerProcess``); the load
generator (``tinytorch.core.mlops.load_test``: Poisson arrivals scheduled in advance, latency from
the scheduled send time) runs in this one. Before each server starts, the machine must be idle.
The servers' model runs on ``--threads`` BLAS/OpenMP threads (default 1: on two cores the other
one belongs to the server's event loop and to the client; with two, a loaded machine made the
model's threads wait for each other).

1. **Latency at a fixed rate.** The MLP (784-256-128-10) on a batch-1 server at 100 requests/s for
   ``--duration`` seconds. Target: p99 <= 10 ms. The CNN on a batch-1 server at 50 requests/s.
2. **Throughput at saturation**, MLPerf LoadGen's Server scenario: the highest Poisson rate at which
   every request succeeds, the achieved rate keeps up with the offered one (>= 95 %) and the p99
   latency stays within the bound ``max delay + one batch time`` (one batch time: the model's
   median time on a full ``--max-batch`` batch, measured in this process before the servers
   start). Found as LoadGen's FindPeakPerformance does (lesson 14's ``find_peak_server_qps``: halve
   or double from 50 requests/s until the verdict flips, then bisect to within 10 %); each test
   lasts ``--probe`` seconds after a one-second warm-up, and a rate passes when the majority of
   ``--repeats`` tests there pass (every test is in the table). Measured for the batch-1 server and the
   micro-batching server under the same bound. Target (CNN): micro-batching >= 2x batch-1.
3. **CPU per request**, of the server process (``/proc``) and of the load generator (this
   process), in every probe. Client and servers share the machine's cores, so
   ``cores / (server + client CPU per request)`` is the most any server can sustain; the ratio of
   the two servers' ceilings, and the model's own batch-1 / batch-32 time per example, say how
   much of the 2x target batching can reach on this machine at all.

The results (every probe) go to stdout and to ``benchmarks/results/<NAME>.md`` (default ``serving``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .harness import log, machine_description, pin_threads, wait_for_idle

ROOT = Path(__file__).resolve().parents[1]
MLP_TARGET_P99_S, MLP_RATE, CNN_RATE = 0.010, 100.0, 50.0
MIN_KEEP_UP = 0.95


@dataclass
class Probe:
    """One load test at one rate, and whether it met the bound."""

    server: str
    rate: float
    result: object
    valid: bool  # the name lesson 14's search reads
    server_cpu_s: float | None  # CPU time of the server process per request sent (None: no /proc)
    client_cpu_s: float  # CPU time of the load generator per request sent

    def total_cpu_s(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s + self.client_cpu_s


def build_packages(folder: Path, model_file: str | None) -> dict[str, tuple[Path, object]]:
    """The two model packages (and the models, for timing): an MLP, and the CIFAR CNN (trained if a checkpoint is given)."""
    import numpy as np

    import tinytorch as tt
    from tinytorch.core.checkpoint import load_checkpoint
    from tinytorch.core.mlops import package

    sys.path.insert(0, str(ROOT / "examples"))
    from train_cifar10 import build_model

    tt.manual_seed(0)
    mlp = tt.Sequential(tt.Dense(784, 256), tt.ReLU(), tt.Dense(256, 128), tt.ReLU(), tt.Dense(128, 10))
    cnn = build_model()
    trained = bool(model_file) and Path(model_file).is_file()
    if trained:
        load_checkpoint(model_file, cnn)
    classes = [str(i) for i in range(10)]
    return {
        "MLP 784-256-128-10": (package(mlp, folder / "mlp", signature=np.zeros((1, 784), np.float32), classes=classes), mlp),
        f"CIFAR CNN ({'trained' if trained else 'untrained weights: same compute'})":
            (package(cnn, folder / "cnn", signature=np.zeros((1, 3, 32, 32), np.float32), classes=classes), cnn),
    }


def batch_seconds(model, example_shape: tuple[int, ...], batch: int, repeats: int = 20) -> float:
    """Median time of the model's forward pass on one batch, in this process."""
    import statistics

    import numpy as np

    import tinytorch as tt

    x = tt.tensor(np.random.default_rng(0).normal(size=(batch, *example_shape)).astype(np.float32))
    model.eval()
    times = []
    with tt.no_grad():
        for i in range(repeats + 3):
            start = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def probe_once(process, server: str, rate: float, seconds: float, bound: float, seed: int) -> Probe:
    """One load test at ``rate`` after a one-second warm-up at the same rate, with both sides' CPU time."""
    from tinytorch.core.mlops import load_test

    load_test(process.url, rate, 1.0, arrivals="poisson", warmup_s=0, timeout_s=30.0, seed=seed + 1)
    server_before, client_before = process.cpu_seconds(), time.process_time()
    result = load_test(process.url, rate, seconds, arrivals="poisson", warmup_s=0, timeout_s=30.0, seed=seed)
    server_after, client_after = process.cpu_seconds(), time.process_time()
    sent = max(1, result.completed + result.failed)
    server_cpu = None if server_before is None else (server_after - server_before) / sent
    keeps_up = result.achieved_rate >= MIN_KEEP_UP * result.scheduled / seconds
    valid = result.failed == 0 and keeps_up and result.latency_s.get("p99", float("inf")) <= bound
    lat = result.latency_s
    log(f"  {server} at {rate:.3g}/s: achieved {result.achieved_rate:.1f}/s, p99 "
        f"{lat.get('p99', float('nan')) * 1e3:.1f} ms (bound {bound * 1e3:.1f}), failed {result.failed}: "
        f"{'pass' if valid else 'FAIL'}")
    return Probe(server, rate, result, valid, server_cpu, (client_after - client_before) / sent)


def probe(process, server: str, rate: float, seconds: float, bound: float, repeats: int, runs: list[Probe]) -> Probe:
    """The verdict at ``rate``: the majority of up to ``repeats`` load tests, stopping once it is decided.

    On a shared two-core machine one stall of a few tens of milliseconds decides an 8-second
    test's p99; one test per rate let such a stall end a saturation search early (a batch-1 server
    failed at 200 requests/s in one run and passed 336 in the one before). Every test goes to
    ``runs``; the one returned carries the verdict and the test whose p99 is the median.
    """
    tests: list[Probe] = []
    need = repeats // 2 + 1
    while sum(t.valid for t in tests) < need and sum(not t.valid for t in tests) < need:
        tests.append(probe_once(process, server, rate, seconds, bound, seed=int(rate) + 1000 * len(tests)))
    runs.extend(tests)
    valid = sum(t.valid for t in tests) >= need
    by_p99 = sorted(tests, key=lambda t: t.result.latency_s.get("p99", float("inf")))
    median = by_p99[(len(by_p99) - 1) // 2]
    return Probe(server, rate, median.result, valid, median.server_cpu_s, median.client_cpu_s)


def saturation(process, server: str, seconds: float, bound: float, repeats: int,
               start_rate: float = 50.0) -> tuple[float, list[Probe]]:
    """The highest passing rate, by lesson 14's LoadGen-style search (halve or double, then bisect to 10 %),
    each rate judged by the majority of ``repeats`` tests; returns it and every test run."""
    from tinytorch.core.benchmarking.loadgen import find_peak_server_qps

    runs: list[Probe] = []
    best, _ = find_peak_server_qps(lambda rate: probe(process, server, rate, seconds, bound, repeats, runs), start_rate,
                                   tolerance=0.10, max_runs=12)
    return best or 0.0, runs


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.2f}"


def cpu_ceiling(probes: list[Probe], best: float, cores: int) -> tuple[Probe, float | None]:
    """The probe at the server's highest passing rate (else the one that served most), and ``cores / CPU per request`` there."""
    passing = [p for p in probes if p.valid and p.rate == best]
    chosen = passing[0] if passing else max(probes, key=lambda p: p.result.completed)
    total = chosen.total_cpu_s()
    return chosen, None if not total else cores / total


def ceiling_lines(probes: dict[str, list[Probe]], best: dict[str, float], one: float, full: float, max_batch: int,
                  cores: int) -> tuple[list[str], float | None]:
    """The record's CPU-ceiling paragraph for one model, and the ratio of the two servers' ceilings."""
    lines, ceilings = [], []
    for label, server_probes in probes.items():
        chosen, ceiling = cpu_ceiling(server_probes, best[label], cores)
        ceilings.append(ceiling)
        lines.append(f"- CPU per request, {label} server at {chosen.rate:.3g} requests/s: server {ms(chosen.server_cpu_s)} ms "
                     f"+ load generator {ms(chosen.client_cpu_s)} ms = {ms(chosen.total_cpu_s())} ms, so {cores} cores carry "
                     f"at most {'—' if ceiling is None else f'{ceiling:.0f}'} requests/s")
    ratio = ceilings[1] / ceilings[0] if all(ceilings) else None
    model_ratio = one / (full / max_batch)
    lines.append(f"- Ceiling ratio (micro-batching / batch-1) if CPU were the only limit: "
                 f"{'—' if ratio is None else f'{ratio:.2f}x'}; the model alone, batch-1 time over batch-{max_batch} time "
                 f"per example: {model_ratio:.2f}x (the ratio with no HTTP cost at all)")
    return lines, ratio


def row(p: Probe) -> str:
    lat, r = p.result.latency_s, p.result
    figures = " | ".join(f"{lat[k] * 1e3:.2f}" for k in ("p50", "p90", "p99", "p99.9")) if lat.get("count") else "— | — | — | —"
    mean_batch = r.batch_sizes.get("mean")
    return (f"| {p.server} | {p.rate:.3g} | {r.achieved_rate:.1f} | {r.completed} | {r.failed} | {figures} | "
            f"{'—' if mean_batch is None else f'{mean_batch:.1f}'} | {ms(p.server_cpu_s)} | {ms(p.client_cpu_s)} | "
            f"{'pass' if p.valid else 'fail'} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each fixed-rate test")
    parser.add_argument("--probe", type=float, default=8.0, help="seconds of each saturation probe")
    parser.add_argument("--model", default=str(ROOT / "examples" / "checkpoints" / "cifar10_cnn.npz"))
    parser.add_argument("--repeats", type=int, default=3,
                        help="load tests per rate in the saturation search; the majority decides")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the servers' model (and of the in-process batch timing); "
                             "1 leaves the other core to the event loop and the client")
    parser.add_argument("--no-wait", action="store_true", help="skip the idle-machine waits")
    parser.add_argument("--output", default="serving")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    from tinytorch.core.mlops import ServerProcess, load_test

    def idle() -> str:
        return "not checked (--no-wait)" if args.no_wait else wait_for_idle().describe()

    sections, verdicts = [], []
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="tinytorch-serving-") as scratch:
        packages = build_packages(Path(scratch), args.model)
        (mlp_name, (mlp_path, _)), (cnn_name, (cnn_path, cnn)) = packages.items()

        # 1. latency at a fixed rate
        fixed = []
        for name, path, rate in ((mlp_name, mlp_path, MLP_RATE), (cnn_name, cnn_path, CNN_RATE)):
            state = idle()
            with ServerProcess([path], max_batch=1) as server:
                result = load_test(server.url, rate, args.duration, arrivals="poisson", warmup_s=2.0)
            log(f"{name}, batch-1 server: {result.describe()}")
            fixed.append((name, rate, result, state))
        mlp_p99 = fixed[0][2].latency_s.get("p99", float("inf"))
        verdicts.append(f"MLP batch-1 p99 at {MLP_RATE:.0f} requests/s: {mlp_p99 * 1e3:.2f} ms (target <= "
                        f"{MLP_TARGET_P99_S * 1e3:.0f} ms): {'met' if mlp_p99 <= MLP_TARGET_P99_S else 'MISSED'}")
        lines = ["## Latency at a fixed rate (batch-1 server, Poisson arrivals)", "",
                 "| model | offered rps | achieved rps | completed | failed | p50 ms | p90 ms | p99 ms | p99.9 ms | machine before |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for name, rate, r, state in fixed:
            lat = r.latency_s
            lines.append(f"| {name} | {rate:.0f} | {r.achieved_rate:.1f} | {r.completed} | {r.failed} | "
                         + " | ".join(f"{lat[k] * 1e3:.2f}" for k in ("p50", "p90", "p99", "p99.9")) + f" | {state} |")
        sections.append("\n".join(lines))

        # 2. throughput at saturation, batch-1 against micro-batching, under the same latency bound
        for name, (path, model) in packages.items():
            shape = (784,) if model is packages[mlp_name][1] else (3, 32, 32)
            one, full = batch_seconds(model, shape, 1), batch_seconds(model, shape, args.max_batch)
            bound = args.max_delay_ms / 1000 + full
            results, by_server = {}, {}
            for label, max_batch in (("batch-1", 1), (f"micro-batching ({args.max_batch}, {args.max_delay_ms:g} ms)",
                                                      args.max_batch)):
                state = idle()
                log(f"{name}, {label} server: saturation search under p99 <= {bound * 1e3:.1f} ms")
                with ServerProcess([path], max_batch=max_batch, max_delay_ms=args.max_delay_ms) as server:
                    best, probes = saturation(server, label, args.probe, bound, args.repeats)
                results[label] = (best, state)
                by_server[label] = probes
            (b1, s1), (mb, s2) = results.values()
            ratio = mb / b1 if b1 else None
            shown = "—" if ratio is None else f"{ratio:.2f}x"
            ceiling, ceiling_ratio = ceiling_lines(by_server, {k: v[0] for k, v in results.items()}, one, full,
                                                   args.max_batch, cores)
            if model is cnn:
                met = ratio is not None and ratio >= 2
                verdicts.append(f"CNN micro-batching throughput at saturation: {shown} batch-1 (target >= 2x): "
                                f"{'met' if met else 'MISSED'}" + ("" if met else (
                                    f" (the CPU ceilings allow {'—' if ceiling_ratio is None else f'{ceiling_ratio:.2f}x'}, "
                                    f"the model alone {one / (full / args.max_batch):.2f}x: see the CNN section)")))
            lines = [f"## Throughput at saturation: {name}", "",
                     f"- Model time in this process: batch 1 {one * 1e3:.2f} ms; batch {args.max_batch} {full * 1e3:.2f} ms "
                     f"({full / args.max_batch * 1e3:.2f} ms per example)",
                     f"- Latency bound: max delay {args.max_delay_ms:g} ms + one batch time = {bound * 1e3:.2f} ms (p99)",
                     f"- **Saturation throughput: batch-1 {b1:.3g} requests/s, micro-batching {mb:.3g} requests/s "
                     f"({shown})**" + ("" if b1 and mb else " (0: no rate passed, down to the search's floor)"),
                     f"- Machine before each server: {s1}; {s2}", *ceiling, "",
                     "| server | offered rps | achieved rps | completed | failed | p50 ms | p90 ms | p99 ms | p99.9 ms | "
                     "mean batch | server CPU ms/req | client CPU ms/req | verdict |",
                     "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            lines += [row(p) for probes in by_server.values() for p in probes]
            sections.append("\n".join(lines))

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    found = {name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")}
    stack = (f"{'httptools' if found['httptools'] else 'h11'} HTTP parser, "
             f"{'uvloop' if found['uvloop'] else 'asyncio'} event loop")
    text = "\n".join([f"# Benchmark: {args.output}", "", f"- Date: {stamp}",
                      f"- Command: `{' '.join(['python', *sys.orig_argv[1:]])}`",
                      *(f"- {line}" for line in machine_description().values()),
                      f"- Servers: `tito serve` in a child process each (uvicorn, one worker, {stack}; `/predict` a bare "
                      "ASGI handler ahead of FastAPI; adaptive micro-batching; the model in one thread on "
                      f"{args.threads} BLAS/OpenMP thread(s)); client: the open-loop load generator in this process "
                      "(asyncio streams, pre-built requests); loopback HTTP/1.1 keep-alive, .npy request bodies of one "
                      "example, JSON answers. Percentiles are nearest-rank, from each request's scheduled send time. "
                      "CPU per request: the process's user + system time over the probe, divided by the requests sent.", "", "## Verdicts", "", *(f"- {v}" for v in verdicts), "", *sections, ""])
    print(text)
    from tinytorch.core.atomic_write import write_text_atomic

    log(f"written to {write_text_atomic(ROOT / 'benchmarks' / 'results' / f'{args.output}.md', text)}")


if __name__ == "__main__":
    main()
