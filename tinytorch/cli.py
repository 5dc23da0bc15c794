"""tito: the TinyTorch command line.

Usage:
  tito lesson [<lesson>...] [--workspace=<path>] [--list]
  tito kernels
  tito (-h | --help)
  tito --version

Commands:
  lesson     Run lessons' doctests (all of them when no lesson is named), as python -m tinytorch.lesson.
  kernels    Show which implementation each kernel runs on now.

Options:
  -h --help           Show this screen.
  --version           Show the TinyTorch version.
  --workspace=<path>  Run the exercises against a student's workspace file.
  --list              List the lessons instead of running them.
"""

from __future__ import annotations

import sys

from docopt import docopt


def main(argv: list[str] | None = None) -> int:
    from tinytorch import __version__

    args = docopt(__doc__, argv=argv, version=f"tinytorch {__version__}")
    if args["lesson"]:
        from tinytorch import lesson

        forwarded = [*args["<lesson>"]] or ["all"]
        if args["--workspace"]:
            forwarded += ["--workspace", args["--workspace"]]
        if args["--list"]:
            forwarded = ["--list"]
        return lesson.main(forwarded)
    if args["kernels"]:
        from rich.console import Console
        from rich.table import Table

        from tinytorch.core import kernels

        table = Table(title=f"kernels (backend: {kernels.backend()})")
        table.add_column("kernel")
        table.add_column("runs on")
        for name, where in kernels.describe().items():
            table.add_row(name, where)
        Console().print(table)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
