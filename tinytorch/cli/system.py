"""tito system: what this machine has for TinyTorch.

Usage:
  tito system

Checks Python, NumPy, the C compiler, the compiled kernels, OpenMP, the data sets and PyTorch.
The exit status is non-zero when a required check fails.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console
from rich.table import Table


def main(argv: list[str], console: Console) -> int:
    from tinytorch.system import environment_ok, run_checks

    docopt(__doc__, argv=argv)
    checks = run_checks()
    table = Table(title="TinyTorch environment")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for check in checks:
        mark = "[green]ok[/]" if check.ok else ("[red]FAIL[/]" if check.required else "[yellow]--[/]")
        table.add_row(check.name, mark, check.detail)
    console.print(table)
    ok = environment_ok(checks)
    console.print("Ready." if ok else "[red]A required check failed; see its detail above.[/]")
    return 0 if ok else 1
