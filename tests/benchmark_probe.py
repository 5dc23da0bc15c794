"""Factories for the benchmark worker's tests: callables that leave a trace of each call, or take a known time."""

from __future__ import annotations

import time
from typing import Callable


def counting_calls(path: str) -> Callable[[], None]:
    def run() -> None:
        with open(path, "a") as calls:
            calls.write("call\n")

    return run


def sleeping_calls(seconds: float) -> Callable[[], None]:
    def run() -> None:
        time.sleep(seconds)

    return run
