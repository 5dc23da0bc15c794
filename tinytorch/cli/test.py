"""tito test: the original course's name for `tito module test`.

Usage:
  tito test <lesson> [--workspace=<dir>] [--quiet]

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace).
  --quiet            Print only the summary, not each failing example.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console

from tinytorch.cli import module


def main(argv: list[str], console: Console) -> int:
    docopt(__doc__, argv=argv)
    return module.main(["module", "test", *argv[1:]], console)
