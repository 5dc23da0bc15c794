"""``tito serve`` in a child process: how the example and the benchmark run a server apart from their client.

A load test whose client and server share one Python process measures their fight over the GIL,
not the server. :class:`ServerProcess` starts ``python -m tinytorch.cli serve`` on a free port
(the server picks it and announces it), waits until it answers ``/health``, and always stops it.

``with ServerProcess(["my_package"], max_batch=32) as url:`` gives ``http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Sequence

from ..benchmarking.timer import THREAD_VARIABLES

__all__ = ["ServerProcess"]

_ANNOUNCEMENT = re.compile(r"at (http://\S+?) \(max batch")


class ServerProcess:
    """Run ``tito serve`` on the given packages in a child process; a context manager yielding its URL.

    Parameters
    ----------
    packages : sequence of path
        One package, or two for an A/B server (``split`` is the second one's share).
    max_batch, max_delay_ms : int, float
        The server's batching.
    threads : int, optional
        Threads of the child's BLAS and OpenMP kernels (the model's arithmetic). They are fixed
        when NumPy loads, hence set in the child's environment. On a small machine one thread for
        the model leaves the other cores to the server's event loop and to the client: measured on
        the 2-core course machine under load, a 32-batch server of an MLP answered in 24 ms (p50)
        with one thread and 586 ms with two, whose threads kept waiting for each other.
    env : mapping, optional
        Other environment variables for the child.
    """

    def __init__(self, packages: Sequence[str | os.PathLike], max_batch: int = 32, max_delay_ms: float = 5.0,
                 split: float = 0.5, threads: int | None = None, env: dict[str, str] | None = None,
                 startup_timeout_s: float = 120.0):
        self.packages = [str(p) for p in packages]
        self.max_batch, self.max_delay_ms, self.split = max_batch, max_delay_ms, split
        self.env, self.timeout = dict(env or {}), startup_timeout_s
        if threads is not None:
            self.env.update({name: str(threads) for name in THREAD_VARIABLES}, OMP_WAIT_POLICY="PASSIVE")
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []
        self.url = ""

    def start(self) -> str:
        command = [sys.executable, "-m", "tinytorch.cli", "serve", self.packages[0], "--port=0",
                   f"--max-batch={self.max_batch}", f"--max-delay-ms={self.max_delay_ms}"]
        if len(self.packages) > 1:
            command += [f"--ab={self.packages[1]}", f"--split={self.split}"]
        env = {**os.environ, **self.env, "COLUMNS": "1000"}  # one announcement line, unwrapped
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        found = threading.Event()

        def read() -> None:  # keeps draining the pipe, so the child never blocks on a full one
            for line in self.process.stdout:
                self.output.append(line)
                match = _ANNOUNCEMENT.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not found.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ServerProcess: tito serve did not start: {''.join(self.output)[-2000:]}")
        self.get("/health")
        return self.url

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, every thread) the server process has used so far; None where /proc is missing."""
        if self.process is None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))

    def get(self, path: str) -> Any:
        """GET ``path`` from the server and parse the JSON answer."""
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
