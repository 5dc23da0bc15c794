"""tito lesson: run lessons' doctests against the framework, or against a workspace.

Usage:
  tito lesson (<lesson>... | --list) [--workspace=<path>] [--quiet]

Options:
  --list              List the lessons instead of running them.
  --workspace=<path>  A workspace folder of NN_slug.py files, or a single file.
  --quiet             Print only the summary, not each failing example.

'tito lesson all' runs every lesson.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console

from tinytorch import lesson as runner


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    forwarded = ["--list"] if args["--list"] else list(args["<lesson>"])
    if args["--workspace"]:
        forwarded += ["--workspace", args["--workspace"]]
    if args["--quiet"]:
        forwarded.append("--quiet")
    return runner.main(forwarded)
