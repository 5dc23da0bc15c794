"""tito system: this machine and this course, checked.

Usage:
  tito system [doctor] [--data=<dir>]
  tito system info
  tito system map

Commands:
  doctor  Every check with ✓ or ✗, and for each ✗ the command that fixes it (the default). The exit
          status is non-zero when something the course requires is missing.
  info    Versions, CPU, threads, the compiled kernels and their build flags, OpenMP, data sets, extras.
  map     The course map: which lesson's code imports which, read from the framework's own source,
          and the checkpoint each lesson unlocks.

Options:
  --data=<dir>  The data folder to check (when not given: $TINYTORCH_DATA, else pooch's cache folder).
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    if args["info"]:
        return info(console)
    if args["map"]:
        return course_map(console)
    return doctor(console, args["--data"])


def doctor(console: Console, data_root: str | None = None) -> int:
    from tinytorch.doctor import healthy, run_doctor

    findings = run_doctor(data_root)
    table = Table(title="TinyTorch doctor")
    for column in ("", "check", "found", "fix"):
        table.add_column(column)
    for f in findings:
        mark = "[green]✓[/]" if f.ok else ("[red]✗[/]" if f.required else "[yellow]✗[/]")
        table.add_row(mark, escape(f.name) + ("" if f.required else " (optional)"), escape(f.detail), escape(f.fix))
    console.print(table)
    if healthy(findings):
        console.print("[green]Ready: everything the course requires is here.[/]")
        return 0
    missing = [f.name for f in findings if f.required and not f.ok]
    console.print(f"[red]Not ready: {', '.join(missing)} missing or broken; run the command in each row's fix column.[/]")
    return 1


def info(console: Console) -> int:
    from tinytorch.doctor import info as gather

    for section, rows in gather().items():
        table = Table(title=section, show_header=False)
        table.add_column("what")
        table.add_column("value")
        for name, value in rows.items():
            table.add_row(escape(name), escape(value))
        console.print(table)
    return 0


def course_map(console: Console) -> int:
    from tinytorch.checkpoints import get
    from tinytorch.coursemap import BOTTOM, BOTTOM_LAYER, CourseMap

    course = CourseMap.measure()
    tree = Tree("[bold]the course, measured from the framework's imports[/]")
    taught = {number: [m for m, n in course.lesson_modules.items() if n == number] for number in course.titles}
    bottom = [m for m in course.modules_of(BOTTOM) if any(m == p for p in BOTTOM_LAYER)]
    tree.add("[dim]bottom layer (importable by every lesson): " + escape(", ".join(short(m) for m in bottom)) + "[/]")
    uses = course.lesson_imports()
    for number, title in sorted(course.titles.items()):
        checkpoint = course.checkpoints[number]
        unlocks = f" → checkpoint {get(checkpoint).title}" if checkpoint.isdigit() else ""
        branch = tree.add(f"[bold]{number}[/] {escape(title)}[green]{unlocks}[/]")
        modules = [short(m) for m in course.modules_of(number)]
        modules += [f"{short(m)} ({'bottom layer' if course.place(m) == BOTTOM else 'course tools'})" for m in taught[number]
                    if course.place(m) != number]
        branch.add("code: " + escape(", ".join(modules) or "-"))
        if uses.get(number):
            branch.add("builds on lessons " + ", ".join(sorted(uses[number])))
    console.print(tree)
    problems = course.violations()
    for problem in problems:
        console.print(f"[red]against the course order: {problem}[/]")
    console.print(f"{len(course.imports)} modules, {sum(map(len, course.imports.values()))} imports; "
                  + ("[green]every import follows the course order[/]" if not problems else f"[red]{len(problems)} do not[/]"))
    return 0 if not problems else 1


def short(module: str) -> str:
    return module.removeprefix("tinytorch.")
