"""A factory for the benchmark worker's tests: its callable appends a line to a file each time it runs."""

from __future__ import annotations

from typing import Callable


def counting_calls(path: str) -> Callable[[], None]:
    def run() -> None:
        with open(path, "a") as calls:
            calls.write("call\n")

    return run
