"""tito module: a student's workspace, lesson by lesson.

Usage:
  tito module start <lesson> [--workspace=<dir>]
  tito module test <lesson> [--workspace=<dir>] [--quiet]
  tito module status [--workspace=<dir>]

Commands:
  start   Write a workspace file for a lesson: a stub per exercise and the reflection questions.
  test    Run a lesson against your workspace file.
  status  For each lesson: workspace written? exercises passing? (measured by running them)

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace).
  --quiet            Print only the summary, not each failing example.
"""

from __future__ import annotations

from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.table import Table

from tinytorch import grading
from tinytorch import lesson as runner


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    command = next(k for k in ("start", "test", "status") if args[k])
    return {"start": start, "test": test, "status": status}[command](args, console)


def workspace_of(args: dict) -> Path:
    """The ``--workspace`` folder, else the default one (environment, then ./workspace)."""
    return Path(args["--workspace"]) if args["--workspace"] else grading.default_workspace()


def load(key: str, console: Console) -> runner.Lesson | None:
    """The lesson ``key`` names, or None after printing why there is none."""
    try:
        return runner.load_lesson(key)
    except LookupError as error:
        console.print(f"[red]{error}[/]")
        return None


def start(args: dict, console: Console) -> int:
    lesson = load(args["<lesson>"], console)
    if lesson is None:
        return 2
    if not lesson.exercises:
        console.print(f"lesson {lesson.name} has no exercises; read it with: python -m tinytorch.lesson {lesson.number}")
        return 0
    path = grading.workspace_path(lesson, workspace_of(args))
    try:
        runner.write_stub(lesson, path)
    except FileExistsError as error:
        console.print(f"[yellow]{error}[/]")
        return 1
    console.print(f"wrote {path}: write {', '.join(lesson.exercises)}; then run: tito module test {lesson.number}")
    return 0


def test(args: dict, console: Console) -> int:
    lesson = load(args["<lesson>"], console)
    if lesson is None:
        return 2
    path = grading.workspace_path(lesson, workspace_of(args))
    if not path.is_file():
        console.print(f"[red]no workspace for lesson {lesson.name} at {path}; start one with: tito module start {lesson.number}[/]")
        return 1
    result = runner.run_lesson(lesson, path)
    print(runner.format_result(result, show_failures=not args["--quiet"]))
    return 0 if result.ok else 1


def status(args: dict, console: Console) -> int:
    workspace = workspace_of(args)
    table = Table(title=f"progress in {workspace}")
    for column in ("lesson", "title", "workspace", "exercises passed"):
        table.add_column(column)
    passed = total = 0
    for lesson in runner.find_lessons():
        path = grading.workspace_path(lesson, workspace)
        if not lesson.exercises:
            table.add_row(lesson.name, lesson.title, "-", "no exercises")
            continue
        total += len(lesson.exercises)
        if not path.is_file():
            table.add_row(lesson.name, lesson.title, "not started", f"0 / {len(lesson.exercises)}")
            continue
        grade = grading.grade_lesson(lesson, path)
        passed += grade.passed
        table.add_row(lesson.name, lesson.title, "written", f"{grade.passed} / {grade.total}")
    console.print(table)
    share = 100 * passed / total if total else 0.0
    console.print(f"{passed} of {total} exercises pass ({share:.0f} %)")
    return 0
