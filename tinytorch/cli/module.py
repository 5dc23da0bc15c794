"""tito module: a student's workspace, lesson by lesson.

Usage:
  tito module start <lesson> [--workspace=<dir>]
  tito module test <lesson> [--workspace=<dir>] [--quiet]
  tito module complete <lesson> [--workspace=<dir>] [--quiet]
  tito module status [--workspace=<dir>]
  tito module reset <lesson> [--workspace=<dir>]
  tito module list [--workspace=<dir>]

Commands:
  start     Write a workspace file for a lesson: a stub per exercise and the reflection questions.
  test      Run a lesson against your workspace file.
  complete  Test it; when every exercise passes, mark the lesson complete (export it) and run the
            checkpoint it leads to with your functions in the framework; record both.
  status    For each lesson: workspace written? exercises passing? which functions are yours? completed?
  reset     Start a lesson's workspace file again from the stub (the old one is kept in <dir>/backup/).
  list      The lessons: title, exercises, the checkpoint each leads to, and your file's state.

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace).
  --quiet            Print only the summary, not each failing example.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.table import Table

from tinytorch import grading
from tinytorch import lesson as runner

def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    handlers = {"start": start, "test": test, "complete": complete, "status": status, "reset": reset, "list": list_lessons}
    command = next(k for k in handlers if args[k])
    return handlers[command](args, console)


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


def _tested(args: dict, console: Console) -> tuple[runner.Lesson, Path, runner.LessonResult] | int:
    """Run the named lesson against its workspace file; an exit status when that cannot be done."""
    lesson = load(args["<lesson>"], console)
    if lesson is None:
        return 2
    path = grading.workspace_path(lesson, workspace_of(args))
    if not path.is_file():
        console.print(f"[red]no workspace for lesson {lesson.name} at {path}; start one with: tito module start {lesson.number}[/]")
        return 1
    result = runner.run_lesson(lesson, path)
    print(runner.format_result(result, show_failures=not args["--quiet"]))
    return lesson, path, result


def test(args: dict, console: Console) -> int:
    tested = _tested(args, console)
    if isinstance(tested, int):
        return tested
    return 0 if tested[2].ok else 1


def complete(args: dict, console: Console) -> int:
    """``tito module complete NN``: test, mark complete, and run the checkpoint on the student's functions."""
    from tinytorch.checkpoints import get, runner as checkpoints
    from tinytorch.cli.checkpoint import report
    from tinytorch.workspace import progress
    from tinytorch.workspace.files import sha256_of

    tested = _tested(args, console)
    if isinstance(tested, int):
        return tested
    lesson, path, result = tested
    workspace = path.parent
    if not result.ok:
        failing = [name for name, e in result.exercises.items() if e.status != "passed"]
        console.print(f"[red]lesson {lesson.name} is not complete: {', '.join(failing) or 'an example'} still fail(s)[/]")
        return 1
    progress.record(workspace, "lessons", lesson.name, {
        "completed": progress.now(),
        "framework_version": progress.framework_version(),
        "files": {path.name: sha256_of(path)},
        "exercises": {name: e.status for name, e in result.exercises.items()},
    })
    console.print(f"[green]✓ lesson {lesson.name} complete: your {', '.join(lesson.exercises)} now run inside TinyTorch[/]")
    if not lesson.checkpoint.isdigit():
        return 0
    checkpoint = get(lesson.checkpoint)
    console.print(f"checkpoint {checkpoint.title}: {checkpoint.question}\nrunning on your functions in {workspace}")
    outcome = checkpoints.run(checkpoint.number, workspace)
    status = report(outcome, workspace, console)
    if outcome.passed:
        console.print(f"[bold green]Unlocked: {checkpoint.title}. See your path: tito checkpoint timeline[/]")
    return status


def status(args: dict, console: Console) -> int:
    from tinytorch.workspace import progress
    from tinytorch.workspace.files import WorkspaceError, load_exercise_file, sha256_of

    workspace = workspace_of(args)
    completed = progress.load(workspace)["lessons"] if workspace.is_dir() else {}
    table = Table(title=f"progress in {workspace}")
    for column in ("lesson", "title", "workspace", "exercises passed", "yours in the framework", "completed"):
        table.add_column(column)
    passed = total = 0
    for lesson in runner.find_lessons():
        path = grading.workspace_path(lesson, workspace)
        if not lesson.exercises:
            table.add_row(lesson.name, lesson.title, "-", "no exercises", "", "")
            continue
        total += len(lesson.exercises)
        if not path.is_file():
            table.add_row(lesson.name, lesson.title, "not started", f"0 / {len(lesson.exercises)}", "", "")
            continue
        grade = grading.grade_lesson(lesson, path)
        passed += grade.passed
        try:
            yours = ", ".join(load_exercise_file(lesson, path).names("yours")) or "none yet"
        except WorkspaceError as error:
            yours = f"[red]{error}[/]"
        record = completed.get(lesson.name)
        when = ""
        if record is not None:
            changed = progress.stale_reasons(record, {path.name: sha256_of(path)})
            when = record["completed"][:10] + (" [yellow](changed since)[/]" if changed else "")
        table.add_row(lesson.name, lesson.title, "written", f"{grade.passed} / {grade.total}", yours, when)
    console.print(table)
    share = 100 * passed / total if total else 0.0
    console.print(f"{passed} of {total} exercises pass ({share:.0f} %)")
    return 0


def reset(args: dict, console: Console) -> int:
    from tinytorch.workspace import progress

    lesson = load(args["<lesson>"], console)
    if lesson is None:
        return 2
    workspace = workspace_of(args)
    path = grading.workspace_path(lesson, workspace)
    if not lesson.exercises:
        console.print(f"lesson {lesson.name} has no exercises: there is nothing to reset")
        return 0
    if path.is_file():
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = workspace / "backup" / f"{lesson.name}.{stamp}.py"
        backup.parent.mkdir(parents=True, exist_ok=True)
        path.replace(backup)
        console.print(f"kept your file as {backup}")
    runner.write_stub(lesson, path)
    if progress.progress_path(workspace).is_file():
        progress.record(workspace, "lessons", lesson.name, None)
    console.print(f"wrote a fresh {path}; start again with: tito module test {lesson.number}")
    return 0


def list_lessons(args: dict, console: Console) -> int:
    workspace = workspace_of(args)
    table = Table(title="lessons")
    for column in ("lesson", "title", "exercises", "checkpoint", "your file"):
        table.add_column(column)
    from tinytorch.checkpoints import get

    for lesson in runner.find_lessons():
        checkpoint = get(lesson.checkpoint).title if lesson.checkpoint.isdigit() else "-"
        path = grading.workspace_path(lesson, workspace)
        state = "-" if not lesson.exercises else ("written" if path.is_file() else f"tito module start {lesson.number}")
        table.add_row(lesson.name, lesson.title, ", ".join(lesson.exercises) or "-", checkpoint, state)
    console.print(table)
    return 0
