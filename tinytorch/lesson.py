"""Run a lesson's doctests, against the framework or against a student's workspace.

    python -m tinytorch.lesson 02                      # lesson 02 against the framework
    python -m tinytorch.lesson 02 --workspace my.py    # its exercises against a student's file
    python -m tinytorch.lesson all                     # every lesson
    python -m tinytorch.lesson --list

A lesson is ``lessons/NN_slug.rst`` (format: ``lessons/README.md``). Its head is a field list
naming the framework module it teaches (``:module:``) and the exercises a student writes
(``:exercises:``). Each exercise name is looked up in the student's workspace when one is given
(a file, or a folder holding ``NN_slug.py``), else in the lesson's module, and the lesson's
examples run in one namespace in order. The summary reports each exercise: passed, failed, or
not written yet (its stub still raises ``NotImplementedError``).
"""

from __future__ import annotations

import argparse
import doctest
import importlib
import inspect
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from ._sourcefile import import_file

FIELD = re.compile(r"^:(\w+):\s*(.*?)\s*$")
REQUIRED_FIELDS = ("lesson", "title", "module", "exercises", "checkpoint")
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def lessons_dir() -> Path:
    """Where the lessons are: ``TINYTORCH_LESSONS`` when set, else ``lessons/`` beside the package."""
    env = os.environ.get("TINYTORCH_LESSONS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "lessons"


@dataclass
class Lesson:
    """One lesson file and the fields of its head."""

    number: str
    slug: str
    path: Path
    title: str
    module: str  # dotted name of the framework module the lesson teaches
    exercises: list[str]
    checkpoint: str
    text: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.number}_{self.slug}"

    def reflection_questions(self) -> list[str]:
        """The numbered questions of the lesson's ``Reflection`` section."""
        match = re.search(r"^Reflection\n[-=~^]+\n(.*?)(?=^\S[^\n]*\n[-=~^]{3,}\n|\Z)", self.text, re.M | re.S)
        if not match:
            return []
        questions: list[str] = []
        for line in match.group(1).splitlines():
            item = re.match(r"^(?:\d+|#)\.\s+(.*)", line)
            if item:
                questions.append(item.group(1).strip())
            elif questions and line.startswith(" ") and line.strip():
                questions[-1] += " " + line.strip()
        return questions


def parse_lesson(path: Path) -> Lesson:
    """Read a lesson file's head; an error names the file and the missing or malformed field."""
    text = path.read_text(encoding="utf-8")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        match = FIELD.match(line)
        if not match:
            break
        fields[match.group(1)] = match.group(2)
    missing = [f for f in REQUIRED_FIELDS if f not in fields]
    if missing:
        raise ValueError(f"lesson {path.name}: the head field list lacks {', '.join(':' + m + ':' for m in missing)}")
    number, _, slug = path.stem.partition("_")
    if fields["lesson"] != number:
        raise ValueError(f"lesson {path.name}: ':lesson: {fields['lesson']}' does not match the file name")
    module = fields["module"]
    if module.endswith(".py"):
        module = module[: -len(".py")].replace("/", ".").removesuffix(".__init__")  # a package's __init__.py names it
    exercises = [name.strip() for name in fields["exercises"].split(",") if name.strip()]
    return Lesson(number, slug, path, fields["title"], module, exercises, fields["checkpoint"], text)


def find_lessons() -> list[Lesson]:
    """Every lesson, in order."""
    return [parse_lesson(p) for p in sorted(lessons_dir().glob("[0-9][0-9]_*.rst"))]


def load_lesson(key: str) -> Lesson:
    """A lesson by number (``2``, ``02``), slug (``tensor``) or name (``02_tensor``)."""
    lessons = find_lessons()
    for lesson in lessons:
        if key in (lesson.number, lesson.slug, lesson.name) or (key.isdigit() and int(key) == int(lesson.number)):
            return lesson
    known = ", ".join(lesson.name for lesson in lessons)
    raise LookupError(f"no lesson {key!r}; the lessons are: {known}")


def load_workspace(path: Path) -> ModuleType:
    """Import a student's workspace file as a fresh module."""
    return import_file(path, f"tinytorch_workspace_{path.stem}", "workspace file")


def workspace_file(lesson: Lesson, workspace: Path | None) -> Path | None:
    """The workspace file for ``lesson``: ``workspace`` itself, or ``workspace/NN_slug.py`` when it is a folder."""
    if workspace is None:
        return None
    if workspace.is_dir():
        candidate = workspace / f"{lesson.name}.py"
        return candidate if candidate.is_file() else None
    return workspace


class _Missing:
    """Stands in for an exercise a workspace does not define; calling it says so."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path

    def __call__(self, *args, **kwargs):
        raise NameError(f"the workspace {self.path} does not define {self.name}")


def exercise_namespace(
    lesson: Lesson, workspace: Path | None = None, wrap: Callable[[str, Callable], Callable] | None = None
) -> dict[str, Any]:
    """The globals a lesson's examples run in: numpy as np, tinytorch as tt, and the exercise names.

    ``wrap(name, function)``, when given, replaces each exercise function (the grader records the
    calls a lesson makes this way).
    """
    import tinytorch

    framework = importlib.import_module(lesson.module)
    namespace: dict[str, Any] = {"np": np, "tt": tinytorch, "tinytorch": tinytorch}
    source = workspace_file(lesson, workspace)
    student = load_workspace(source) if source else None
    for name in lesson.exercises:
        if student is not None:
            namespace[name] = getattr(student, name, None) or _Missing(name, source)
        elif hasattr(framework, name):
            namespace[name] = getattr(framework, name)
        else:
            raise LookupError(f"lesson {lesson.name}: exercise {name} is not defined in {lesson.module}")
        if wrap is not None:
            namespace[name] = wrap(name, namespace[name])
    return namespace


@dataclass
class ExerciseResult:
    name: str
    examples: int = 0
    failed: int = 0
    not_written: bool = False

    @property
    def status(self) -> str:
        if self.not_written:
            return "not written"
        return "passed" if self.failed == 0 else "failed"


@dataclass
class LessonResult:
    lesson: Lesson
    workspace: Path | None
    examples: int
    failed: int
    exercises: dict[str, ExerciseResult]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return self.failed == 0


class _RecordingRunner(doctest.DocTestRunner):
    """A doctest runner that remembers which examples failed and why, instead of only printing."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.outcomes: dict[int, str | None] = {}  # id(example) -> None when passed, else the report
        self.not_implemented: set[int] = set()

    def report_success(self, out, test, example, got):
        self.outcomes[id(example)] = None

    def report_failure(self, out, test, example, got):
        self.outcomes[id(example)] = self._failure_header(test, example) + self._checker.output_difference(
            example, got, self.optionflags
        )

    def report_unexpected_exception(self, out, test, example, exc_info):
        if issubclass(exc_info[0], NotImplementedError):
            self.not_implemented.add(id(example))
        self.outcomes[id(example)] = self._failure_header(test, example) + "Exception raised:\n" + doctest._indent(
            doctest._exception_traceback(exc_info)
        )


def run_lesson(
    lesson: Lesson, workspace: Path | None = None, wrap: Callable[[str, Callable], Callable] | None = None
) -> LessonResult:
    """Run every example of ``lesson`` in order, in one namespace; never raises for a failing example.

    ``wrap`` is passed to :func:`exercise_namespace`.
    """
    namespace = exercise_namespace(lesson, workspace, wrap)
    test = doctest.DocTestParser().get_doctest(lesson.text, namespace, lesson.name, str(lesson.path), 0)
    runner = _RecordingRunner(optionflags=DOCTEST_FLAGS, verbose=False)
    print_options = np.get_printoptions()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=f"tinytorch-lesson-{lesson.number}-") as scratch:
        os.chdir(scratch)  # files a lesson writes land in a scratch folder
        try:
            runner.run(test, out=lambda _text: None, clear_globs=True)
        finally:
            os.chdir(cwd)
            np.set_printoptions(**print_options)
    exercises = {name: ExerciseResult(name) for name in lesson.exercises}
    patterns = {name: re.compile(rf"\b{re.escape(name)}\b") for name in lesson.exercises}
    failures = []
    for example in test.examples:
        outcome = runner.outcomes.get(id(example), "example did not run")
        if outcome is not None:
            failures.append(outcome)
        for name, pattern in patterns.items():
            if pattern.search(example.source):
                result = exercises[name]
                result.examples += 1
                if outcome is not None:
                    result.failed += 1
                    result.not_written |= id(example) in runner.not_implemented
    failed = sum(1 for e in test.examples if runner.outcomes.get(id(e), "") is not None)
    return LessonResult(lesson, workspace_file(lesson, workspace), len(test.examples), failed, exercises, failures)


class _Qualified:
    """A default value written in a stub as its import path (``tt.core.activations.ReLU``), not its repr."""

    def __init__(self, value: Any):
        self.text = f"{value.__module__}.{value.__qualname__}".replace("tinytorch.", "tt.", 1)

    def __repr__(self) -> str:
        return self.text


def signature_source(fn: Any) -> str:
    """``fn``'s signature as Python source; a class or function default (``activation=ReLU``) is
    written as its ``tt.`` path, since its repr (``<class ...>``) is not valid Python."""
    signature = inspect.signature(fn)
    parameters = [
        p.replace(default=_Qualified(p.default))
        if p.default is not p.empty and (inspect.isclass(p.default) or inspect.isfunction(p.default))
        else p
        for p in signature.parameters.values()
    ]
    return str(signature.replace(parameters=parameters))


def stub_source(lesson: Lesson) -> str:
    """A workspace file for ``lesson``: a stub per exercise (signature, docstring, NotImplementedError)
    and a place for each reflection answer."""
    framework = importlib.import_module(lesson.module)
    parts = [
        f'"""Workspace for lesson {lesson.number}: {lesson.title}.\n\n'
        f"Write each function below, then check it with:  python -m tinytorch.lesson {lesson.number} --workspace <this file>\n"
        '"""\n\nimport numpy as np\n\nimport tinytorch as tt\n'
    ]
    for name in lesson.exercises:
        obj = getattr(framework, name)
        if not inspect.isfunction(obj):
            raise TypeError(f"lesson {lesson.name}: exercise {name} must be a function, {lesson.module}.{name} is not")
        doc = inspect.getdoc(obj) or ""
        doc_block = '    """' + doc.replace("\\", "\\\\").replace('"""', "'''").replace("\n", "\n    ") + '\n    """\n' if doc else ""
        parts.append(
            f"\n\ndef {name}{signature_source(obj)}:\n{doc_block}"
            f'    raise NotImplementedError("write {name}: see lessons/{lesson.path.name}")\n'
        )
    questions = lesson.reflection_questions()
    if questions:
        parts.append("\n\n# Reflection: answer each question in 150-300 words.\nREFLECTIONS = {\n")
        for i, question in enumerate(questions, 1):
            parts.append(f"    # {i}. {question}\n    {i}: \"\"\"\n    \"\"\",\n")
        parts.append("}\n")
    return "".join(parts)


def write_stub(lesson: Lesson, path: Path) -> Path:
    """Write :func:`stub_source` to ``path`` (atomically); refuses to overwrite a student's file."""
    if path.exists():
        raise FileExistsError(f"{path} already exists; not overwriting a workspace")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(stub_source(lesson), encoding="utf-8")
    tmp.replace(path)
    return path


def format_result(result: LessonResult, show_failures: bool = True) -> str:
    lesson = result.lesson
    against = f"workspace {result.workspace}" if result.workspace else f"the framework ({lesson.module})"
    lines = [f"lesson {lesson.name}: {lesson.title} — against {against}"]
    for ex in result.exercises.values():
        detail = {
            "passed": f"{ex.examples} example(s) passed",
            "failed": f"{ex.failed} of {ex.examples} example(s) failed",
            "not written": f"still raises NotImplementedError: write {ex.name} in your workspace",
        }[ex.status]
        lines.append(f"  exercise {ex.name:<28} {ex.status:<12} {detail}")
    lines.append(f"  {result.examples - result.failed} of {result.examples} examples passed")
    if show_failures and result.failures:
        lines.append("")
        lines.extend(result.failures)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch.lesson", description="Run TinyTorch lessons' doctests.")
    parser.add_argument("lessons", nargs="*", help="lesson numbers or names, or 'all'")
    parser.add_argument("--workspace", type=Path, help="a workspace file (one lesson) or folder of NN_slug.py files")
    parser.add_argument("--list", action="store_true", help="list the lessons")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not each failure")
    args = parser.parse_args(argv)
    if args.list:
        for lesson in find_lessons():
            print(f"{lesson.name:<20} {lesson.title}  [{lesson.module}: {', '.join(lesson.exercises)}]")
        return 0
    if not args.lessons:
        parser.error("name a lesson (e.g. 02), or 'all', or use --list")
    try:
        lessons = find_lessons() if args.lessons == ["all"] else [load_lesson(k) for k in args.lessons]
    except LookupError as error:
        print(error, file=sys.stderr)
        return 2
    if args.workspace is not None and args.workspace.is_file() and len(lessons) > 1:
        print("--workspace: a single file serves one lesson; give a folder of NN_slug.py files for several", file=sys.stderr)
        return 2
    results = [run_lesson(lesson, args.workspace) for lesson in lessons]
    for result in results:
        print(format_result(result, show_failures=not args.quiet))
    if len(results) > 1:
        passed = sum(r.ok for r in results)
        print(f"\n{passed} of {len(results)} lessons passed")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
