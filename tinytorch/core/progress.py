"""How a training run reports itself: a rich progress bar per epoch and one summary line per epoch.

``verbose`` levels, as in Keras: 0 prints nothing, 1 shows a live bar (batches done, running
loss and metrics, images per second, time left) and a summary line per epoch, 2 only the
summary lines (for logs written to a file).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# logged numbers that are not a loss or a metric, and how to show them in a summary line
_UNITS = {"lr": ("lr", "{:.3g}"), "epoch_time": ("", "{:.1f} s"), "images_per_second": ("", "{:,.0f} img/s")}


def format_logs(logs: Mapping[str, float]) -> str:
    """``train_loss 0.4213  train_accuracy 0.8710  ...  12.3 s  4,120 img/s`` for one epoch's numbers."""
    parts = []
    for key, value in logs.items():
        label, pattern = _UNITS.get(key, (key, "{:.4f}"))
        parts.append(f"{label} {pattern.format(value)}".strip())
    return "  ".join(parts)


class TrainingDisplay:
    """Draws progress for :class:`~tinytorch.core.training.Trainer` at a ``verbose`` level (0, 1 or 2)."""

    def __init__(self, verbose: bool | int = True, console: Console | None = None) -> None:
        level = int(verbose)
        if level not in (0, 1, 2):
            raise ValueError(f"Trainer: verbose must be 0, 1 (bars) or 2 (one line per epoch), got {verbose!r}")
        self.level = level
        self.console = console or (Console() if level else None)
        self._progress: Progress | None = None
        self._task = None

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int | None) -> Iterator[None]:
        """A live bar for one epoch's batches (level 1 only); ``batches`` may be None when unknown."""
        if self.level != 1:
            yield
            return
        progress = Progress(
            TextColumn(f"Epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress, self._task = progress, progress.add_task("train", total=batches, info="")
        with progress:
            try:
                yield
            finally:
                self._progress = self._task = None

    @property
    def live(self) -> bool:
        """True while a progress bar is on screen (so running numbers are worth computing)."""
        return self._progress is not None

    def advance(self, info: Mapping[str, float]) -> None:
        """One more batch done; ``info`` holds the running numbers to show beside the bar."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=format_logs(info))

    def summary(self, epoch: int, epochs: int, logs: Mapping[str, float]) -> None:
        """The line that stays on screen after an epoch."""
        if self.level:
            self.console.print(f"Epoch {epoch}/{epochs}  {format_logs(logs)}", highlight=False, soft_wrap=True)
