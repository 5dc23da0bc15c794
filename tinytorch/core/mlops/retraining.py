"""When to retrain: the policy that turns monitoring alerts and drift reports into a retraining run.

A :class:`RetrainingTrigger` watches for the alerts it is told matter (by default: predictions
that drifted, input data that drifted, accuracy that fell) and fires at most once per cooldown,
so one bad hour does not start a retraining run per request. Firing calls the callback (the
pipeline's retraining step) and keeps a record of why.

>>> from tinytorch.core.mlops.monitor import Alert
>>> fired = []
>>> trigger = RetrainingTrigger(callback=fired.append, cooldown_s=3600, clock=lambda: 0.0)
>>> trigger.check([Alert("latency_p99", 0.2, 0.1, "slow")]) is None      # slowness is not the model's fault
True
>>> decision = trigger.check([Alert("prediction_psi", 0.4, 0.25, "predictions drifted")])
>>> decision.reasons, len(fired)
(['predictions drifted'], 1)
>>> trigger.check([Alert("prediction_psi", 0.5, 0.25, "still drifted")]) is None   # within the cooldown
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .drift import DriftReport
from .monitor import Alert

__all__ = ["RetrainingTrigger", "RetrainingDecision", "RETRAIN_ON"]

#: the alerts that say the *model* (not the machine) has a problem
RETRAIN_ON = ("prediction_psi", "input_drift", "accuracy", "low_confidence")


@dataclass(frozen=True)
class RetrainingDecision:
    """A firing: when (the trigger's clock), and the alerts behind it."""

    at: float
    alerts: tuple[Alert, ...]

    @property
    def reasons(self) -> list[str]:
        return [a.message for a in self.alerts]


class RetrainingTrigger:
    """Fires on the watched alerts, at most once per ``cooldown_s``.

    Parameters
    ----------
    on : sequence of str
        Alert names that start a retraining (see :data:`RETRAIN_ON`).
    cooldown_s : float
        Seconds after a firing during which it does not fire again.
    callback : callable, optional
        Called with the :class:`RetrainingDecision` when it fires.
    clock : callable
        Seconds (``time.monotonic`` by default; a test passes its own).
    """

    def __init__(self, on: Sequence[str] = RETRAIN_ON, cooldown_s: float = 3600.0,
                 callback: Callable[[RetrainingDecision], object] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.on, self.cooldown_s, self.callback, self.clock = tuple(on), float(cooldown_s), callback, clock
        self.history: list[RetrainingDecision] = []

    def check(self, alerts: Sequence[Alert] = (), drift: DriftReport | None = None) -> RetrainingDecision | None:
        """Fire if a watched alert (or a data-set drift in ``drift``) is present and the cooldown has passed."""
        relevant = [a for a in alerts if a.name in self.on]
        if drift is not None and drift.dataset_drifted and "input_drift" in self.on:
            relevant.append(Alert("input_drift", drift.share_drifted, drift.drift_share,
                                  f"input data drifted: {', '.join(drift.drifted_features)}"))
        now = self.clock()
        if not relevant or (self.history and now - self.history[-1].at < self.cooldown_s):
            return None
        decision = RetrainingDecision(now, tuple(relevant))
        self.history.append(decision)
        if self.callback is not None:
            self.callback(decision)
        return decision
