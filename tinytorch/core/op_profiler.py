"""The op profiler (lesson 14): where a model's time goes, op by op, forward and backward.

Inside ``with Profiler() as prof:`` every op's forward and backward, every kernel call and every
``record_function`` block becomes an *event* with its start and end time, the shapes it was given (``record_shapes=True``),
its FLOPs, and (with ``profile_memory=True``) the bytes it left allocated. Events nest: a kernel
call runs inside the op that calls it, which runs inside a ``record_function`` block. An event's
*total* time is its whole span; its *self* time leaves out the events inside it, so the self times
of all events add up to the time spent inside recorded events, each instant counted once.

>>> import tinytorch as tt
>>> x = tt.randn(64, 128, requires_grad=True)
>>> w = tt.randn(128, 32, requires_grad=True)
>>> with Profiler() as prof:
...     (x @ w).relu().sum().backward()
>>> sorted({event.name for event in prof.events()})
['AccumulateGrad', 'MatMul', 'MatMulBackward', 'ReLU', 'ReLUBackward', 'Sum', 'SumBackward', 'kernels.matmul', 'kernels.relu_backward', 'kernels.relu_forward']
>>> [(row.key, row.count, row.flops) for row in prof.key_averages() if row.key.startswith("MatMul")]
[('MatMul', 1, 524288), ('MatMulBackward', 1, 1048576)]

``prof.key_averages().table(sort_by="self_cpu_time_total")`` prints PyTorch's table,
``prof.export_chrome_trace("trace.json")`` writes a timeline that Perfetto (ui.perfetto.dev) and
``chrome://tracing`` open. ``tinytorch.profiler`` is the PyTorch-style namespace for all of this.

How it works: the profiler installs itself as the observer of ops (``autograd.set_observer``),
kernels (``kernels.set_observer``) and modules (``module.set_observer``) for the block; with no
profiler running those hooks cost one global read per call.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from .flops import FLOP_FORMULAS, computed_gradients, op_flops, shape_of
from .observers import observing
from .profiler_events import EventList, FunctionEvent

_clock = time.perf_counter_ns
_active: list[Profiler] = []  # running profilers, innermost last: where record_function reports


# While recording, an event is a plain list (cheaper to make than an object: the profiler's cost per
# op is mostly this bookkeeping); stop() turns them into FunctionEvents.
NAME, KIND, SHAPES, THREAD, PARENT, START, END, CHILD_NS, MEM_START, MEM, CHILD_MEM, FLOP_OP, PHASE, FLOPS, STACK = range(15)


class Profiler:
    """Record every op, kernel call and ``record_function`` block run inside a ``with`` block.

    Parameters
    ----------
    record_shapes : bool
        Keep every event's input shapes (needed by ``key_averages(group_by_input_shape=True)``).
        Off by default, as in PyTorch, because it costs time per event; the ops that FLOPs are
        counted for keep theirs regardless.
    profile_memory : bool
        Measure the memory each event left allocated, through ``tracemalloc`` (NumPy reports every
        array allocation to it). This slows Python down noticeably, so it is off by default.
    with_flops : bool
        Count FLOPs per event (the convention of ``tinytorch.core.flops``: a multiply-add is 2).
    with_modules : bool
        Record each module call (``Conv2D.forward`` ...) as an event around the ops it runs.
    """

    def __init__(
        self,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_flops: bool = True,
        with_modules: bool = False,
    ):
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_flops = with_flops
        self.with_modules = with_modules
        self._records: list[list] = []
        self._events: list[FunctionEvent] = []
        self._local = threading.local()
        self._all_stacks: list[list[list]] = []  # one per thread that ran an op
        self._lock = threading.Lock()
        self._started_tracing = False
        self.start_ns: int | None = None
        self.stop_ns: int | None = None

    # -- running ------------------------------------------------------------------------------------
    def start(self) -> Profiler:
        """Start recording (what ``with`` does on entry)."""
        if self.start_ns is not None:
            raise RuntimeError("Profiler.start: this profiler has already run; make a new one for a new recording")
        if self.profile_memory and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracing = True
        self._observing = observing(self)
        self._observing.__enter__()
        _active.append(self)
        self.start_ns = _clock()
        return self

    def stop(self) -> None:
        """Stop recording (what ``with`` does on exit); events still open are closed now."""
        if self.start_ns is None or self.stop_ns is not None:
            raise RuntimeError("Profiler.stop: the profiler is not running")
        self.stop_ns = _clock()
        self._observing.__exit__(None, None, None)
        _active.remove(self)
        for stack in self._all_stacks:
            while stack:
                self._close(stack, stack[-1], self.stop_ns)
        if self._started_tracing:
            tracemalloc.stop()
        self._events = _to_events(self._records)
        self._records = []

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- results --------------------------------------------------------------------------------------
    def events(self) -> EventList:
        """Every recorded event, in the order they started."""
        self._check_stopped("events")
        return EventList(self._events, self.wall_time_us, with_flops=self.with_flops, profile_memory=self.profile_memory)

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """One row per op name (and input shapes, when asked): calls, self and total times, FLOPs, memory."""
        if group_by_input_shape and not self.record_shapes:
            raise ValueError("key_averages(group_by_input_shape=True) needs the profiler made with record_shapes=True")
        return self.events().key_averages(group_by_input_shape)

    def table(self, sort_by: str = "self_cpu_time_total", row_limit: int = 100, **kwargs: Any) -> str:
        """``key_averages().table(...)``."""
        return self.key_averages().table(sort_by=sort_by, row_limit=row_limit, **kwargs)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the events as Chrome trace-event JSON (open it in ui.perfetto.dev or chrome://tracing)."""
        self.events().export_chrome_trace(path)

    @property
    def wall_time_us(self) -> float:
        """Microseconds from start to stop."""
        self._check_stopped("wall_time_us")
        return (self.stop_ns - self.start_ns) / 1000

    @property
    def self_cpu_time_total(self) -> float:
        """The sum of every event's self time, in microseconds: the time spent inside recorded events."""
        return self.events().self_cpu_time_total

    def _check_stopped(self, what: str) -> None:
        if self.stop_ns is None:
            raise RuntimeError(f"Profiler.{what}: the profiler is still running; read results after the with block")

    # -- recording: the hot path, every op and kernel call comes through here, so it stays short ------
    def _thread(self) -> tuple[list[list], int]:
        """(the calling thread's open events, innermost last; its id)."""
        try:
            return self._local.state
        except AttributeError:
            state = self._local.state = ([], threading.get_ident())
            with self._lock:
                self._all_stacks.append(state[0])
            return state

    def _open(self, name: str, kind: str, shapes: tuple) -> list:
        stack, thread = self._thread()
        record = [name, kind, shapes, thread, stack[-1] if stack else None, 0, 0, 0, 0, 0, 0, None, None, None, stack]
        if self.profile_memory:
            record[MEM_START] = tracemalloc.get_traced_memory()[0]
        stack.append(record)
        record[START] = _clock()  # last, so the bookkeeping above is not counted in the event
        return record

    def _finish(self, record: list) -> None:
        end = _clock()
        stack = record[STACK]
        if stack and stack[-1] is record:
            self._close(stack, record, end)
        elif any(open_record is record for open_record in stack):  # an op that raised never reported its end
            while self._close(stack, stack[-1], end) is not record:
                pass
        # else: already closed by stop()

    def _close(self, stack: list[list], record: list, end: int) -> list:
        stack.pop()
        record[END] = end
        parent = record[PARENT]
        if parent is not None:
            parent[CHILD_NS] += end - record[START]
        if self.profile_memory:
            record[MEM] = tracemalloc.get_traced_memory()[0] - record[MEM_START]
            if parent is not None:
                parent[CHILD_MEM] += record[MEM]
        self._records.append(record)
        return record

    @staticmethod
    def _shapes(values: tuple) -> tuple:
        return tuple([v.shape if isinstance(v, np.ndarray) else None for v in values])

    # -- the observer protocol (see tinytorch.core.observers) -----------------------------------------
    def op_begin(self, name: str, phase: str, inputs: tuple) -> list:
        counted = self.with_flops and name in FLOP_FORMULAS
        shapes = self._shapes(inputs) if counted or self.record_shapes else ()
        record = self._open(name + "Backward" if phase == "backward" else name, "op", shapes)
        if counted:
            record[FLOP_OP], record[PHASE] = name, phase
        return record

    def op_end(self, token: list, result: Any) -> None:
        self._finish(token)
        if token[FLOP_OP] is not None and result is not None:
            output = shape_of(result) if token[PHASE] == "forward" else computed_gradients(result)
            token[FLOPS] = op_flops(token[FLOP_OP], token[PHASE], token[SHAPES], output)

    def wrap_kernel(self, name: str, function: Callable) -> Callable:
        label = "kernels." + name

        def call(*args: Any, **kwargs: Any) -> Any:
            record = self._open(label, "kernel", self._shapes(args) if self.record_shapes else ())
            try:
                return function(*args, **kwargs)
            finally:
                self._finish(record)

        return call

    def module_begin(self, module: Any, args: tuple) -> list | None:
        if not self.with_modules:
            return None
        shapes = tuple([getattr(a, "shape", None) for a in args]) if self.record_shapes else ()
        return self._open(f"{type(module).__name__}.forward", "module", shapes)

    def module_end(self, token: list | None, output: Any) -> None:
        if token is not None:
            self._finish(token)


def _to_events(records: list[list]) -> list[FunctionEvent]:
    """The recorded lists as FunctionEvents, parents linked, in the order they started."""
    records.sort(key=lambda r: r[START])
    events: dict[int, FunctionEvent] = {}
    out = []
    for r in records:
        parent = events.get(id(r[PARENT])) if r[PARENT] is not None else None
        event = FunctionEvent(r[NAME], r[KIND], r[SHAPES], r[THREAD], parent)
        event.start_ns, event.end_ns, event.child_ns = r[START], r[END], r[CHILD_NS]
        event.memory_start, event.cpu_memory_usage, event.child_memory = r[MEM_START], r[MEM], r[CHILD_MEM]
        event.flop_op, event.phase, event.flops = r[FLOP_OP], r[PHASE], r[FLOPS]
        events[id(r)] = event
        out.append(event)
    return out


class record_function:
    """Record a block (or, as a decorator, every call of a function) as one event named ``name``.

    >>> import tinytorch as tt
    >>> with Profiler() as prof:
    ...     with record_function("data prep"):
    ...         x = tt.randn(8, 8) * 2.0
    >>> [(e.name, e.parent.name if e.parent else None) for e in prof.events()]
    [('data prep', None), ('Mul', 'data prep')]

    Outside a running profiler it does nothing.
    """

    def __init__(self, name: str):
        self.name = name
        self._events: list[tuple[Profiler, list]] = []

    def __enter__(self) -> record_function:
        self._events = [(p, p._open(self.name, "user", ())) for p in _active]
        return self

    def __exit__(self, *exc: Any) -> None:
        for profiler, event in reversed(self._events):
            profiler._finish(event)
        self._events = []

    def __call__(self, function: Callable) -> Callable:
        import functools

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with record_function(self.name):
                return function(*args, **kwargs)

        return wrapper
