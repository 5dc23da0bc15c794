"""Run a checkpoint: on the framework's own code, or with a student's workspace substituted.

With a workspace, the checkpoint runs on the student's functions: every exercise they have
written in the lessons up to the one that leads to the checkpoint is put in place of the
framework's (:func:`tinytorch.use_workspace`), and the leading lesson's exercises must all be
theirs, or the checkpoint fails saying which are still stubs, missing or the framework's own.
The result says what was measured, which of the student's functions ran and how often, and the
hash of every workspace file it depended on (so that a later change makes it stale); the
command line records it in the workspace (:mod:`tinytorch.workspace.progress`).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinytorch.checkpoints import Checkpoint, get, leading_lessons
from tinytorch.checkpoints.probe import CheckpointFailed, Measurement, Probe
from tinytorch.lesson import Lesson, find_lessons
from tinytorch.workspace.progress import framework_version, now

PASSED, FAILED = "passed", "failed"
NO_LESSON, NO_TEST = "lesson not available", "test not written"


@dataclass
class Result:
    """One run of a checkpoint (or why it could not run)."""

    checkpoint: Checkpoint
    status: str  # PASSED, FAILED, NO_LESSON or NO_TEST
    lesson: str | None = None  # the leading lesson's name
    against: str = "framework"  # "framework" or "workspace"
    date: str = ""
    framework_version: str = ""
    seconds: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)
    failure: str | None = None
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {"file", "calls"}
    files: dict[str, str] = field(default_factory=dict)  # workspace file name -> sha256

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint.number,
            "name": self.checkpoint.name,
            "status": self.status,
            "lesson": self.lesson,
            "against": self.against,
            "date": self.date,
            "framework_version": self.framework_version,
            "seconds": round(self.seconds, 3),
            "measurements": [m.to_json() for m in self.measurements],
            "failure": self.failure,
            "functions": self.functions,
            "files": self.files,
        }


def lessons_up_to(lesson: Lesson) -> list[Lesson]:
    """The lessons whose exercises a checkpoint led to by ``lesson`` runs on: that one and those before it."""
    return [other for other in find_lessons() if int(other.number) <= int(lesson.number)]


def _not_yours(loaded) -> str:
    """Why the leading lesson's exercises are not all the student's, one clause per exercise."""
    why = {
        "stub": "is still a stub (raises NotImplementedError)",
        "missing": "is not defined",
        "framework": "is the framework's own function (imported), not yours",
    }
    return "; ".join(f"{e.name} {why[e.state]}" for e in loaded.exercises.values() if e.state != "yours")


def _where_it_failed(error: BaseException, workspace_files: set[str]) -> str:
    """``error`` as one line, with the student's function and line it was raised in, when it was."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in workspace_files]
    where = f" (in your {frames[-1].name}, {Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def run(key: str, workspace: Path | None = None, log: Callable[[str], None] | None = None) -> Result:
    """Run checkpoint ``key``; with ``workspace`` (a folder), on the student's functions.

    Never raises for a failing capability: the result's ``status`` and ``failure`` say what failed.
    ``log`` receives each step and measurement as it happens (``tito checkpoint run``).
    """
    import tinytorch
    from tinytorch.workspace import lesson_files, use_workspace
    from tinytorch.workspace.files import WorkspaceError

    checkpoint = get(key)
    lesson = leading_lessons().get(checkpoint.number)
    if lesson is None:
        return Result(checkpoint, NO_LESSON)
    if checkpoint.module is None:
        return Result(checkpoint, NO_TEST, lesson.name)
    result = Result(checkpoint, FAILED, lesson.name, "workspace" if workspace else "framework", now(), framework_version())
    probe = Probe(log)
    started = time.perf_counter()
    substituted = None
    try:
        if workspace is not None:
            files = lesson_files(Path(workspace), lessons_up_to(lesson))
            result.files = {f.path.name: f.sha256 for f in files}
            leading = next((f for f in files if f.lesson.name == lesson.name), None)
            if lesson.exercises and leading is None:
                raise CheckpointFailed(
                    f"no workspace file {lesson.name}.py in {workspace}: start it with tito module start {lesson.number}"
                )
            if leading is not None and not leading.complete:
                raise CheckpointFailed(f"lesson {lesson.name}: {_not_yours(leading)}")
            substituted = use_workspace(Path(workspace), lessons_up_to(lesson))
            result.functions = {k: {"file": name, "calls": None} for k, name in substituted.functions().items()}
        tinytorch.manual_seed(0)
        with substituted if substituted is not None else contextlib.nullcontext():
            try:
                # A checkpoint judges what it measures (a non-finite result fails its check), not NumPy's
                # floating-point warnings, so its verdict does not depend on the warning filters in force.
                with np.errstate(all="ignore"):
                    checkpoint.test().run(probe)
            finally:
                if substituted is not None:
                    counts = substituted.calls()
                    for k, entry in result.functions.items():
                        entry["calls"] = counts.get(k)
        result.status = PASSED
    except CheckpointFailed as failure:
        result.failure = str(failure)
    except WorkspaceError as error:
        result.failure = str(error)
    except Exception as error:  # the student's code (or a broken framework) may fail in any way: report it
        files = {str(Path(workspace) / name) for name in result.files} if workspace else set()
        result.failure = _where_it_failed(error, files)
    finally:
        result.seconds = time.perf_counter() - started
        result.measurements = probe.measurements
    return result

