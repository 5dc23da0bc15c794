"""All-reduce latency and bandwidth against message size: the classic curve, on this machine's loopback.

    python -m benchmarks.allreduce                      # 2 ranks, 1 thread each; writes results/allreduce.md and .json
    python -m benchmarks.allreduce --ranks 4 --output allreduce_4
    python -m benchmarks.allreduce --no-wait --repeats 3 --output allreduce_trial

The program waits for an idle machine, then starts ``mpiexec -n RANKS python -m benchmarks.allreduce
--worker`` (MPICH from the ``distributed`` extra; the ranks talk through shared memory). For
float32 arrays of 4 B to 64 MiB it times, on every rank at once, two ways of summing an array
over the ranks in place:

- ``tinytorch``: ``tinytorch.distributed.all_reduce``, a non-blocking ``Iallreduce`` polled until
  done (the polling is what gives every collective a deadline);
- ``mpi4py``: mpi4py's blocking ``Allreduce`` on the same buffer, the floor for the first.

One sample is ``k`` back-to-back calls after a barrier, ``k`` chosen (the same on every rank) so that
a sample lasts at least 20 ms; its time per call is the slowest rank's. Rounds alternate the two
ways (the first to go rotates); the table gives each size's median over rounds. *Algorithm
bandwidth* is bytes / time; *bus bandwidth* multiplies it by 2(p - 1)/p, the share of the data a
ring all-reduce makes each rank send (and receive), so that it compares with the link's speed
whatever the number of ranks (the convention of NVIDIA's nccl-tests). Small messages measure the
latency (a fixed cost per call), large ones the bandwidth.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import time

from benchmarks.harness import (
    PROJECT_ROOT,
    RESULTS_DIR,
    _write_atomically,
    command_line,
    log,
    machine_description,
    wait_for_idle,
    worker_environment,
)

SIZES = [4 * 4**k for k in range(13)] + [64 * 2**20]  # bytes: 4 B, 16 B, ... 64 MiB
WAYS = ("tinytorch", "mpi4py")
MIN_SAMPLE_S = 0.02


def _size(nbytes: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


# -- on every rank ------------------------------------------------------------------------------------
def _time_calls(call, k: int, world) -> float:
    """Seconds per call of ``k`` calls after a barrier, on the slowest rank."""
    import numpy as np

    world.barrier()
    start = time.perf_counter()
    for _ in range(k):
        call()
    seconds = np.array([(time.perf_counter() - start) / k])
    return float(world.all_reduce(seconds, op="max")[0])


def worker(repeats: int) -> None:
    """Rank code: time every size both ways; rank 0 prints one JSON line with every sample."""
    import numpy as np

    import tinytorch.distributed as dist

    world = dist.init(timeout=120)
    mpi = world._mpi
    samples = {}
    for nbytes in SIZES:
        array = np.zeros(nbytes // 4, dtype=np.float32)  # zeros: the sums stay zero (no overflow, no denormals)
        calls = {
            "tinytorch": lambda: dist.all_reduce(array),
            "mpi4py": lambda: world.comm.Allreduce(mpi.IN_PLACE, array, op=mpi.SUM),
        }
        counts = {}
        for way, call in calls.items():
            call()  # warm-up: connections, first-touch pages
            k = 1
            while (seconds := _time_calls(call, k, world)) * k < MIN_SAMPLE_S:
                k *= max(2, min(64, int(MIN_SAMPLE_S / max(seconds * k, 1e-9)) + 1))
            counts[way] = k
        times = {way: [] for way in WAYS}
        for r in range(repeats):
            order = WAYS[r % 2:] + WAYS[: r % 2]
            for way in order:
                times[way].append(_time_calls(calls[way], counts[way], world))
        samples[nbytes] = times
    if world.rank == 0:
        print(json.dumps({"ranks": world.world_size, "samples": samples}), flush=True)


# -- the program that runs the show --------------------------------------------------------------------
def table(ranks: int, samples: dict) -> str:
    factor = 2 * (ranks - 1) / ranks
    lines = [
        "| size | tinytorch (µs) | mpi4py (µs) | tinytorch algbw (MB/s) | tinytorch busbw (MB/s) | mpi4py busbw (MB/s) | tinytorch / mpi4py |",
        "|---|---|---|---|---|---|---|",
    ]
    for nbytes, times in samples.items():
        ours, theirs = statistics.median(times["tinytorch"]), statistics.median(times["mpi4py"])
        ratio = statistics.median(a / b for a, b in zip(times["tinytorch"], times["mpi4py"]))
        lines.append(
            f"| {_size(int(nbytes))} | {1e6 * ours:.1f} | {1e6 * theirs:.1f} | {int(nbytes) / ours / 1e6:.3g} "
            f"| {factor * int(nbytes) / ours / 1e6:.3g} | {factor * int(nbytes) / theirs / 1e6:.3g} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.allreduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="processes under mpiexec (default 2)")
    parser.add_argument("--repeats", type=int, default=9, help="rounds per size (default 9)")
    parser.add_argument("--output", default="allreduce", help="results name under benchmarks/results/")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine (the load is still recorded)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.repeats)
        return
    from tinytorch.distributed import launch

    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    log(f"timing all_reduce on {args.ranks} ranks, {len(SIZES)} sizes, {args.repeats} rounds each")
    done = launch.run(args.ranks, ["-m", "benchmarks.allreduce", "--worker", "--repeats", str(args.repeats)],
                      timeout=1800, env=worker_environment(1), cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the MPI job failed (exit {done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ranks, samples = result["ranks"], result["samples"]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    after = wait_for_idle(timeout=0)
    text = "\n".join([
        f"# Benchmark: all_reduce latency and bandwidth ({ranks} ranks, loopback)",
        "",
        f"- Date: {stamp}",
        f"- Command: `{command_line()}`",
        f"- CPU: {machine['cpu']}",
        f"- {machine['python']}",
        f"- Ranks: {ranks} under the `mpiexec` beside the interpreter (MPICH wheel), one thread each, on this one machine",
        f"- Machine before the run: {idle.describe()}; after: {after.describe()}",
        f"- Method: float32 arrays summed in place; each sample is k back-to-back calls after a barrier (k so that a "
        f"sample lasts >= {1e3 * MIN_SAMPLE_S:.0f} ms), timed as the slowest rank's time per call; {args.repeats} rounds "
        "alternating the two ways; medians. busbw = algbw * 2(p-1)/p. Raw times: the .json beside this file.",
        "",
        table(ranks, samples),
        "",
    ])
    print(text)
    record = {"name": args.output, "date": stamp, "command": command_line(), "machine": machine, "ranks": ranks,
              "idle_check": idle.describe(), "after": after.describe(), "samples_s_per_call": samples}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    _write_atomically(RESULTS_DIR / f"{args.output}.json", json.dumps(record, indent=1) + "\n")
    _write_atomically(RESULTS_DIR / f"{args.output}.md", text)
    log(f"wrote {RESULTS_DIR / (args.output + '.md')}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as error:
        raise SystemExit(f"the MPI job did not finish within {error.timeout:.0f} s") from None
