"""tito data: the data sets on disk.

Usage:
  tito data status [--root=<dir>]
  tito data fetch <dataset> [--root=<dir>] [--trust-local]

Commands:
  status  Which data sets are on disk and verified.
  fetch   Download (or verify a local copy of) a data set.

Options:
  --root=<dir>   The data folder (when not given: $TINYTORCH_DATA, else pooch's cache folder).
  --trust-local  Accept a local file whose checksum is not the official one.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console
from rich.table import Table


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    return status(args, console) if args["status"] else fetch(args, console)


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
