"""Where a student stands on each checkpoint, read from the results recorded in their workspace.

Nothing is run here and nothing is assumed: a checkpoint is *passed* only when a recorded run
passed and still describes the workspace (no file it depended on has changed since, see
:func:`tinytorch.workspace.progress.stale_reasons`); a changed file makes it *stale*. One that
was never run is *not run*, and one whose lesson does not exist yet is *lesson not available*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinytorch.checkpoints import CHECKPOINTS, Checkpoint, leading_lessons
from tinytorch.checkpoints.runner import FAILED, NO_LESSON, NO_TEST, PASSED, lessons_up_to
from tinytorch.lesson import Lesson
from tinytorch.workspace import progress

NOT_RUN, STALE = "not run", "stale"


@dataclass
class Standing:
    """One checkpoint's state in a workspace, and the recorded run it comes from."""

    checkpoint: Checkpoint
    lesson: Lesson | None
    state: str  # PASSED, FAILED, STALE, NOT_RUN, NO_LESSON or NO_TEST
    record: dict[str, Any] | None = None
    stale_reasons: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.state not in (NO_LESSON, NO_TEST)

    def headline(self) -> str:
        """The one line that says what was measured (or why it failed, or why nothing was)."""
        if self.record is None:
            if self.state == NO_LESSON:
                return "no lesson leads here yet"
            if self.state == NO_TEST:
                return "its lesson exists; its capability test is not written yet"
            return "nothing measured yet"
        if self.record.get("failure"):
            return self.record["failure"]
        measured = self.record.get("measurements", [])
        bounded = [m for m in measured if m.get("headline")] or [m for m in measured if m.get("bound")]
        if not bounded:
            return f"{len(measured)} check(s) passed"
        last = bounded[-1]
        unit = f" {last['unit']}" if last.get("unit") else ""
        value = last["value"]
        value = f"{value:.4g}" if isinstance(value, float) else value
        return f"{last['name']} = {value}{unit}"


def workspace_files_for(workspace: Path, lesson: Lesson) -> dict[str, str]:
    """The workspace files a checkpoint led to by ``lesson`` depends on now, with their hashes."""
    from tinytorch.workspace.files import sha256_of

    files = {}
    for other in lessons_up_to(lesson):
        path = Path(workspace) / f"{other.name}.py"
        if other.exercises and path.is_file():
            files[path.name] = sha256_of(path)
    return files


def standings(workspace: Path) -> list[Standing]:
    """Every checkpoint's standing in ``workspace``, in order."""
    recorded = progress.load(workspace)["checkpoints"]
    leading = leading_lessons()
    result = []
    for checkpoint in CHECKPOINTS:
        lesson = leading.get(checkpoint.number)
        if lesson is None:
            result.append(Standing(checkpoint, None, NO_LESSON))
            continue
        if checkpoint.module is None:
            result.append(Standing(checkpoint, lesson, NO_TEST))
            continue
        record = recorded.get(checkpoint.number)
        if record is None:
            result.append(Standing(checkpoint, lesson, NOT_RUN))
            continue
        reasons = progress.stale_reasons(record, workspace_files_for(workspace, lesson))
        state = STALE if reasons else (PASSED if record.get("status") == PASSED else FAILED)
        result.append(Standing(checkpoint, lesson, state, record, reasons))
    return result
