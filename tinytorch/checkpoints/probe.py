"""What a checkpoint test measures, and how it fails: the :class:`Probe` handed to every test.

A checkpoint test is a function ``run(probe)``. It does real work (trains, checks gradients,
times a kernel) and reports each number it measured with :meth:`Probe.measure`, each yes/no
finding with :meth:`Probe.check`, and what it is doing with :meth:`Probe.step`. A measurement
outside its bound stops the test with :class:`CheckpointFailed`, whose message says what was
measured and what was needed; every measurement taken until then is kept in the result.

>>> probe = Probe()
>>> probe.measure("test accuracy", 0.93, at_least=0.9)
0.93
>>> probe.measure("loss", 2.5, at_most=1.0)
Traceback (most recent call last):
...
tinytorch.checkpoints.probe.CheckpointFailed: loss = 2.5, needs at most 1
>>> [m.ok for m in probe.measurements]
[True, False]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable


class CheckpointFailed(AssertionError):
    """A capability was not shown: the message names what was measured and what was needed."""


@dataclass
class Measurement:
    """One thing a checkpoint measured: its value, the bound it had to meet, and whether it did."""

    name: str
    value: Any
    bound: str
    ok: bool
    unit: str = ""
    headline: bool = False  # the one number that answers the checkpoint's question (shown by status views)

    def text(self) -> str:
        if isinstance(self.value, bool):
            return self.name
        value = _format(self.value)
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} = {value}{unit}" + (f" ({self.bound})" if self.bound else "")

    def to_json(self) -> dict[str, Any]:
        entry = asdict(self)
        if isinstance(self.value, float) and not math.isfinite(self.value):
            entry["value"] = str(self.value)  # JSON has no NaN or infinity
        return entry


def _format(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.5g}"


class Probe:
    """Collects a checkpoint's measurements; ``log`` (when given) sees each step and measurement as it happens."""

    def __init__(self, log: Callable[[str], None] | None = None):
        self.measurements: list[Measurement] = []
        self._log = log

    def step(self, text: str) -> None:
        """Say what the test does next (shown by ``tito checkpoint run``)."""
        if self._log is not None:
            self._log(text)

    def _record(self, measurement: Measurement, failure: str) -> None:
        self.measurements.append(measurement)
        if self._log is not None:
            self._log(("  ✓ " if measurement.ok else "  ✗ ") + measurement.text())
        if not measurement.ok:
            raise CheckpointFailed(failure)

    def measure(
        self,
        name: str,
        value: float,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        unit: str = "",
        headline: bool = False,
    ) -> float:
        """Record ``value``; fail unless ``at_least <= value <= at_most`` (a NaN never passes).

        ``headline`` marks the measurement that answers the checkpoint's question.
        """
        value = float(value)
        bounds = []
        if at_least is not None:
            bounds.append(f"at least {_format(float(at_least))}")
        if at_most is not None:
            bounds.append(f"at most {_format(float(at_most))}")
        ok = not math.isnan(value) and (at_least is None or value >= at_least) and (at_most is None or value <= at_most)
        unit_text = f" {unit}" if unit else ""
        self._record(
            Measurement(name, value, "needs " + " and ".join(bounds) if bounds else "", ok, unit, headline),
            f"{name} = {_format(value)}{unit_text}, needs {' and '.join(bounds)}",
        )
        return value

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a yes/no finding; fail with ``detail`` when it is no."""
        self._record(Measurement(name, bool(ok), "", bool(ok)), f"{name}: {detail}" if detail else name)

    def require(self, ok: bool, reason: str) -> None:
        """Stop the test with ``reason`` unless ``ok`` (for preconditions, such as data being there)."""
        if not ok:
            raise CheckpointFailed(reason)
