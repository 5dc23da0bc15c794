"""Callbacks: code that runs at fixed points of :meth:`Trainer.fit <tinytorch.core.training.Trainer.fit>`.

A callback overrides any of ``on_train_begin``, ``on_epoch_begin``, ``on_batch_end``,
``on_epoch_end`` and ``on_train_end``. ``logs`` is a dict of the epoch's numbers (``train_loss``,
``val_accuracy``, ...); a callback stops training by setting ``trainer.stop_training = True``.
What a callback must remember across a checkpoint (a best score, a patience count) it returns from
``state_dict()``, so a resumed run behaves as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from .training import Trainer

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "PeriodicCheckpoint"]


class Callback:
    """The base class: every hook does nothing."""

    def on_train_begin(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def on_batch_end(self, trainer: "Trainer", step: int, logs: Mapping[str, float]) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Mapping[str, float]) -> None:
        pass

    def on_train_end(self, trainer: "Trainer") -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback (numbers, lists, arrays)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class _Monitor:
    """Tracks the best value of one logged quantity; ``mode`` says whether lower or higher is better."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float) -> None:
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: Mapping[str, float]) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{self.owner}: monitors {self.monitor!r}, but the epoch logged only {sorted(logs)}")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        """Record ``value``; True when it beats the best so far by more than ``min_delta``."""
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs in a row.

    ``restore_best_weights=True`` puts back the weights of the best epoch when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be a positive integer, got {patience!r}")
        self.tracker = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = patience
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.restore_best_weights = restore_best_weights
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.tracker.improved(self.tracker.value(logs)):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self):
        state = {"best": self.tracker.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state):
        self.tracker.best, self.wait, self.stopped_epoch = state["best"], state["wait"], state["stopped_epoch"]
        self.best_weights = state.get("best_weights")


class ModelCheckpoint(Callback):
    """Save a full checkpoint (``trainer.save_checkpoint(path)``) when ``monitor`` improves, or every
    epoch with ``save_best_only=False``. The file is ``.npz`` whatever its name (never a pickle)."""

    def __init__(
        self,
        path: str,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = True,
        min_delta: float = 0.0,
    ) -> None:
        self.path = path
        self.tracker = _Monitor("ModelCheckpoint", monitor, mode, min_delta)
        self.save_best_only = save_best_only
        self.saved_epochs: list[int] = []

    def on_epoch_end(self, trainer, epoch, logs):
        if self.tracker.improved(self.tracker.value(logs)) or not self.save_best_only:
            self.saved_epochs.append(epoch)
            trainer.save_checkpoint(self.path)

    def state_dict(self):
        return {"best": self.tracker.best, "saved_epochs": list(self.saved_epochs)}

    def load_state_dict(self, state):
        self.tracker.best, self.saved_epochs = state["best"], list(state["saved_epochs"])


class PeriodicCheckpoint(Callback):
    """Save a full checkpoint (``trainer.save_checkpoint(path)``) every ``every_n_steps`` optimizer steps.

    A checkpoint taken in the middle of an epoch records where in the epoch training was, so a run
    killed at any moment loses at most ``every_n_steps`` steps: ``fit(..., resume_from=path)``
    continues from the last one and reaches exactly the parameters of an unbroken run. Each save
    replaces the previous one atomically (a save killed midway leaves the previous file intact).
    """

    def __init__(self, path: str, every_n_steps: int) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"PeriodicCheckpoint: every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.path = path
        self.every_n_steps = every_n_steps

    def on_batch_end(self, trainer, step, logs):
        if step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.path)
