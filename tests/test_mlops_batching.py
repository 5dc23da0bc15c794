"""The micro-batcher's adaptive policy, with a fake model and a fake clock: no timing is asserted.

A request that should run at once is awaited with a generous real-time limit (a batcher that
waits instead holds it for an hour of ``max_delay_s``); the fill decision reads only the fake
clock, so every batch's composition is deterministic.
"""

import asyncio
import threading

import numpy as np
import pytest

from tinytorch.core.mlops import MicroBatcher

GENEROUS_S = 30.0  # a request due at once that is not answered in this time was held back


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class GatedModel:
    """Doubles its input; its first call blocks until ``release`` is set (the model is busy meanwhile)."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.batches: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(len(x))
        if len(self.batches) == 1:
            self.started.set()
            self.release.wait(GENEROUS_S)
        return x * 2


def example(value: float) -> np.ndarray:
    return np.full((1, 3), value, np.float32)


async def submit_at(batcher: MicroBatcher, clock: FakeClock, when: float, value: float) -> asyncio.Task:
    """Submit one example at fake time ``when``; returns once it is queued."""
    clock.now = when
    task = asyncio.get_running_loop().create_task(batcher.submit(example(value)))
    await asyncio.sleep(0)  # the task runs up to its await: the request is queued at `when`
    return task


async def busy_then(batcher: MicroBatcher, model: GatedModel, clock: FakeClock, arrivals: list[float],
                    released_at: float) -> tuple[asyncio.Task, list[asyncio.Task]]:
    """Request 0 at time 0 occupies the model; the others arrive (fake times) while it is busy."""
    first = await submit_at(batcher, clock, 0.0, 0)
    await asyncio.get_running_loop().run_in_executor(None, model.started.wait, GENEROUS_S)
    queued = [await submit_at(batcher, clock, t, i + 1) for i, t in enumerate(arrivals)]
    clock.now = released_at
    model.release.set()
    await asyncio.wait_for(first, GENEROUS_S)
    return first, queued


def test_a_lone_request_on_an_idle_server_runs_at_once_not_after_max_delay():
    clock = FakeClock()

    async def scenario():
        model = GatedModel()
        model.release.set()
        batcher = MicroBatcher(model, max_batch=8, max_delay_s=3600.0, clock=clock)
        await batcher.start()
        try:
            outputs, info = await asyncio.wait_for(batcher.submit(example(5)), GENEROUS_S)
        finally:
            await batcher.stop()
        return outputs, info, model.batches

    outputs, info, batches = asyncio.run(scenario())
    assert outputs.tolist() == [[10.0] * 3] and info.batch_rows == 1 and batches == [1]


def test_requests_that_queue_while_the_model_is_busy_form_the_next_batches():
    clock = FakeClock()

    async def scenario():
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch=4, max_delay_s=0.0, clock=clock)  # never waits to fill
        await batcher.start()
        try:
            first, queued = await busy_then(batcher, model, clock, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 7.0)
            results = await asyncio.wait_for(asyncio.gather(*queued), GENEROUS_S)
        finally:
            await batcher.stop()
        return first.result(), results, model.batches

    (_, first_info), results, batches = asyncio.run(scenario())
    assert first_info.batch_rows == 1 and batches == [1, 4, 2]  # everything queued, up to max_batch
    assert [int(out[0, 0]) for out, _ in results] == [2, 4, 6, 8, 10, 12]  # each gets its own rows
    assert [info.batch_rows for _, info in results] == [4, 4, 4, 4, 2, 2]


def test_a_batch_waits_to_fill_only_while_arrivals_are_fast_enough():
    clock = FakeClock()

    async def fast():  # 4 rows in the last 1000 s: one more is due before the deadline, so it waits
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch=4, max_delay_s=1000.0, clock=clock)
        await batcher.start()
        try:
            _, queued = await busy_then(batcher, model, clock, [1.0, 2.0, 3.0], 4.0)
            for _ in range(20):
                await asyncio.sleep(0.005)
            waiting = [task.done() for task in queued], list(model.batches)
            queued.append(await submit_at(batcher, clock, 5.0, 4))  # the batch is full: it runs
            results = await asyncio.wait_for(asyncio.gather(*queued), GENEROUS_S)
        finally:
            await batcher.stop()
        return waiting, [info.batch_rows for _, info in results], model.batches

    waiting, rows, batches = asyncio.run(fast())
    assert waiting == ([False, False, False], [1])
    assert rows == [4, 4, 4, 4] and batches == [1, 4]

    clock.now = 0.0

    async def slow():  # arrivals 100 s apart against a 250 s delay: it would not fill, so it runs now
        model = GatedModel()
        batcher = MicroBatcher(model, max_batch=4, max_delay_s=250.0, clock=clock)
        await batcher.start()
        try:
            _, queued = await busy_then(batcher, model, clock, [100.0, 200.0, 300.0], 301.0)
            results = await asyncio.wait_for(asyncio.gather(*queued), GENEROUS_S)
        finally:
            await batcher.stop()
        return [info.batch_rows for _, info in results], model.batches

    rows, batches = asyncio.run(slow())
    assert rows == [3, 3, 3] and batches == [1, 3]


@pytest.mark.parametrize("rows, oldest, now, recent, expected", [
    (1, 0.0, 0.0, [(0.0, 1)], 0.0),                  # alone: nothing suggests company is coming
    (2, 0.0, 0.5, [(0.0, 1), (0.4, 1)], 0.0),        # 2 + 2 * 0.5 < 4
    (3, 0.0, 0.2, [(0.0, 1), (0.1, 1), (0.2, 1)], 0.8),  # 3 + 3 * 0.8 >= 4: wait for the rest of the delay
    (3, 0.0, 1.5, [(0.0, 1), (0.1, 1), (0.2, 1)], 0.0),  # past the oldest's deadline
    (4, 0.0, 0.0, [(0.0, 4)], 0.0),                  # full
])
def test_fill_wait_decision(rows, oldest, now, recent, expected):
    clock = FakeClock()
    batcher = MicroBatcher(lambda x: x, max_batch=4, max_delay_s=1.0, clock=clock)
    for arrived, n in recent:
        batcher._recent.append((arrived, n))
        batcher._recent_rows += n
    clock.now = now
    assert batcher.fill_wait(rows, oldest) == pytest.approx(expected)


def test_the_arrival_window_keeps_only_the_last_max_delay():
    clock = FakeClock()

    async def scenario():
        batcher = MicroBatcher(lambda x: x, max_batch=1, max_delay_s=0.5, clock=clock)  # never consults the window
        await batcher.start()
        try:
            for i in range(100):
                clock.now = float(i)
                await asyncio.wait_for(batcher.submit(example(i)), GENEROUS_S)
        finally:
            await batcher.stop()
        return list(batcher._recent), batcher._recent_rows

    assert asyncio.run(scenario()) == ([(99.0, 1)], 1)  # a long-running server does not grow it


def test_a_model_returning_a_tuple_gives_each_request_its_rows_of_every_array():
    async def scenario():
        batcher = MicroBatcher(lambda x: (x * 2, x[:, 0].astype(np.int64)), max_batch=8, max_delay_s=0.0)
        await batcher.start()
        try:
            first = np.array([[1.0], [2.0]], np.float32)
            return await asyncio.wait_for(asyncio.gather(batcher.submit(first), batcher.submit(example(7)[:, :1])),
                                          GENEROUS_S)
        finally:
            await batcher.stop()

    (first, info), (second, _) = asyncio.run(scenario())
    assert info.batch_rows == 3  # both requests ran in one call
    assert [a.tolist() for a in first] == [[[2.0], [4.0]], [1, 2]]
    assert [a.tolist() for a in second] == [[[14.0]], [7]]
