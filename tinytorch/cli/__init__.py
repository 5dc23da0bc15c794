"""tito: the TinyTorch command line.

Usage:
  tito <command> [<args>...]
  tito (-h | --help)
  tito --version

Commands:
  system     doctor (every check and its fix), info (versions, CPU, kernels' build flags), map (the course map).
  lesson     Run lessons' doctests against the framework (or a workspace); 'all' runs every lesson.
  module     A student's workspace: start, test and complete a lesson; status, reset, list.
  grade      Run a course: setup, release, collect, sandboxed autograde, review, feedback, export.
  kernels    Show which implementation each kernel runs on now.
  data       Which data sets are on disk and verified; fetch one.
  serve      Serve a model package over HTTP (micro-batching, metrics, A/B).
  loadtest   Open-loop load on a server: achieved rate and latency percentiles.
  benchmark  MLPerf's four inference scenarios on a saved model, with a report.
  checkpoint The sixteen capability checkpoints: status, timeline, test, run.
  run        Run a Python program with your workspace's functions inside the framework.
  export     The original course's name for 'module complete'.
  test       The original course's name for 'module test'.
  book       Build the course book (HTML, with Sphinx).

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
    "checkpoint": "checkpoint",
    "run": "run",
    "export": "export",
    "test": "test",
    "book": "book",
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
