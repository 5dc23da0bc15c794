"""``tito data status`` and ``tito data fetch``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def status(args: dict, console: Console) -> int:
    from tinytorch.core.data.datasets import dataset_status

    table = Table(title="data sets")
    for column in ("data set", "file", "status", "path"):
        table.add_column(column)
    colour = {"official": "green", "known copy": "yellow", "hash mismatch": "red", "missing": "dim"}
    for row in dataset_status(args["--root"]):
        table.add_row(row["dataset"], row["file"], f"[{colour.get(row['status'], 'white')}]{row['status']}[/]", row["path"])
    console.print(table)
    return 0


def fetch(args: dict, console: Console) -> int:
    from tinytorch.core.data.datasets import fetch as fetch_dataset

    try:
        files = fetch_dataset(args["<dataset>"], args["--root"], trust_local=args["--trust-local"])
    except (LookupError, OSError, ValueError) as error:
        console.print(f"[red]{error}[/]")
        return 1
    for name, path in files.items():
        console.print(f"{name}: {path}")
    return 0
