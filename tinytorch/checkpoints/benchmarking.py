"""Checkpoint 13, Benchmarking: "Can I analyze performance and identify bottlenecks?"

Led to by lesson 14 (``percentile``, ``conv2d_flops``, ``poisson_arrivals``). A CNN's training
step is profiled: its bottleneck must be found (the convolution kernels, which must take at least
40 % of the step), the student's ``conv2d_flops`` must predict what the FLOP counter measures on
every convolution, and the achieved GFLOP/s follows from the two. A SingleStream run on a
simulated accelerator must report the LoadGen p90 that the latencies it recorded give (the
framework computes it with the student's ``percentile``). Finally the student's
``poisson_arrivals`` drive a simulated single-server queue at 70 % load: the arrivals must come
at the asked rate with exponential gaps, and the queue's mean wait must match what queueing
theory predicts for Poisson arrivals (Pollaczek-Khinchine), a bursty load that even spacing would
not produce.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import Probe

STEPS_PROFILED = 3


def build_cnn():
    import tinytorch as tt

    return tt.Sequential(
        tt.Conv2D(3, 32, 3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Conv2D(32, 64, 3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(64 * 8 * 8, 10),
    )


def queue_waits(arrivals: np.ndarray, service: float) -> np.ndarray:
    """Each query's wait before service in a single-server first-come queue (Lindley's recursion)."""
    waits = np.zeros(len(arrivals))
    for i in range(1, len(arrivals)):
        waits[i] = max(0.0, waits[i - 1] + service - (arrivals[i] - arrivals[i - 1]))
    return waits


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core.benchmarking import BenchmarkScenarios, VirtualClock, conv2d_flops, poisson_arrivals
    from tinytorch.core.profiling import count_flops

    rng = np.random.default_rng(0)
    cnn = build_cnn()
    images = tt.tensor(rng.standard_normal((16, 3, 32, 32)).astype(np.float32))
    labels = rng.integers(0, 10, 16)

    probe.step("predicting each convolution's FLOPs with conv2d_flops and measuring them with count_flops")
    x, wrong, convolutions = images, [], 0
    with tt.no_grad():
        for layer in cnn:
            if isinstance(layer, tt.Conv2D):
                convolutions += 1
                measured = count_flops(layer, x.shape, backward=False).forward
                predicted = conv2d_flops(x.shape, layer.weight.shape, layer.stride[0], layer.padding[0])
                if predicted != measured:
                    wrong.append(f"{layer!r} on {x.shape}: predicted {predicted}, measured {measured}")
            x = layer(x)
    probe.measure("convolutions whose FLOPs were predicted", convolutions - len(wrong), at_least=convolutions,
                  unit=f"of {convolutions}", headline=True)
    if wrong:
        probe.check("conv2d_flops agrees with the FLOP counter", False, "; ".join(wrong))

    probe.step(f"profiling a training step {STEPS_PROFILED} times (after a warm-up) to find the bottleneck")
    optimizer, loss_fn = tt.SGD(cnn.parameters(), lr=0.01, momentum=0.9), tt.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad()
        loss_fn(cnn(images), labels).backward()
        optimizer.step()

    train_step()
    profiles = []
    for _ in range(STEPS_PROFILED):
        with tt.profiler.profile() as profile:
            train_step()
        profiles.append(profile)
    keys = {row.key for p in profiles for row in p.key_averages()}

    def best_self_time(key: str) -> float:  # the least time a key took in any one step: the least disturbed
        return min(sum(r.self_cpu_time_total for r in p.key_averages() if r.key == key) for p in profiles)

    bottleneck = max(keys, key=best_self_time)
    probe.check("the bottleneck found is the convolution kernels", bottleneck.startswith("kernels.conv2d"),
                f"the op taking the most time was {bottleneck}")
    share = sum(best_self_time(k) for k in keys if k.startswith("kernels.conv2d")) / sum(best_self_time(k) for k in keys)
    probe.measure("convolution kernels' share of the step's time", share, at_least=0.4)
    forward = min((r for p in profiles for r in p.key_averages() if r.key == "Conv2DFunction"), key=lambda r: r.cpu_time_total)
    probe.measure("achieved convolution speed (forward)", forward.flops / (forward.cpu_time_total * 1e3), at_least=0.01, unit="GFLOP/s")

    probe.step("a SingleStream run on a simulated accelerator: reporting the p90 latency")
    clock = VirtualClock()
    delays = iter(0.004 + 0.003 * rng.random(100_000))

    def accelerator(batch):
        clock.advance(next(delays))
        return np.zeros((len(batch), 10))

    single = BenchmarkScenarios(clock).single_stream(accelerator, np.zeros((32, 3, 32, 32), dtype=np.float32), min_duration=2.0)
    latencies = sorted(single.latencies)
    expected_p90 = latencies[int(len(latencies) * 0.9)]
    probe.check("the run follows LoadGen's rules", single.valid, "; ".join(single.reasons))
    probe.measure("|reported p90 - the recorded latencies' p90|", abs(single.percentiles["90"] - expected_p90), at_most=0.0, unit="s")

    probe.step("Poisson arrivals at 200 queries/s into a single server busy 3.5 ms per query (70 % load)")
    qps, service, count = 200.0, 0.0035, 50_000
    arrivals = np.asarray(poisson_arrivals(qps, count, seed=1), dtype=np.float64)
    gaps = np.diff(arrivals, prepend=0.0)
    probe.check("arrival times are increasing", arrivals.shape == (count,) and bool(np.all(gaps > 0)),
                f"got shape {arrivals.shape}; every gap must be positive")
    probe.measure("achieved rate / asked rate", count / arrivals[-1] / qps, at_least=0.97, at_most=1.03)
    probe.measure("gaps' standard deviation / mean (1 for exponential gaps)", gaps.std() / gaps.mean(), at_least=0.96, at_most=1.04)
    load = qps * service
    predicted_wait = load * service / (2 * (1 - load))  # Pollaczek-Khinchine, deterministic service
    measured_wait = float(queue_waits(arrivals, service).mean())
    # Over 40 seeds this ratio spanned 0.94-1.05 (standard deviation 0.024): the bounds leave 6 of those.
    probe.measure("queue's mean wait / the M/D/1 prediction", measured_wait / predicted_wait, at_least=0.85, at_most=1.15)
