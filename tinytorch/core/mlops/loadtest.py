"""An open-loop load generator: requests leave on a schedule, whether or not earlier ones came back.

A closed-loop tester (send, wait for the answer, send the next) slows down exactly when the
server does, so it never sees the queue a real burst of users would build: its tail latencies are
too good ("coordinated omission"). Here the send times are fixed in advance, as MLPerf LoadGen's
Server scenario and wrk2 do: Poisson arrivals (independent users; exponential gaps) or a constant
rate, and every latency is measured from the request's *scheduled* time, so a request that had
to wait for a free connection, or was sent late because the client fell behind, counts that wait.

>>> gaps = np.diff(arrival_times(rate=100.0, duration_s=60.0, arrivals="poisson", seed=0))
>>> bool(abs(gaps.mean() - 0.01) < 0.0005)                      # 100 requests/s on average
True
>>> arrival_times(rate=4.0, duration_s=1.0, arrivals="constant").tolist()
[0.0, 0.25, 0.5, 0.75]

:func:`load_test` runs a schedule against a server's ``/predict`` (``tito loadtest``) and reports
the achieved rate and the p50/p90/p99/p99.9 latencies (nearest rank, see :mod:`.percentiles`).
It needs nothing beyond the standard library and NumPy.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..benchmarking.loadgen import poisson_arrivals
from .percentiles import summarize

__all__ = ["arrival_times", "load_test", "LoadTestResult", "request_body"]

ARRIVALS = ("poisson", "constant")


def arrival_times(rate: float, duration_s: float, arrivals: str = "poisson", seed: int = 0) -> np.ndarray:
    """Send times (seconds from the start) of an open-loop run of ``duration_s`` at ``rate`` requests per second.

    Poisson arrivals are lesson 14's :func:`~tinytorch.core.benchmarking.loadgen.poisson_arrivals`
    (exponential gaps), cut at ``duration_s``; constant ones are ``i / rate``.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"arrival_times: rate and duration must be positive, got {rate} and {duration_s}")
    if arrivals == "constant":
        return np.arange(int(round(rate * duration_s))) / rate
    if arrivals != "poisson":
        raise ValueError(f"arrival_times: arrivals must be one of {ARRIVALS}, got {arrivals!r}")
    expected = rate * duration_s
    count = int(expected + 10 * np.sqrt(expected) + 10)  # 10 standard deviations past the mean count
    times = poisson_arrivals(rate, count, seed)
    if times[-1] < duration_s:
        raise RuntimeError("arrival_times: drew too few arrivals (a 10-sigma event); use another seed")
    return times[times < duration_s]


@dataclass
class LoadTestResult:
    """What a run measured. Latencies are seconds from each request's scheduled send time."""

    url: str
    arrivals: str
    offered_rate: float
    duration_s: float
    scheduled: int
    completed: int
    failed: int
    achieved_rate: float
    latency_s: dict[str, float]
    status_counts: dict[str, int]
    send_lag_s: dict[str, float]
    batch_sizes: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One human-readable paragraph (what ``tito loadtest`` prints)."""
        lat = self.latency_s
        if not lat.get("count"):
            return f"{self.url}: no request succeeded ({self.failed} failed; {self.errors[:1]})"
        ms = {k: f"{lat[k] * 1e3:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max")}
        return (f"{self.arrivals} arrivals at {self.offered_rate:g} requests/s for {self.duration_s:g} s: "
                f"{self.completed} of {self.scheduled} succeeded ({self.failed} failed), achieved {self.achieved_rate:.1f} "
                f"requests/s; latency ms p50 {ms['p50']}, p90 {ms['p90']}, p99 {ms['p99']}, p99.9 {ms['p99.9']}, "
                f"max {ms['max']}")


def request_body(signature: dict, batch: int = 1, body_format: str = "npy", seed: int = 0) -> tuple[bytes, str]:
    """A random batch matching a server's input signature (from ``/metadata``), as (body, content type)."""
    spec = signature["inputs"][0]
    shape = [batch, *(n if n != -1 else 1 for n in spec["shape"][1:])]
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec["dtype"])
    if dtype.kind in "iu":
        low, high = spec.get("value_range") or (0, 1)
        array = rng.integers(low, high + 1, size=shape).astype(dtype)
    else:
        array = rng.normal(size=shape).astype(dtype)
    if body_format == "json":
        return json.dumps({"inputs": array.tolist()}).encode(), "application/json"
    if body_format != "npy":
        raise ValueError(f"request_body: body_format must be 'npy' or 'json', got {body_format!r}")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue(), "application/x-npy"


#: Idle keep-alive connections older than this are not reused (uvicorn's keep-alive timeout is 5 s).
IDLE_CONNECTION_S = 2.0


class _Connections:
    """Keep-alive HTTP/1.1 connections to one server, for POSTs whose answers carry a Content-Length.

    The load generator must cost far less than the server it measures, on the same machine:
    httpx spends several milliseconds of CPU per request (measured: ~7 ms in this setting), which
    would make the client, not the server, the bottleneck. A request here is one write and two
    reads on an asyncio stream. A request that finds every connection busy waits for one (and
    that wait counts in its latency).
    """

    def __init__(self, host: str, port: int, limit: int):
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []  # ..., when released
        self.opened = 0
        self.waiters: asyncio.Queue = asyncio.Queue()

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = asyncio.get_running_loop().time()
        while self.idle:
            reader, writer, released = self.idle.pop()
            # uvicorn closes a keep-alive connection after 5 s without a request; one idle that
            # long may be closing while our request is on its way, and that request would fail
            if now - released < IDLE_CONNECTION_S and not reader.at_eof():
                return reader, writer
            writer.close()
            self.opened -= 1
        if self.opened < self.limit:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except BaseException:
                self.opened -= 1
                raise
        return await self.waiters.get()

    def release(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if connection is None:  # broken: forget it, so a new one may be opened
            self.opened -= 1
        elif self.waiters._getters:  # someone is waiting for a connection: hand it over
            self.waiters.put_nowait(connection)
        else:
            self.idle.append((*connection, asyncio.get_running_loop().time()))

    async def post(self, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = await self.acquire()
        try:
            reader, writer = connection
            writer.write(head + body)
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            lines = status_and_headers.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            content = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            connection[1].close()
            self.release(None)
            raise
        if headers.get("connection", "").lower() == "close":
            connection[1].close()
            self.release(None)
        else:
            self.release(connection)
        return status, headers, content

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def _run(url: str, schedule: np.ndarray, body: bytes, content_type: str, timeout_s: float,
               max_connections: int, id_prefix: str) -> tuple[list, float, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"load_test: expected an http:// URL, got {url!r}")
    pool = _Connections(parts.hostname, parts.port or 80, max_connections)
    head_template = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(body)}\r\nX-Request-ID: {{}}\r\n\r\n")
    results: list[tuple[float, float, int, str, str]] = []  # (send lag, latency, status, batch size, error)
    loop = asyncio.get_running_loop()

    async def one(i: int, scheduled: float, lag: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):  # no extra task per request, unlike asyncio.wait_for
                status, headers, content = await pool.post(head_template.format(f"{id_prefix}{i}").encode("latin-1"), body)
            results.append((lag, loop.time() - scheduled, status, headers.get("x-batch-size", ""),
                            "" if status < 400 else content[:200].decode("utf-8", "replace")))
        except Exception as error:  # a timeout or a refused connection is a failed request, not a crash
            results.append((lag, loop.time() - scheduled, 0, "", f"{type(error).__name__}: {error}"[:200]))

    tasks = []
    start = loop.time() + 0.05
    for i, offset in enumerate(schedule):
        scheduled = start + offset
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, scheduled, max(0.0, loop.time() - scheduled))))
    await asyncio.gather(*tasks)
    end = loop.time()
    pool.close()
    return results, start, end


def _run_on_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` to completion on uvloop when installed (uvicorn's fast event loop), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def load_test(url: str, rate: float, duration_s: float, *, arrivals: str = "poisson", body: bytes | None = None,
              content_type: str = "application/x-npy", batch: int = 1, body_format: str = "npy",
              warmup_s: float = 1.0, timeout_s: float = 30.0, max_connections: int = 256, seed: int = 0) -> LoadTestResult:
    """Send ``/predict`` requests to the server at ``url`` at ``rate`` per second for ``duration_s`` seconds.

    Parameters
    ----------
    url : str
        The server's base URL (``http://127.0.0.1:8000``) or its ``/predict`` URL.
    rate : float
        Offered requests per second.
    duration_s : float
        Length of the measured run (after ``warmup_s`` seconds at the same rate, not recorded).
    arrivals : str
        ``"poisson"`` (exponential gaps) or ``"constant"``.
    body, content_type : bytes, str, optional
        The request to send; by default a random batch of ``batch`` examples matching the
        server's ``/metadata`` signature, as ``.npy`` (``body_format="json"`` for JSON).
    timeout_s : float
        A request not answered in this time fails.
    max_connections : int
        Open connections at most; a request waiting for one counts the wait in its latency.
    seed : int
        Of the arrival times and the random batch.
    """
    base = url[: -len("/predict")] if url.rstrip("/").endswith("/predict") else url.rstrip("/")
    if body is None:
        with urllib.request.urlopen(f"{base}/metadata", timeout=timeout_s) as response:
            signature = json.loads(response.read())["signature"]
        body, content_type = request_body(signature, batch, body_format, seed)
    if warmup_s > 0:
        _run_on_loop(_run(f"{base}/predict", arrival_times(rate, warmup_s, arrivals, seed + 1), body, content_type,
                          timeout_s, max_connections, "warmup-"))
    schedule = arrival_times(rate, duration_s, arrivals, seed)
    results, start, end = _run_on_loop(_run(f"{base}/predict", schedule, body, content_type, timeout_s,
                                            max_connections, f"load-{seed}-"))
    ok = [r for r in results if 200 <= r[2] < 300]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[2] or "connection error")] = statuses.get(str(r[2] or "connection error"), 0) + 1
    span = max(duration_s, end - start)
    batches = [float(r[3]) for r in ok if r[3]]
    return LoadTestResult(
        url=base, arrivals=arrivals, offered_rate=float(rate), duration_s=float(duration_s), scheduled=len(schedule),
        completed=len(ok), failed=len(results) - len(ok), achieved_rate=len(ok) / span,
        latency_s=summarize(r[1] for r in ok), status_counts=statuses, send_lag_s=summarize(r[0] for r in results),
        batch_sizes=summarize(batches) if batches else {}, errors=sorted({r[4] for r in results if r[4]})[:5])
