"""tito checkpoint: the sixteen capabilities, each answered by a test that really runs.

Usage:
  tito checkpoint status [--detailed] [--workspace=<dir>]
  tito checkpoint timeline [--horizontal] [--workspace=<dir>]
  tito checkpoint test <checkpoint> [--workspace=<dir> | --framework]
  tito checkpoint run <checkpoint> [--workspace=<dir> | --framework]

Commands:
  status    Each checkpoint's recorded result: passed, failed, stale, not run, or lesson not available.
  timeline  The same as a path from 00 to 15.
  test      Run a checkpoint on your workspace's functions and record the result.
  run       The same, showing each step and measurement as it happens.

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace). Results are recorded in <dir>/progress.json.
  --framework        Run on the framework's own code instead of a workspace (nothing is recorded).
  --detailed         Every measurement, your functions that ran and how often, and why a result is stale.
  --horizontal       Draw the timeline left to right.
"""

from __future__ import annotations

from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tinytorch.checkpoints import get, runner
from tinytorch.checkpoints.status import NOT_RUN, STALE, Standing, standings
from tinytorch.cli.module import workspace_of
from tinytorch.workspace import progress

STYLE = {
    runner.PASSED: ("✓", "green"),
    runner.FAILED: ("✗", "red"),
    STALE: ("!", "yellow"),
    NOT_RUN: ("○", "white"),
    runner.NO_TEST: ("·", "dim"),
    runner.NO_LESSON: ("·", "dim"),
}


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    if args["test"] or args["run"]:
        return run(args, console, verbose=bool(args["run"]))
    workspace = workspace_of(args)
    try:
        rows = standings(workspace)
    except ValueError as error:  # a corrupt progress record
        console.print(f"[red]{error}[/]")
        return 1
    if args["status"]:
        show_status(rows, workspace, console, args["--detailed"])
    else:
        show_timeline(rows, console, args["--horizontal"])
    console.print(summary(rows))
    return 0


def summary(rows: list[Standing]) -> str:
    available = [r for r in rows if r.available]
    passed = sum(r.state == runner.PASSED for r in rows)
    return (
        f"{passed} of {len(available)} available checkpoints passed "
        f"({len(rows) - len(available)} of {len(rows)} wait for their lesson or test)"
    )


def state_text(row: Standing) -> Text:
    mark, colour = STYLE[row.state]
    return Text(f"{mark} {row.state}", style=colour)


def show_status(rows: list[Standing], workspace: Path, console: Console, detailed: bool) -> None:
    table = Table(title=f"checkpoints in {workspace}")
    for column in ("checkpoint", "after lesson", "status", "measured", "when"):
        table.add_column(column)
    for row in rows:
        when = (row.record or {}).get("date", "")[:16].replace("T", " ")
        table.add_row(row.checkpoint.title, row.lesson.name if row.lesson else "-", state_text(row), escape(row.headline()), when)
    console.print(table)
    if not detailed:
        return
    for row in rows:
        if row.record is None:
            continue
        record = row.record
        console.print(
            f"\n[bold]{row.checkpoint.title}[/]: {row.checkpoint.question}\n"
            f"  {record['status']} on {record['date']} after lesson {record['lesson']}, "
            f"TinyTorch {record['framework_version']}, {record['seconds']:.1f} s"
        )
        for m in record.get("measurements", []):
            mark = "[green]✓[/]" if m["ok"] else "[red]✗[/]"
            value = m["value"]
            value = f"{value:.5g}" if isinstance(value, float) else value
            shown = m["name"] if isinstance(m["value"], bool) else f"{m['name']} = {value}{' ' + m['unit'] if m.get('unit') else ''}"
            console.print(f"  {mark} {escape(shown)}" + (f" ({m['bound']})" if m.get("bound") else ""))
        if record.get("failure"):
            console.print(f"  [red]failed: {escape(record['failure'])}[/]")
        for key, used in sorted(record.get("functions", {}).items()):
            calls = "calls not counted" if used["calls"] is None else f"called {used['calls']} time(s)"
            console.print(f"  yours: {key.rsplit('.', 1)[1]} from {used['file']}, {calls}")
        for reason in row.stale_reasons:
            console.print(f"  [yellow]stale: {reason}; run it again: tito checkpoint test {row.checkpoint.number}[/]")


def show_timeline(rows: list[Standing], console: Console, horizontal: bool) -> None:
    if horizontal:
        path, numbers = Text(), Text()
        for i, row in enumerate(rows):
            mark, colour = STYLE[row.state]
            path.append("●" if row.state == runner.PASSED else mark, style=colour)
            if i < len(rows) - 1:
                path.append("──" if row.state == runner.PASSED else "┄┄", style=colour)
            numbers.append(f"{row.checkpoint.number:<3}", style=colour)
        console.print(path)
        console.print(numbers)
        legend = "  ".join(f"{STYLE[s][0]} {s}" for s in (runner.PASSED, runner.FAILED, STALE, NOT_RUN, runner.NO_LESSON))
        console.print(Text(legend, style="dim"))
        return
    for i, row in enumerate(rows):
        mark, colour = STYLE[row.state]
        line = Text(f" {'●' if row.state == runner.PASSED else mark} ", style=colour)
        line.append(f"{row.checkpoint.title:<20}", style="bold" if row.state == runner.PASSED else colour)
        line.append(f"{row.state:<22}", style=colour)
        line.append(row.headline() if row.record else (f"after lesson {row.lesson.name}" if row.lesson else ""), style="dim")
        console.print(line)
        if i < len(rows) - 1:
            console.print(Text(" │" if row.state == runner.PASSED else " ┆", style=colour))


def run(args: dict, console: Console, verbose: bool) -> int:
    try:
        checkpoint = get(args["<checkpoint>"])
    except LookupError as error:
        console.print(f"[red]{error}[/]")
        return 2
    workspace = None if args["--framework"] else workspace_of(args)
    if workspace is not None and not workspace.is_dir():
        console.print(
            f"[red]no workspace folder at {workspace}: start one with tito module start NN, "
            f"or run the checkpoint on the framework's code with --framework[/]"
        )
        return 1
    against = "the framework's code" if workspace is None else f"your functions in {workspace}"
    console.print(f"checkpoint {checkpoint.title}: {checkpoint.question}\nrunning on {against}")
    result = runner.run(checkpoint.number, workspace, log=(lambda line: console.print(escape(line))) if verbose else None)
    return report(result, workspace, console, verbose)


def report(result: runner.Result, workspace: Path | None, console: Console, verbose: bool = False) -> int:
    """Print a run's outcome, record it in the workspace (when there is one), and return the exit status."""
    title = result.checkpoint.title
    if result.status in (runner.NO_LESSON, runner.NO_TEST):
        console.print(f"[yellow]checkpoint {title}: {result.status}[/]")
        return 1
    if workspace is not None:
        progress.record(workspace, "checkpoints", result.checkpoint.number, result.to_json())
    if not verbose:  # a verbose run showed each measurement as it was taken
        for m in result.measurements:
            console.print(("  [green]✓[/] " if m.ok else "  [red]✗[/] ") + escape(m.text()))
    for key, used in sorted(result.functions.items()):
        calls = "" if used["calls"] is None else f", called {used['calls']} time(s)"
        console.print(f"  yours: {key.rsplit('.', 1)[1]} ({used['file']}){calls}")
    if result.passed:
        console.print(f"[green]✓ checkpoint {title} passed in {result.seconds:.1f} s: {result.checkpoint.question} Yes.[/]")
        return 0
    console.print(f"[red]✗ checkpoint {title} failed: {escape(result.failure or '')}[/]")
    return 1

