"""tito benchmark: MLPerf's four inference scenarios on a saved model, with a Markdown and JSON report.

Usage:
  tito benchmark [<model>] [--builder=<spec>] [--data=<source>] [--input-shape=<shape>]
                 [--scenarios=<list>] [--min-duration=<s>] [--min-queries=<n>] [--server-qps=<x>]
                 [--server-latency=<ms>] [--server-batch=<n>] [--offline-samples=<n>] [--batch-size=<n>]
                 [--threads=<n>] [--seed=<n>] [--out=<dir>]
  tito benchmark (-h | --help)

Arguments:
  <model>                A safe checkpoint (.npz, as examples/train_cifar10.py --save writes it), whose
                         architecture --builder builds, or a model package folder (tito's mlops
                         packages carry their architecture) [default: examples/checkpoints/cifar10_cnn.npz].

Options:
  --builder=<spec>       The function that builds the checkpoint's model, FILE.py:function or
                         package.module:function [default: examples/train_cifar10.py:build_model].
  --data=<source>        The samples: cifar10 (the test set, normalized as the example trains, with
                         labels for accuracy), random (normal draws of --input-shape), or an .npz file
                         holding "inputs" (and optionally "labels") [default: cifar10].
  --input-shape=<shape>  One sample's shape for --data=random, e.g. 3,32,32 [default: 3,32,32].
  --scenarios=<list>     Comma-separated: SingleStream, MultiStream, Server, Offline, or all [default: all].
  --min-duration=<s>     Each run lasts at least this long (MLPerf's official runs: 600) [default: 10].
  --min-queries=<n>      Each run issues at least this many queries (default: each scenario's own,
                         100 SingleStream, 662 MultiStream, 459 Server).
  --server-qps=<x>       Run Server at this rate; without it, search for the highest rate that passes.
  --server-latency=<ms>  Server's 99th-percentile latency bound [default: 100].
  --server-batch=<n>     Server answers up to this many waiting queries in one batch [default: 1].
  --offline-samples=<n>  Samples in the Offline query [default: 24576].
  --batch-size=<n>       Offline batch size [default: 64].
  --threads=<n>          Threads for TinyTorch's compiled kernels (BLAS keeps OPENBLAS_NUM_THREADS).
  --seed=<n>             Seed of the sample choice and the Server arrival times [default: 0].
  --out=<dir>            Where report.md and results.json go [default: benchmark_results].

A run that misses one of LoadGen's rules (too few queries for its percentile, a Server tail over
the bound, a duration under the minimum) is reported INVALID with the reason.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
from docopt import docopt
from rich.console import Console

SCENARIO_KEYS = {"SingleStream": "single_stream", "MultiStream": "multi_stream", "Server": "server", "Offline": "offline"}


class UsageError(ValueError):
    """A bad command-line value; the message says which and what was expected."""


def build_from_spec(spec: str) -> Any:
    """Call the builder named ``FILE.py:function`` or ``package.module:function`` and return its model."""
    from tinytorch._sourcefile import import_file

    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"--builder={spec!r}: expected FILE.py:function or package.module:function")
    if target.endswith(".py"):
        path = Path(target)
        sys.path.insert(0, str(path.resolve().parent))  # the builder's file may import its neighbours, as a script would
        try:
            module = import_file(path, f"tinytorch_builder_{path.stem}", "builder file (--builder)")
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        module = importlib.import_module(target)
    builder = getattr(module, name, None)
    if not callable(builder):
        raise UsageError(f"--builder={spec!r}: {target} defines no function {name!r}")
    return builder()


def load_model(path: Path, builder: str) -> tuple[Any, str]:
    """The model at ``path`` (a package folder, or a checkpoint built with ``builder``) and how it was loaded."""
    if path.is_dir():
        from tinytorch.core.mlops.package import load_package

        return load_package(path).model, f"model package {path}"
    if not path.is_file():
        raise UsageError(f"no model at {path}: train one with examples/train_cifar10.py --save={path}, or pass a path")
    from tinytorch.core.checkpoint import load_checkpoint

    model = build_from_spec(builder)
    load_checkpoint(path, model)
    return model, f"checkpoint {path} into {builder}"


def load_samples(source: str, input_shape: str, seed: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(samples, labels or None, a description) for ``--data``."""
    if source == "cifar10":
        from tinytorch.core.dataloader import CIFAR10Dataset

        data = CIFAR10Dataset(train=False, normalize=True)
        return data.test_data, data.test_labels, "CIFAR-10 test set (normalized)"
    if source == "random":
        try:
            shape = tuple(int(v) for v in input_shape.split(","))
        except ValueError:
            raise UsageError(f"--input-shape={input_shape!r}: expected comma-separated sizes such as 3,32,32") from None
        samples = np.random.default_rng(seed).standard_normal((1024, *shape)).astype(np.float32)
        return samples, None, f"1,024 random normal samples of shape {shape}"
    path = Path(source)
    if path.suffix != ".npz" or not path.is_file():
        raise UsageError(f"--data={source!r}: expected cifar10, random, or an existing .npz file")
    with np.load(path, allow_pickle=False) as archive:
        if "inputs" not in archive:
            raise UsageError(f"--data={source}: the file holds {sorted(archive.files)}; it needs an 'inputs' array")
        labels = archive["labels"] if "labels" in archive else None
        return archive["inputs"], labels, f"{path} ({len(archive['inputs'])} samples)"


def _scenarios(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(SCENARIO_KEYS)
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = {name.lower(): name for name in SCENARIO_KEYS}
    unknown = [n for n in names if n.lower() not in known]
    if unknown or not names:
        raise UsageError(f"--scenarios={text!r}: expected a comma-separated list of {', '.join(SCENARIO_KEYS)}, or all")
    return [known[n.lower()] for n in names]


def _number(args: dict, option: str, kind: type, minimum: float) -> Any:
    value = args[option]
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise UsageError(f"{option}={value!r}: expected a number") from None
    if number < minimum:
        raise UsageError(f"{option}={value}: must be at least {minimum}")
    return number


def run(args: dict, console: Console, command: str) -> int:
    from tinytorch.core import kernels
    from tinytorch.core.benchmarking import TinyTorchPerf

    scenarios = _scenarios(args["--scenarios"])
    settings: dict[str, Any] = {
        "min_duration": _number(args, "--min-duration", float, 0.0),
        "seed": _number(args, "--seed", int, 0),
        "server_target_latency": _number(args, "--server-latency", float, 1e-6) / 1000,
        "server_max_batch": _number(args, "--server-batch", int, 1),
        "offline_sample_count": _number(args, "--offline-samples", int, 1),
        "offline_batch_size": _number(args, "--batch-size", int, 1),
    }
    min_queries = _number(args, "--min-queries", int, 1)
    server_qps = _number(args, "--server-qps", float, 1e-9)
    threads = _number(args, "--threads", int, 1)
    if threads is not None:
        kernels.set_num_threads(threads)
    path = Path(args["<model>"] or "examples/checkpoints/cifar10_cnn.npz")
    model, loaded = load_model(path, args["--builder"])
    samples, labels, described = load_samples(args["--data"], args["--input-shape"], settings["seed"])
    console.print(f"benchmarking {loaded} on {described}", highlight=False)
    perf = TinyTorchPerf(model, samples, labels, **settings)
    queries = {"min_query_count": min_queries} if min_queries is not None else {}
    for name in scenarios:
        console.print(f"running {name} ...", highlight=False)
        if name == "SingleStream":
            perf.run_single_stream(**queries)
        elif name == "MultiStream":
            perf.run_multi_stream(**queries)
        elif name == "Server" and server_qps is not None:
            perf.run_server(target_qps=server_qps, **queries)
        elif name == "Server":
            peak = perf.find_peak_server_qps(**queries)
            tried = ", ".join(f"{r.settings['server_target_qps']:.1f} ({'pass' if r.valid else 'fail'})" for r in perf.server_search)
            console.print(f"  peak search: {tried}; highest passing rate: {'none' if peak is None else f'{peak:.1f} QPS'}", highlight=False)
            if peak is None:
                perf.results["server"] = perf.server_search[-1]
        else:
            perf.run_offline()
        result = perf.results[SCENARIO_KEYS[name]]
        console.print(result.summary(), highlight=False)
    out = Path(args["--out"])
    markdown = perf.reporter.save_report(perf.reporter.generate_project_report(perf.results, loaded, command), out / "report.md")
    data = perf.reporter.save_json(perf.results, out / "results.json", loaded, command=command, data=described)
    invalid = [r.scenario.value for r in perf.results.values() if not r.valid]
    console.print(f"wrote {markdown} and {data}" + (f"; INVALID (see the reasons): {', '.join(invalid)}" if invalid else ""), highlight=False)
    return 0


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    try:
        return run(args, console, "tito " + " ".join(shlex.quote(a) for a in argv))
    except (UsageError, FileNotFoundError, ValueError, ImportError, RuntimeError) as error:
        console.print(f"[red]tito benchmark: {error}[/]", highlight=False)
        return 2
