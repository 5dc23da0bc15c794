"""tito: the TinyTorch command line.

Usage:
  tito <command> [<args>...]
  tito (-h | --help)
  tito --version

Commands:
  system     Check the environment: Python, NumPy, compiler, compiled kernels, OpenMP, data, PyTorch.
  lesson     Run lessons' doctests against the framework (or a workspace); 'all' runs every lesson.
  module     A student's workspace: start a lesson, test it, see the progress.
  grade      Run a course: setup, release, collect, sandboxed autograde, review, feedback, export.
  kernels    Show which implementation each kernel runs on now.
  data       Which data sets are on disk and verified; fetch one.
  serve      Serve a model package over HTTP (micro-batching, metrics, A/B).
  loadtest   Open-loop load on a server: achieved rate and latency percentiles.
  benchmark  MLPerf's four inference scenarios on a saved model, with a report.

Run 'tito <command> --help' for a command's own options.

Options:
  -h --help  Show this screen.
  --version  Show the TinyTorch version.
"""

from __future__ import annotations

import importlib

from docopt import docopt
from rich.console import Console

#: each command's module in this package; it defines ``main(argv, console) -> int``, where ``argv``
#: starts with the command's name and the module's docstring is its docopt usage
COMMANDS: dict[str, str] = {
    "system": "system",
    "lesson": "lesson",
    "module": "module",
    "grade": "grade",
    "kernels": "kernels",
    "data": "data",
    "serve": "serve",
    "loadtest": "loadtest",
    "benchmark": "benchmark",
}


def main(argv: list[str] | None = None) -> int:
    from tinytorch import __version__

    args = docopt(__doc__, argv=argv, version=f"tinytorch {__version__}", options_first=True)
    command = args["<command>"]
    if command not in COMMANDS:
        Console().print(f"[red]tito: unknown command {command!r}; expected one of: {', '.join(COMMANDS)}[/]")
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[command]}")
    return module.main([command, *args["<args>"]], Console())
