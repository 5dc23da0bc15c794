"""tito grade: run a course: setup, release, collect, sandboxed autograde, review, feedback, export.

Usage:
  tito grade setup <course> [--lessons=<list>] [--due=<spec>...] [--late-penalty=<rule>] [--exercise-points=<n>] [--reflection-points=<n>] [--all-or-nothing] [--cpu=<seconds>] [--timeout=<seconds>] [--memory=<mb>]
  tito grade release <lessons>... [--course=<dir>] [--out=<dir>]
  tito grade collect <source> [--course=<dir>] [--at=<time>]
  tito grade autograde [--course=<dir>] [--lesson=<n>] [--student=<id>] [--jobs=<n>] [--scheduler=<address>] [--force]
  tito grade review [--course=<dir>] [--lesson=<n>] [--student=<id>] [--all]
  tito grade review set <student> <lesson> <item> [<points>] [--comment=<text>] [--course=<dir>]
  tito grade review import <csv> [--course=<dir>]
  tito grade feedback [--course=<dir>] [--out=<dir>] [--format=<fmt>] [--student=<id>]
  tito grade export --csv=<file> [--course=<dir>]
  tito grade report [--course=<dir>] [--lesson=<n>]
  tito grade check <workspace>... [--jobs=<n>] [--json=<file>]

Commands:
  setup      Create a course folder (or refresh its checks): gradebook, rules, public and hidden checks.
  release    Write the stub workspaces students start from (default: COURSE/release).
  collect    Import submissions from a folder of per-student folders or .zip files.
  autograde  Grade every new or changed submission in the sandbox (again with --force).
  review     List reflections and flagged exercises; 'set' gives points and comments; 'import' reads a CSV.
  feedback   Write one report per student (default: COURSE/feedback, HTML).
  export     Write the grades as CSV: student, lesson, raw score, late penalty, score, max.
  report     Per-exercise pass rates, the score distribution and the flagged submissions.
  check      Grade workspace folders in the sandbox without a course (public and generated checks).

Options:
  --course=<dir>           The course folder [default: .].
  --lessons=<list>         Comma-separated lessons (numbers or names); default: every lesson with exercises.
  --due=<spec>             A due date, LESSON=DATE (2026-12-01, or 2026-12-01T23:59; local time); repeatable.
  --late-penalty=<rule>    none, zero, P% (once late) or P%/day (per day or part of one).
  --exercise-points=<n>    Points per exercise (default 1).
  --reflection-points=<n>  Points per reflection answer, given in review (default 1).
  --all-or-nothing         An exercise scores only when all its checks pass (default: the fraction passed).
  --cpu=<seconds>          CPU seconds per exercise (default 20).
  --timeout=<seconds>      Wall-clock seconds per exercise (default 30).
  --memory=<mb>            Memory (address space) per submission in MiB (default 2048).
  --out=<dir>              Where to write.
  --at=<time>              The submission time to record (ISO; default: now, the collector's clock).
  --lesson=<n>             Only this lesson.
  --student=<id>           Only this student.
  --jobs=<n>               Submissions graded at once on this machine (default: the cores).
  --scheduler=<address>    A Dask scheduler to grade on (tcp://host:8786); needs tinytorch[cluster].
  --force                  Grade again even what is already graded.
  --all                    Review every exercise, not only the flagged ones.
  --comment=<text>         A comment for the student.
  --format=<fmt>           html or md [default: html].
  --csv=<file>             The CSV file to write.
  --json=<file>            Also write the results as JSON.

A submission's code runs only in a sandboxed child process; the grader compares its results with
the framework's own. Items for 'review set' are reflection-N, an exercise's name, or general.
"""

from __future__ import annotations

import json
from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

COMMANDS = ("setup", "release", "collect", "autograde", "review", "feedback", "export", "report", "check")


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    command = next(c for c in COMMANDS if args[c])
    try:
        return globals()[f"_{command}"](args, console)
    except (LookupError, ValueError, NotADirectoryError, FileNotFoundError, ImportError, RuntimeError) as error:
        # RuntimeError: no gradebook, a gradebook from a newer TinyTorch, checks changed since setup
        console.print(f"[red]tito grade {command}: {error}[/]")
        return 2


def _open(args: dict):
    from tinytorch.grading.course import open_course

    return open_course(Path(args["--course"]))


def _number(text: str | None, what: str, kind=float):
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    return value


def _setup(args: dict, console: Console) -> int:
    from tinytorch.grading.course import setup
    from tinytorch.grading.sandbox import Limits

    due = {}
    for spec in args["--due"]:
        key, sep, date = spec.partition("=")
        if not sep:
            raise ValueError(f"--due {spec!r}: expected LESSON=DATE, e.g. 06=2026-12-01")
        due[key] = date
    limits = None
    if args["--cpu"] or args["--timeout"] or args["--memory"]:
        default = Limits()
        limits = Limits(
            cpu_seconds=_number(args["--cpu"], "--cpu", int) or default.cpu_seconds,
            wall_seconds=_number(args["--timeout"], "--timeout") or default.wall_seconds,
            memory_mb=_number(args["--memory"], "--memory", int) or default.memory_mb,
        )
    lessons = [k.strip() for k in args["--lessons"].split(",") if k.strip()] if args["--lessons"] else None
    course = setup(
        Path(args["<course>"]),
        lessons=lessons,
        due=due,
        late_penalty=args["--late-penalty"],
        exercise_points=_number(args["--exercise-points"], "--exercise-points"),
        reflection_points=_number(args["--reflection-points"], "--reflection-points"),
        partial_credit=False if args["--all-or-nothing"] else None,
        limits=limits,
        progress=lambda text: console.print(text),
    )
    table = Table(title=f"course {course.root}")
    for column in ("lesson", "due", "exercises", "public checks", "hidden checks"):
        table.add_column(column)
    for row in course.gradebook.lessons():
        exercises = course.gradebook.exercises(row["lesson"])
        table.add_row(row["lesson"], row["due"] or "-", str(len(exercises)), str(sum(e["public_checks"] for e in exercises)), str(sum(e["hidden_checks"] for e in exercises)))
    console.print(table)
    for lesson in course.lessons():
        for note in course.checks(lesson).notes:
            console.print(f"[yellow]{lesson.name}: {note}[/]")
    return 0


def _release(args: dict, console: Console) -> int:
    from tinytorch.grading.course import release

    out = Path(args["--out"]) if args["--out"] else Path(args["--course"]) / "release"
    written, skipped = release(args["<lessons>"], out)
    for path in written:
        console.print(f"wrote {path}")
    for reason in skipped:
        console.print(f"[yellow]skipped: {reason}[/]")
    return 0 if written or not skipped else 1


def _collect(args: dict, console: Console) -> int:
    from tinytorch.grading.collect import collect
    from tinytorch.grading.gradebook import now
    from tinytorch.grading.scores import late_seconds, parse_due

    if args["--at"] and "T" not in args["--at"]:
        raise ValueError("--at needs a time as well as a date, e.g. 2026-12-01T17:30")
    course = _open(args)
    when = parse_due(args["--at"]).isoformat(timespec="seconds") if args["--at"] else now()
    report = collect(course.gradebook, Path(args["<source>"]), course.lessons(), when)
    due = {row["lesson"]: row["due"] for row in course.gradebook.lessons()}
    late = [f"{student} ({lesson})" for student, lesson in report.new if late_seconds(when, due[lesson]) > 0]
    console.print(f"collected {len(report.new)} new or changed submission(s) at {when}; {len(report.unchanged)} unchanged")
    if late:
        console.print(f"[yellow]late: {', '.join(late)}[/]")
    for source, problem in report.problems:
        console.print(f"[yellow]{source}: {problem}[/]")
    return 0


def _autograde(args: dict, console: Console) -> int:
    from tinytorch.grading.autograde import autograde

    course = _open(args)
    workers = _number(args["--jobs"], "--jobs", int)
    columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("grading", total=0)
        summary = autograde(
            course,
            lesson=args["--lesson"],
            student=args["--student"],
            workers=workers or None,
            scheduler=args["--scheduler"],
            force=args["--force"],
            on_start=lambda total: progress.update(task, total=total),
            on_result=lambda submission, status: progress.advance(task),
        )
    console.print(f"graded {len(summary.graded)} submission(s)")
    sandbox = summary.sandbox
    if sandbox:
        weak = [name for name, ok in (("Landlock", sandbox.get("landlock")), ("signal scoping", sandbox.get("signals_scoped")), ("namespaces", sandbox.get("namespaces"))) if not ok]
        if weak:
            console.print(f"[yellow]this machine's sandbox lacks: {', '.join(weak)}; grade as a dedicated user (see the README)[/]")
    for student, lesson, why in summary.failed:
        console.print(f"[red]not graded (will be retried): {student} {lesson}: {why}[/]")
    return 1 if summary.failed else 0


def _review(args: dict, console: Console) -> int:
    from tinytorch.grading import review

    course = _open(args)
    if args["set"]:
        points = _number(args["<points>"], "points")
        review.set_review(course, args["<student>"], args["<lesson>"], args["<item>"], points, args["--comment"])
        console.print(f"set {args['<item>']} of {args['<student>']} in {args['<lesson>']}")
        return 0
    if args["import"]:
        count = review.import_reviews(course, Path(args["<csv>"]))
        console.print(f"applied {count} review(s) from {args['<csv>']}")
        return 0
    found = review.items(course, args["--lesson"], args["--student"], everything=args["--all"])
    if args["--student"]:  # one student: everything there is to read
        for item in found:
            points = "not scored" if item.points is None else f"{item.points:g} / {item.maximum:g} points"
            console.rule(f"{item.lesson} {item.item}: {points}" + (f" [yellow]({item.flagged})[/]" if item.flagged else ""))
            console.print(item.what, markup=False)
            console.print(item.detail or "(no answer)", markup=False, style="dim" if not item.detail else None)
            if item.comment:
                console.print(f"comment: {item.comment}", markup=False)
        return 0
    table = Table(title="to review (tito grade review --student S shows the answers)")
    for column in ("student", "lesson", "item", "flag", "points", "comment"):
        table.add_column(column, overflow="fold")
    for item in found:
        points = "-" if item.points is None else f"{item.points:g}"
        table.add_row(item.student, item.lesson, item.item, item.flagged, f"{points} / {item.maximum:g}", item.comment)
    console.print(table)
    return 0


def _feedback(args: dict, console: Console) -> int:
    from tinytorch.grading.feedback import write_feedback

    course = _open(args)
    out = Path(args["--out"]) if args["--out"] else course.root / "feedback"
    written = write_feedback(course, out, args["--format"], args["--student"])
    console.print(f"wrote {len(written)} feedback file(s) to {out}")
    return 0


def _export(args: dict, console: Console) -> int:
    from tinytorch.grading.export import export_csv

    count = export_csv(_open(args), Path(args["--csv"]))
    console.print(f"wrote {count} row(s) to {args['--csv']}")
    return 0


def _report(args: dict, console: Console) -> int:
    from tinytorch.grading.export import BINS, class_report

    report = class_report(_open(args), args["--lesson"])
    rates = Table(title="exercises passed (latest graded submissions)")
    for column in ("lesson", "exercise", "passed", "rate"):
        rates.add_column(column)
    for lesson, exercise, passed, graded in report.pass_rates:
        rates.add_row(lesson, exercise, f"{passed} / {graded}", f"{100 * passed / graded:.0f} %" if graded else "-")
    console.print(rates)
    spread = Table(title="score distribution (% of the maximum)")
    spread.add_column("lesson")
    for low, high in zip(BINS, BINS[1:]):
        spread.add_column(f"{low}-{high}")
    for column in ("late", "missing", "not graded"):
        spread.add_column(column)
    for lesson, counts in report.distribution.items():
        spread.add_row(lesson, *map(str, counts), str(report.late[lesson]), str(report.missing[lesson]), str(report.ungraded[lesson]))
    console.print(spread)
    flagged = Table(title="flagged")
    for column in ("student", "lesson", "exercise", "why"):
        flagged.add_column(column, overflow="fold")
    for row in report.flagged:
        flagged.add_row(*row)
    console.print(flagged if report.flagged else "no flagged submissions")
    return 0


def _check(args: dict, console: Console) -> int:
    from tinytorch.grading.quickcheck import check_workspaces

    results = check_workspaces([Path(w) for w in args["<workspace>"]], _number(args["--jobs"], "--jobs", int) or None)
    table = Table(title="sandboxed check (public and generated checks)")
    for column in ("workspace", "lesson", "exercises passed", "checks passed", "reflections 150-300 words", "problem"):
        table.add_column(column, overflow="fold")
    for r in results:
        for lesson in r["lessons"]:
            exercises = lesson["exercises"].values()
            table.add_row(
                r["workspace"], lesson["lesson"],
                f"{sum(e['status'] == 'passed' for e in exercises)} / {len(lesson['exercises'])}",
                f"{sum(e['passed'] for e in exercises)} / {sum(e['total'] for e in exercises)}",
                f"{sum(x['ok'] for x in lesson['reflections'])} / {len(lesson['reflections'])}",
                lesson["problem"] or "",
            )
    console.print(table)
    if args["--json"]:
        path = Path(args["--json"])
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2), encoding="utf-8")
        tmp.replace(path)
        console.print(f"wrote {path}")
    return 0
