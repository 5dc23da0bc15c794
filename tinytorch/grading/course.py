"""A course folder: its gradebook, its checks, its rules; ``setup`` and ``release``.

::

    COURSE/
      gradebook.sqlite            the gradebook (tinytorch.grading.gradebook)
      checks/NN_slug.npz          each lesson's checks: inputs and the framework's outcomes
      checks/NN_slug.json         a readable listing of them (ids, exercises, sources, notes)
      checks/NN_slug.inputs.npz   the inputs alone: all a sandboxed child receives
      hidden/NN_slug.rst          the instructor's own hidden checks (doctests), optional
      release/NN_slug.py          stub workspaces for students (tito grade release)

Running ``setup`` again on an existing course keeps the gradebook and the course's seed, updates
the rules given, and records every lesson's checks afresh (after a lesson or the hidden checks
changed); a lesson whose checks changed gets a new digest, and ``autograde`` then grades its
submissions again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import tinytorch
from tinytorch.lesson import Lesson, find_lessons, load_lesson, write_stub

from .checks import CheckSet, build_checks
from .gradebook import FILE_NAME, Gradebook, open_gradebook
from .plaindata import save_bundle
from .sandbox import Limits
from .scores import parse_due, parse_late_rule

HIDDEN_README = """\
Hidden checks of this course: one doctest file per lesson, named like the lesson (06_spatial.rst).

Each file runs in the lesson's namespace (np, tt, and the exercise functions), against the
framework. Every call of an exercise it makes becomes a hidden check: students are graded on it,
and their feedback names it without showing its inputs. Write the edge cases the lesson's own
examples do not cover, for example:

    >>> import numpy as np
    >>> _ = im2col(np.ones((1, 1, 1, 1), dtype=np.float32), 1)        # a single pixel
    >>> _ = im2col(np.full((2, 3, 5, 4), 1e6), (5, 4), stride=3)      # extreme values, one window

After adding or changing a file, run `tito grade setup` on the course again.
"""


@dataclass
class Course:
    """An open course folder."""

    root: Path
    gradebook: Gradebook
    _checks: dict[str, CheckSet] = field(default_factory=dict)
    _inputs: dict[str, bytes] = field(default_factory=dict)

    @property
    def checks_dir(self) -> Path:
        return self.root / "checks"

    def settings(self) -> dict:
        return self.gradebook.settings()

    def limits(self) -> Limits:
        return Limits(**self.settings()["limits"])

    def lessons(self) -> list[Lesson]:
        """The course's lessons, in order."""
        names = {row["lesson"] for row in self.gradebook.lessons()}
        return [lesson for lesson in find_lessons() if lesson.name in names]

    def lesson(self, key: str) -> Lesson:
        """A course lesson by number or name; LookupError naming the course's lessons otherwise."""
        lesson = load_lesson(key)
        if lesson.name not in {row["lesson"] for row in self.gradebook.lessons()}:
            known = ", ".join(row["lesson"] for row in self.gradebook.lessons())
            raise LookupError(f"lesson {lesson.name} is not part of this course ({known})")
        return lesson

    def checks(self, lesson: Lesson) -> CheckSet:
        if lesson.name not in self._checks:
            checks = CheckSet.load(self.checks_dir, lesson)
            recorded = self.gradebook.lesson(lesson.name)["checks_digest"]
            if checks.digest != recorded:
                raise RuntimeError(f"the checks of {lesson.name} in {self.checks_dir} changed since setup; run tito grade setup {self.root} again")
            self._checks[lesson.name] = checks
        return self._checks[lesson.name]

    def inputs(self, lesson: Lesson) -> bytes:
        """The bundle of inputs a sandboxed child receives for ``lesson``."""
        if lesson.name not in self._inputs:
            self._inputs[lesson.name] = (self.checks_dir / f"{lesson.name}.inputs.npz").read_bytes()
        return self._inputs[lesson.name]

    def close(self) -> None:
        self.gradebook.close()


def open_course(root: Path) -> Course:
    root = Path(root)
    return Course(root, open_gradebook(root / FILE_NAME))


def setup(
    root: Path,
    lessons: list[str] | None = None,
    due: dict[str, str] | None = None,
    late_penalty: str | None = None,
    exercise_points: float | None = None,
    reflection_points: float | None = None,
    partial_credit: bool | None = None,
    limits: Limits | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Course:
    """Create or refresh a course (see the module's docstring); returns it open."""
    root = Path(root)
    if late_penalty is not None:
        parse_late_rule(late_penalty)
    due_dates = {load_lesson(key).name: parse_due(text).isoformat(timespec="seconds") for key, text in (due or {}).items()}
    root.mkdir(parents=True, exist_ok=True)
    gradebook = open_gradebook(root / FILE_NAME, create=True)
    settings = gradebook.settings()
    defaults = {
        "name": root.resolve().name,
        "seed": secrets.randbits(31),
        "late_penalty": "none",
        "exercise_points": 1.0,
        "reflection_points": 1.0,
        "partial_credit": True,
        "limits": vars(Limits()).copy(),
        "tinytorch": tinytorch.__version__,
    }
    given = {
        "late_penalty": late_penalty,
        "exercise_points": exercise_points,
        "reflection_points": reflection_points,
        "partial_credit": partial_credit,
        "limits": vars(limits).copy() if limits else None,
    }
    settings = {**defaults, **settings, **{k: v for k, v in given.items() if v is not None}, "tinytorch": tinytorch.__version__}
    gradebook.set_settings(settings)
    if lessons:
        chosen = [load_lesson(key) for key in lessons]
    else:
        existing = {row["lesson"] for row in gradebook.lessons()}
        chosen = [lesson for lesson in find_lessons() if lesson.exercises and (not existing or lesson.name in existing)]
    unknown_due = set(due_dates) - {lesson.name for lesson in chosen} - {row["lesson"] for row in gradebook.lessons()}
    if unknown_due:
        raise LookupError(f"--due names lessons that are not in the course: {', '.join(sorted(unknown_due))}")
    hidden = root / "hidden"
    hidden.mkdir(exist_ok=True)
    if not (hidden / "README.md").exists():
        (hidden / "README.md").write_text(HIDDEN_README, encoding="utf-8")
    checks_dir = root / "checks"
    for lesson in chosen:
        if not lesson.exercises:
            raise ValueError(f"lesson {lesson.name} has no exercises to grade")
        progress(f"recording the checks of {lesson.name}")
        hidden_file = hidden / f"{lesson.name}.rst"
        hidden_text = hidden_file.read_text(encoding="utf-8") if hidden_file.is_file() else None
        checks = build_checks(lesson, settings["seed"], hidden_text)
        checks.save(checks_dir)
        save_bundle(checks_dir / f"{lesson.name}.inputs.npz", checks.inputs_documents())
        row = gradebook.lesson(lesson.name)
        lesson_due = due_dates.get(lesson.name, row["due"] if row else None)
        exercises = [
            (name, settings["exercise_points"], sum(c.visibility == "public" for c in checks.of(name)), sum(c.visibility == "hidden" for c in checks.of(name)))
            for name in lesson.exercises
        ]
        gradebook.set_lesson(lesson.name, lesson.number, lesson.title, lesson_due, len(lesson.reflection_questions()), checks.digest, exercises)
    for name, when in due_dates.items():
        if gradebook.lesson(name) is not None:
            gradebook.set_due(name, when)
    return Course(root, gradebook)


def release(lessons: list[str], out: Path) -> tuple[list[Path], list[str]]:
    """Write the stub workspace of each lesson into ``out``; returns (written, skipped with reason)."""
    written, skipped = [], []
    for key in lessons:
        lesson = load_lesson(key)
        if not lesson.exercises:
            skipped.append(f"{lesson.name}: no exercises")
            continue
        try:
            written.append(write_stub(lesson, Path(out) / f"{lesson.name}.py"))
        except FileExistsError as error:
            skipped.append(str(error))
    return written, skipped
