"""What the op profiler recorded, and its reports: PyTorch's table and a Chrome trace (lesson 14).

A :class:`FunctionEvent` is one call of an op, a kernel, a module or a ``record_function`` block.
:meth:`EventList.key_averages` sums the events of each name (and input shapes, when asked) into
:class:`FunctionEventAvg` rows; :meth:`EventList.table` prints them with the columns and names of
PyTorch's ``prof.key_averages().table()``:

- **Self CPU**: time inside the event minus the time of the events inside it; **CPU total**: the
  whole span. Both percentages divide by the sum of all self times, so Self CPU % adds up to 100.
- **CPU time avg**: CPU total / # of Calls.
- **CPU Mem** / **Self CPU Mem** (with ``profile_memory=True``): bytes the event left allocated
  (allocated minus freed between its start and end), with / without the events inside it.
- **Total MFLOPs** (unit scaled to the smallest count) and **GFLOP/s**, the FLOPs over CPU total:
  the arithmetic rate an op reached, to hold against the machine's matrix-multiply peak.

Times are in microseconds, as PyTorch's (``self_cpu_time_total`` and so on).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from .atomic_write import write_text_atomic
from .flops import flops_unit

_KINDS_IN_TRACE = {"op": "cpu_op", "kernel": "kernel", "module": "python_function", "user": "user_annotation"}


class FunctionEvent:
    """One recorded call: its name, kind ("op", "kernel", "module", "user"), times, shapes, FLOPs, memory."""

    __slots__ = (
        "name", "kind", "input_shapes", "thread", "parent", "start_ns", "end_ns", "child_ns",
        "memory_start", "cpu_memory_usage", "child_memory", "flop_op", "phase", "flops",
    )  # fmt: skip

    def __init__(self, name: str, kind: str, input_shapes: tuple, thread: int, parent: FunctionEvent | None):
        self.name, self.kind, self.input_shapes, self.thread, self.parent = name, kind, input_shapes, thread, parent
        self.start_ns = self.end_ns = self.child_ns = 0
        self.memory_start = self.cpu_memory_usage = self.child_memory = 0
        self.flop_op = self.phase = self.flops = None  # the op's name and phase when it has a FLOP formula; its FLOPs

    key = property(lambda self: self.name)
    count = property(lambda self: 1)

    @property
    def cpu_time_total(self) -> float:
        """The event's whole span, in microseconds."""
        return (self.end_ns - self.start_ns) / 1000

    cpu_time = cpu_time_total

    @property
    def self_cpu_time_total(self) -> float:
        """The span minus the spans of the events directly inside it, in microseconds."""
        return (self.end_ns - self.start_ns - self.child_ns) / 1000

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.cpu_memory_usage - self.child_memory

    @property
    def is_top_level(self) -> bool:
        return self.parent is None

    def __repr__(self) -> str:
        return f"<FunctionEvent {self.name} ({self.kind}) {self.cpu_time_total:.3f} us, self {self.self_cpu_time_total:.3f} us>"


class FunctionEventAvg:
    """The events of one name (and input shapes, when grouped by them), summed."""

    def __init__(self, key: str, kind: str, input_shapes: tuple | None):
        self.key, self.kind, self.input_shapes = key, kind, input_shapes
        self.count = 0
        self.cpu_time_total = self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = self.self_cpu_memory_usage = 0
        self.flops: int | None = None
        self.is_top_level = True

    def add(self, event: FunctionEvent) -> None:
        self.count += 1
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        self.cpu_memory_usage += event.cpu_memory_usage
        self.self_cpu_memory_usage += event.self_cpu_memory_usage
        if event.flops is not None:
            self.flops = (self.flops or 0) + event.flops
        self.is_top_level = self.is_top_level and event.is_top_level

    @property
    def cpu_time(self) -> float:
        """Average CPU total per call, in microseconds."""
        return self.cpu_time_total / self.count if self.count else 0.0

    def __repr__(self) -> str:
        return f"<FunctionEventAvg {self.key} x{self.count}: total {self.cpu_time_total:.3f} us, self {self.self_cpu_time_total:.3f} us>"


def format_time(us: float) -> str:
    """PyTorch's format: ``1.234s``, ``12.345ms`` or ``567.890us``."""
    if abs(us) >= 1e6:
        return f"{us / 1e6:.3f}s"
    if abs(us) >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def format_memory(nbytes: float) -> str:
    """PyTorch's format: ``1.50 Gb``, ``12.00 Mb``, ``3.25 Kb`` or ``100 b`` (binary units)."""
    for unit, size in (("Gb", 2**30), ("Mb", 2**20), ("Kb", 2**10)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{int(nbytes)} b"


def shapes_text(shapes: Iterable | None) -> str:
    """Input shapes as PyTorch's table shows them: ``[[64, 3, 32, 32], [32, 3, 3, 3], []]`` (``[]``: not an array)."""
    return "[" + ", ".join("[]" if s is None else str(list(s)) for s in shapes or ()) + "]"


SORT_KEYS = ("self_cpu_time_total", "cpu_time_total", "cpu_time", "count", "flops", "cpu_memory_usage", "self_cpu_memory_usage")


class EventList(list):
    """A list of events (or of averaged rows) with PyTorch's reports on it."""

    def __init__(
        self,
        items: Iterable = (),
        wall_time_us: float | None = None,
        origin_ns: int | None = None,
        with_flops: bool = True,
        profile_memory: bool = False,
        grouped_by_shape: bool = False,
    ):
        super().__init__(items)
        self.wall_time_us = wall_time_us
        self.origin_ns = origin_ns
        self.with_flops = with_flops
        self.profile_memory = profile_memory
        self.grouped_by_shape = grouped_by_shape

    @property
    def self_cpu_time_total(self) -> float:
        """The sum of the self times, in microseconds: time spent inside recorded events, counted once."""
        return sum(item.self_cpu_time_total for item in self)

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """One :class:`FunctionEventAvg` per name (per name and input shapes), in order of first call."""
        rows: dict[tuple, FunctionEventAvg] = {}
        for event in self:
            shapes = event.input_shapes if group_by_input_shape else None
            key = (event.name, shapes)
            row = rows.get(key)
            if row is None:
                row = rows[key] = FunctionEventAvg(event.name, event.kind, shapes)
            row.add(event)
        return EventList(
            rows.values(), self.wall_time_us, self.origin_ns, self.with_flops, self.profile_memory, group_by_input_shape
        )

    def table(
        self,
        sort_by: str | None = "self_cpu_time_total",
        row_limit: int = 100,
        max_name_column_width: int = 55,
        header: str | None = None,
        top_level_events_only: bool = False,
    ) -> str:
        """PyTorch's profiler table, sorted by ``sort_by`` (descending), at most ``row_limit`` rows.

        ``sort_by`` is one of ``self_cpu_time_total``, ``cpu_time_total``, ``cpu_time``, ``count``,
        ``flops``, ``cpu_memory_usage``, ``self_cpu_memory_usage`` (None keeps the recorded order).
        """
        if sort_by is not None and sort_by not in SORT_KEYS:
            raise ValueError(f"table: cannot sort by {sort_by!r}; expected one of {', '.join(SORT_KEYS)}")
        rows = [r for r in self if r.is_top_level or not top_level_events_only]
        if sort_by is not None:
            rows.sort(key=lambda r: getattr(r, sort_by) or 0, reverse=True)
        rows = rows[:row_limit] if row_limit > 0 else rows
        total_self = self.self_cpu_time_total
        show_flops = self.with_flops and any(r.flops for r in self)
        scale, unit = flops_unit(r.flops for r in self)

        def share(us: float) -> str:
            return f"{100 * us / total_self:.2f}%" if total_self > 0 else "--"

        columns: list[tuple[str, list[str]]] = [
            ("Name", [r.key if len(r.key) <= max_name_column_width else r.key[: max_name_column_width - 3] + "..." for r in rows]),
            ("Self CPU %", [share(r.self_cpu_time_total) for r in rows]),
            ("Self CPU", [format_time(r.self_cpu_time_total) for r in rows]),
            ("CPU total %", [share(r.cpu_time_total) for r in rows]),
            ("CPU total", [format_time(r.cpu_time_total) for r in rows]),
            ("CPU time avg", [format_time(r.cpu_time) for r in rows]),
        ]
        if self.profile_memory:
            columns.append(("CPU Mem", [format_memory(r.cpu_memory_usage) for r in rows]))
            columns.append(("Self CPU Mem", [format_memory(r.self_cpu_memory_usage) for r in rows]))
        columns.append(("# of Calls", [str(r.count) for r in rows]))
        if self.grouped_by_shape:
            columns.append(("Input Shapes", [shapes_text(r.input_shapes) for r in rows]))
        if show_flops:
            columns.append((f"Total {unit}", [f"{r.flops * scale:.3f}" if r.flops else "--" for r in rows]))
            columns.append(("GFLOP/s", [_rate(r) for r in rows]))
        widths = [max(len(title), *(len(cell) for cell in cells)) + 2 for title, cells in columns]
        rule = "  ".join("-" * w for w in widths)

        def line(cells: list[str]) -> str:
            first = f"{cells[0]:<{widths[0]}}"
            return "  ".join([first, *(f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:]))]).rstrip()

        out = [header] if header else []
        out += [rule, line([title for title, _ in columns]), rule]
        out += [line([cells[i] for _, cells in columns]) for i in range(len(rows))]
        out += [rule, f"Self CPU time total: {format_time(total_self)}"]
        if self.wall_time_us:
            covered = 100 * total_self / self.wall_time_us
            out.append(f"Profiled wall time: {format_time(self.wall_time_us)} (recorded events cover {covered:.1f} %)")
        return "\n".join(out)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write Chrome trace-event JSON: one complete ("X") event per recorded call, nested by time.

        Perfetto (ui.perfetto.dev) and chrome://tracing open it. Timestamps are microseconds from
        the start of the recording; each event's ``args`` hold its input shapes, FLOPs and memory.
        """
        if any(isinstance(e, FunctionEventAvg) for e in self):
            raise TypeError("export_chrome_trace: needs the events themselves (prof.events()), not key averages")
        origin = self.origin_ns if self.origin_ns is not None else min((e.start_ns for e in self), default=0)
        pid = os.getpid()
        threads: dict[int, int] = {}
        trace: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "tinytorch"}}]
        for event in self:
            tid = threads.setdefault(event.thread, len(threads) + 1)
            args: dict[str, Any] = {}
            if event.input_shapes:
                args["Input Shapes"] = [[] if s is None else list(s) for s in event.input_shapes]
            if event.flops is not None:
                args["FLOPs"] = event.flops
            if self.profile_memory:
                args["CPU Mem"], args["Self CPU Mem"] = event.cpu_memory_usage, event.self_cpu_memory_usage
            trace.append({
                "ph": "X", "cat": _KINDS_IN_TRACE[event.kind], "name": event.name, "pid": pid, "tid": tid,
                "ts": (event.start_ns - origin) / 1000, "dur": (event.end_ns - event.start_ns) / 1000, "args": args,
            })  # fmt: skip
        for ident, tid in threads.items():
            trace.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": f"thread {ident}"}})
        document = {"schemaVersion": 1, "displayTimeUnit": "ms", "traceEvents": trace}
        write_text_atomic(Path(path), json.dumps(document))


def _rate(row: Any) -> str:
    if not row.flops or row.cpu_time_total <= 0:
        return "--"
    return f"{row.flops / (row.cpu_time_total * 1e3):.2f}"
