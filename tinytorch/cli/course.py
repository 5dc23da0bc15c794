"""The course commands: ``tito lesson``, ``tito module start|test|status`` and ``tito grade``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinytorch import grading
from tinytorch import lesson as runner


def _workspace(args: dict) -> Path:
    return Path(args["--workspace"]) if args["--workspace"] else grading.default_workspace()


def lesson(args: dict) -> int:
    argv = ["--list"] if args["--list"] else list(args["<lesson>"])
    if args["--workspace"]:
        argv += ["--workspace", args["--workspace"]]
    if args["--quiet"]:
        argv.append("--quiet")
    return runner.main(argv)


def _load(key: str, console: Console) -> runner.Lesson | None:
    try:
        return runner.load_lesson(key)
    except LookupError as error:
        console.print(f"[red]{error}[/]")
        return None


def module_start(args: dict, console: Console) -> int:
    lesson = _load(args["<lesson>"][0], console)
    if lesson is None:
        return 2
    if not lesson.exercises:
        console.print(f"lesson {lesson.name} has no exercises; read it with: python -m tinytorch.lesson {lesson.number}")
        return 0
    path = grading.workspace_path(lesson, _workspace(args))
    try:
        runner.write_stub(lesson, path)
    except FileExistsError as error:
        console.print(f"[yellow]{error}[/]")
        return 1
    console.print(f"wrote {path}: write {', '.join(lesson.exercises)}; then run: tito module test {lesson.number}")
    return 0


def module_test(args: dict, console: Console) -> int:
    lesson = _load(args["<lesson>"][0], console)
    if lesson is None:
        return 2
    path = grading.workspace_path(lesson, _workspace(args))
    if not path.is_file():
        console.print(f"[red]no workspace for lesson {lesson.name} at {path}; start one with: tito module start {lesson.number}[/]")
        return 1
    result = runner.run_lesson(lesson, path)
    print(runner.format_result(result, show_failures=not args["--quiet"]))
    return 0 if result.ok else 1


def module_status(args: dict, console: Console) -> int:
    workspace = _workspace(args)
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


def grade(args: dict, console: Console) -> int:
    reports = []
    for folder in args["<workspace>"]:
        try:
            report = grading.report(Path(folder))
        except NotADirectoryError as error:
            console.print(f"[red]{error}[/]")
            return 2
        reports.append(report)
    table = Table(title="grades")
    for column in ("workspace", "lessons", "exercises passed", "reflections 150-300 words"):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r["workspace"],
            str(r["lessons_graded"]),
            f"{r['exercises_passed']} / {r['exercises_total']}",
            f"{r['reflections_ok']} / {r['reflections_total']}",
        )
    console.print(table)
    if args["--json"]:
        grading.write_report(Path(args["--json"]), reports)
        console.print(f"wrote {args['--json']}")
    return 0
