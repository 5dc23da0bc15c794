"""tito kernels: which implementation each kernel runs on now.

Usage:
  tito kernels
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console
from rich.table import Table


def main(argv: list[str], console: Console) -> int:
    from tinytorch.core import kernels as registry

    docopt(__doc__, argv=argv)
    table = Table(title=f"kernels (backend: {registry.backend()})")
    table.add_column("kernel")
    table.add_column("runs on")
    for name, where in registry.describe().items():
        table.add_row(name, where)
    console.print(table)
    return 0
