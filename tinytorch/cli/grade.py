"""tito grade: grade students' workspace folders.

Usage:
  tito grade <workspace>... [--json=<file>]

Options:
  --json=<file>  Also write the grades as JSON to this file.

Each workspace folder holds one student's NN_slug.py files: the exercises passed and the
reflections' lengths are counted.
"""

from __future__ import annotations

from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.table import Table

from tinytorch import grading


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
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
