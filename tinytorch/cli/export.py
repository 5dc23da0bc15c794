"""tito export: the original course's name for `tito module complete`.

Usage:
  tito export <lesson> [--workspace=<dir>] [--quiet]

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace).
  --quiet            Print only the summary, not each failing example.

Tests the lesson against your workspace; when every exercise passes, marks it complete, puts your
functions inside the framework and runs the checkpoint the lesson leads to.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console

from tinytorch.cli import module


def main(argv: list[str], console: Console) -> int:
    docopt(__doc__, argv=argv)
    return module.main(["module", "complete", *argv[1:]], console)
