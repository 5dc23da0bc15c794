"""Micro-batching: run the requests that arrive close together as one batch.

A model's forward pass on 32 examples costs far less than 32 passes on one (the matrix products
reach BLAS speed, the per-layer overhead is paid once). A server that gathers concurrent requests
into one batch therefore answers many more requests per second. :class:`MicroBatcher` runs one
batch at a time in a worker thread, while the event loop keeps accepting requests, with an
*adaptive* policy (Clipper's and Triton's dynamic batchers work this way):

- **The model is busy**: requests queue up. The moment it is free, the next batch is everything
  queued, up to ``max_batch`` rows. Under heavy load batches grow by themselves (about the
  arrival rate times one batch's time), with no timer involved.
- **The model is free**: the queued requests run at once, unless requests are arriving fast
  enough to fill the batch before the oldest one has waited ``max_delay_s``; only then does the
  batch wait, until it is full or that deadline passes. The arrival rate is judged from the rows
  that arrived in the last ``max_delay_s``. So at low load a request runs alone, as on a batch-1
  server, instead of always waiting ``max_delay_s`` for company that will not come.

``max_delay_s`` is therefore the longest a request ever waits *for its batch to fill* (TorchServe's
``max_batch_delay``, BentoML's ``max_latency_ms``); waiting for the model to finish the batch before
is queueing, which a larger batch shortens. With ``max_batch=1`` it is a plain one-request-at-a-
time server.

>>> import asyncio, numpy as np
>>> async def demo():
...     batcher = MicroBatcher(lambda x: x * 2, max_batch=8, max_delay_s=0.05)
...     await batcher.start()
...     results = await asyncio.gather(*(batcher.submit(np.full((1, 2), i, np.float32)) for i in range(5)))
...     await batcher.stop()
...     return [int(out[0, 0]) for out, _ in results], [info.batch_rows for _, info in results]
>>> asyncio.run(demo())
([0, 2, 4, 6, 8], [5, 5, 5, 5, 5])
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["MicroBatcher", "BatchInfo"]


@dataclass(frozen=True)
class BatchInfo:
    """How a request was served: the rows of the batch it ran in, how long it queued, and the model's time."""

    batch_rows: int
    queued_s: float
    compute_s: float


@dataclass
class _Pending:
    inputs: np.ndarray
    future: asyncio.Future
    arrived: float


class MicroBatcher:
    """Gathers submitted batches into model calls of at most ``max_batch`` rows (the adaptive policy above).

    Parameters
    ----------
    run : callable
        ``outputs = run(inputs)`` on a NumPy batch: an array with one row per input row, or a tuple
        of such arrays (each request gets its rows of each). It runs in one worker thread, one
        batch at a time (NumPy and the compiled kernels release the GIL, so the event loop goes
        on parsing requests meanwhile); work done there once per batch is not done per request.
    max_batch : int
        Rows per model call. A single request with more rows runs alone.
    max_delay_s : float
        The longest a request waits for its batch to fill while the model is free; 0 never waits.
    on_batch : callable, optional
        Called as ``on_batch(rows, seconds)`` after every model call (the server's metrics).
    clock : callable
        Seconds, monotonic: the arrival times and the fill deadline (a test passes a fake one).
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int = 32, max_delay_s: float = 0.005,
                 on_batch: Callable[[int, float], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        if max_batch < 1 or max_delay_s < 0:
            raise ValueError(f"MicroBatcher: max_batch must be >= 1 and max_delay_s >= 0, got {max_batch}, {max_delay_s}")
        self.run, self.max_batch, self.max_delay_s = run, int(max_batch), float(max_delay_s)
        self.on_batch, self.clock = on_batch, clock
        self._queue: asyncio.Queue | None = None
        self._carry: deque[_Pending] = deque()
        self._recent: deque[tuple[float, int]] = deque()  # (arrival, rows) of the last max_delay_s
        self._recent_rows = 0
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches_run = 0

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinytorch-model")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; requests still queued fail with a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        pending = list(self._carry) + ([self._queue.get_nowait() for _ in range(self._queue.qsize())] if self._queue else [])
        for item in pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._task = self._executor = None

    async def submit(self, inputs: np.ndarray) -> tuple[np.ndarray, BatchInfo]:
        """Queue a batch; returns its outputs (one row per input row) and how it was served."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.submit: call start() first")
        future = asyncio.get_running_loop().create_future()
        arrived = self.clock()
        self._recent.append((arrived, len(inputs)))
        self._recent_rows += len(inputs)
        self._forget_before(arrived - self.max_delay_s)
        self._queue.put_nowait(_Pending(inputs, future, arrived))
        return await future

    def fill_wait(self, rows: int, oldest_arrived: float) -> float:
        """Seconds the batch being formed (``rows`` rows so far) should wait for more; 0 runs it now.

        It waits only if the rows that arrived in the last ``max_delay_s``, arriving again at the
        same rate, would fill ``max_batch`` before the oldest request's deadline.
        """
        now = self.clock()
        remaining = oldest_arrived + self.max_delay_s - now
        if rows >= self.max_batch or remaining <= 0:
            return 0.0
        self._forget_before(now - self.max_delay_s)
        expected = self._recent_rows * remaining / self.max_delay_s
        return remaining if rows + expected >= self.max_batch else 0.0

    def _forget_before(self, moment: float) -> None:
        """Drop the arrivals older than ``moment`` from the window the arrival rate is judged on."""
        while self._recent and self._recent[0][0] < moment:
            self._recent_rows -= self._recent.popleft()[1]

    async def _next(self, timeout: float | None) -> _Pending | None:
        if self._carry:
            return self._carry.popleft()
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _gather(self) -> list[_Pending]:
        """The next batch: the oldest request, everything queued behind it, and more only if it will fill in time."""
        first = await self._next(None)
        batch, rows = [first], len(first.inputs)
        while rows < self.max_batch:
            item = await self._next(self.fill_wait(rows, first.arrived))
            if item is None:
                break
            if rows + len(item.inputs) > self.max_batch or item.inputs.shape[1:] != first.inputs.shape[1:]:
                self._carry.appendleft(item)  # it starts the next batch
                break
            batch.append(item)
            rows += len(item.inputs)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            batch = [item for item in batch if not item.future.done()]  # a client that gave up
            if not batch:
                continue
            inputs = batch[0].inputs if len(batch) == 1 else np.concatenate([item.inputs for item in batch])
            started = self.clock()
            try:
                outputs = await loop.run_in_executor(self._executor, self.run, inputs)
            except Exception as error:  # the model failed: every request of the batch gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            finished = self.clock()
            self.batches_run += 1
            if self.on_batch is not None:
                self.on_batch(len(inputs), finished - started)
            start = 0
            for item in batch:
                stop = start + len(item.inputs)
                rows = tuple(o[start:stop] for o in outputs) if isinstance(outputs, tuple) else outputs[start:stop]
                info = BatchInfo(len(inputs), started - item.arrived, finished - started)
                if not item.future.done():
                    item.future.set_result((rows, info))
                start = stop
