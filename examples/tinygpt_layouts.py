"""The TinyGPT example's recipe trained with each model layout over several seeds: what biases and weight tying do.

Usage:
  tinygpt_layouts.py [--config=<name>] [--seeds=<list>] [--jobs=<n>] [--train-options=<text>] [--out=<file>]
  tinygpt_layouts.py (-h | --help)

Options:
  --config=<name>          The configuration of examples/train_tinygpt.py to train [default: nanogpt].
  --seeds=<list>           Comma-separated seeds, each trained with every layout [default: 1337,1,2,3].
  --jobs=<n>               Runs at a time, each in its own process with one thread: at this model's
                           size a step is bound by dispatch, not arithmetic, so two one-thread runs
                           take about as long as one two-thread run [default: 2].
  --train-options=<text>   More options for every run of train_tinygpt.py (a smoke run: "--iters=4 ...").
  --out=<file>             The Markdown record (default: examples/results/tinygpt_layouts.md).

The four layouts are biases (in the Dense layers, projections and LayerNorms) yes or no, times the
output head tied to the token embedding or not. nanoGPT's is no biases and a tied head; GPT-2's is
biases and a tied head. Each run is examples/train_tinygpt.py itself, so its figure is that
program's exact validation loss (every character of the validation text). Runs differ only in
layout and seed; the seed draws the initial weights and the batches.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from docopt import docopt

from reporting import _machine, write_atomically
from train_tinygpt import CONFIGS, LAYOUT

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = {  # name: (biases, tied head)
    "nanoGPT (no biases, tied head)": (False, True),
    "GPT-2 (biases, tied head)": (True, True),
    "no biases, untied head": (False, False),
    "biases, untied head": (True, False),
}


def label(name: str) -> str:
    """The layout's name in the record, marked when it is the one train_tinygpt.py's configurations use."""
    return f"{name} (the example's)" if LAYOUTS[name] == (LAYOUT["bias"], LAYOUT["tie_weights"]) else name


def train(config: str, bias: bool, tie: bool, seed: int, extra: list[str], scratch: Path, threads: int) -> float:
    """One run of examples/train_tinygpt.py in a process of its own; its exact validation loss."""
    tag = f"{int(bias)}{int(tie)}_{seed}"
    command = [sys.executable, str(ROOT / "examples" / "train_tinygpt.py"), f"--config={config}", f"--seed={seed}",
               f"--bias={'yes' if bias else 'no'}", f"--tie-weights={'yes' if tie else 'no'}", *extra, "--quiet", "--sample-chars=1",
               f"--out={scratch / tag}", f"--save={scratch / (tag + '.npz')}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads((scratch / tag / "history.json").read_text())["final"]["val_loss"]


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    config, jobs, seeds = args["--config"], args["--jobs"], args["--seeds"].split(",")
    if config not in CONFIGS:  # checked here, not by each of the runs it would start
        raise SystemExit(f"tinygpt_layouts.py: unknown --config {config!r}; choose one of {', '.join(CONFIGS)}")
    if not jobs.isdigit() or int(jobs) < 1:
        raise SystemExit(f"tinygpt_layouts.py: --jobs takes a positive whole number, got {jobs!r}")
    if not all(s.strip().isdigit() for s in seeds):
        raise SystemExit(f"tinygpt_layouts.py: --seeds takes whole numbers separated by commas, got {args['--seeds']!r}")
    jobs, seeds = int(jobs), [int(s) for s in seeds]
    extra = shlex.split(args["--train-options"] or "")
    out = Path(args["--out"] or ROOT / "examples" / "results" / "tinygpt_layouts.md")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(jobs) as pool:
        runs = {(name, seed): pool.submit(train, config, *layout, seed, extra, Path(scratch), threads)
                for name, layout in LAYOUTS.items() for seed in seeds}
        losses = {name: [runs[name, seed].result() for seed in seeds] for name in LAYOUTS}
    minutes = (time.perf_counter() - started) / 60
    command = shlex.join(["python", "examples/tinygpt_layouts.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        f"# TinyGPT's layouts on the {config} recipe: exact validation loss by seed",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Command: `{command}` ({minutes:.1f} min, {jobs} runs at a time, {threads} thread(s) each)",
        f"- Machine: {_machine()}",
        f"- Each run: `python examples/train_tinygpt.py --config={config} --seed=S --bias=B --tie-weights=T"
        f"{' ' + ' '.join(extra) if extra else ''}`",
        "",
        "| layout | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | range |",
        "|---|" + "---|" * (len(seeds) + 2),
        *[f"| {label(name)} | " + " | ".join(f"{v:.4f}" for v in values) +
          f" | **{np.mean(values):.4f}** | {min(values):.4f}–{max(values):.4f} |" for name, values in losses.items()],
        "",
    ]
    write_atomically(out, "\n".join(lines))
    print(f"TinyGPT layouts ({config}): " + "; ".join(f"{n} {np.mean(v):.4f}" for n, v in losses.items()) + f"; in {out}")
    return losses


if __name__ == "__main__":
    main()
