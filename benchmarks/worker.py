"""A benchmark worker: one process, one implementation, spoken to in JSON lines (see harness.py).

    python -m benchmarks.worker --threads N

Reads one request per line on stdin and answers one line on stdout:

- ``{"op": "build", "target": "module:function", "kwargs": {...}, "preload": [...], "min_sample_s": s,
  "warm_calls": n}``: imports the side module (which imports its own framework only), pins its
  threads, calls each ``preload`` target, builds the timed callable with ``function(**kwargs)``,
  runs it twice untimed and answers ``{"calls": calls per sample, "describe": {...}}``.
- ``{"op": "sample"}``: makes ``warm_calls`` untimed calls (default none), then times ``calls`` calls,
  with the garbage collector off; answers ``{"seconds": per call}``.
- ``{"op": "call", "target": "module:function", "kwargs": {...}}``: answers ``{"value": function(**kwargs)}``.
- ``{"op": "exit"}``.

A failure answers ``{"error": traceback}``. Anything the measured code prints goes to stderr, so it
cannot corrupt the answers.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import sys
import time
import traceback
from typing import Any, Callable


def resolve(target: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module_name, _, function = target.partition(":")
    if not function:
        raise ValueError(f"benchmark target {target!r} must look like 'module:function'")
    return getattr(importlib.import_module(module_name), function)


def side_module(target: str):
    return importlib.import_module(target.partition(":")[0])


class Worker:
    def __init__(self, threads: int):
        self.threads = threads
        self.fn: Callable[[], object] | None = None
        self.calls = 1
        self.warm_calls = 0

    def build(self, target: str, kwargs: dict, preload: list[str], min_sample_s: float, warmup: int = 2,
              warm_calls: int = 0) -> dict:
        for name in preload:
            resolve(name)()
        module = side_module(target)
        if hasattr(module, "pin_threads"):
            module.pin_threads(self.threads)
        self.fn = resolve(target)(**kwargs)
        for _ in range(warmup):
            self.fn()
        start = time.perf_counter()
        self.fn()
        once = time.perf_counter() - start
        self.calls = max(1, math.ceil(min_sample_s / max(once, 1e-9)))
        self.warm_calls = warm_calls
        described = module.describe() if hasattr(module, "describe") else {}
        if preload:
            described["preloaded in the same process"] = ", ".join(preload)
        return {"calls": self.calls, "describe": described}

    def sample(self) -> dict:
        if self.fn is None:
            raise RuntimeError("sample before build")
        gc.collect()
        gc.disable()
        try:
            for _ in range(self.warm_calls):
                self.fn()
            start = time.perf_counter()
            for _ in range(self.calls):
                self.fn()
            seconds = (time.perf_counter() - start) / self.calls
        finally:
            gc.enable()
        return {"seconds": seconds}

    def handle(self, request: dict[str, Any]) -> dict | None:
        op = request.get("op")
        if op == "build":
            return self.build(request["target"], request.get("kwargs", {}), request.get("preload", []),
                              request.get("min_sample_s", 0.02), warm_calls=request.get("warm_calls", 0))
        if op == "sample":
            return self.sample()
        if op == "call":
            return {"value": resolve(request["target"])(**request.get("kwargs", {}))}
        if op == "exit":
            return None
        raise ValueError(f"unknown request {op!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # C code printing to fd 1 goes to stderr too
    sys.stdout = sys.stderr
    worker = Worker(args.threads)
    for line in sys.stdin:
        try:
            reply = worker.handle(json.loads(line))
        except Exception:  # the orchestrator shows the traceback and stops the case
            reply = {"error": traceback.format_exc()}
        if reply is None:
            break
        answers.write(json.dumps(reply) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
