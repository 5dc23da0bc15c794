"""``tito system`` and ``tito kernels``: what this machine has, and which kernels run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def system(console: Console) -> int:
    from tinytorch.system import environment_ok, run_checks

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


def kernels(console: Console) -> int:
    from tinytorch.core import kernels as registry

    table = Table(title=f"kernels (backend: {registry.backend()})")
    table.add_column("kernel")
    table.add_column("runs on")
    for name, where in registry.describe().items():
        table.add_row(name, where)
    console.print(table)
    return 0
