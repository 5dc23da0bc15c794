"""tito: the TinyTorch command line.

Usage:
  tito system
  tito lesson (<lesson>... | --list) [--workspace=<path>] [--quiet]
  tito module start <lesson> [--workspace=<dir>]
  tito module test <lesson> [--workspace=<dir>] [--quiet]
  tito module status [--workspace=<dir>]
  tito grade <workspace>... [--json=<file>]
  tito kernels
  tito data status [--root=<dir>]
  tito data fetch <dataset> [--root=<dir>] [--trust-local]
  tito (-h | --help)
  tito --version

Commands:
  system         Check the environment: Python, NumPy, compiler, compiled kernels, OpenMP, data, PyTorch.
  lesson         Run lessons' doctests against the framework (or a workspace); 'all' runs every lesson.
  module start   Write a workspace file for a lesson: a stub per exercise and the reflection questions.
  module test    Run a lesson against your workspace file.
  module status  For each lesson: workspace written? exercises passing? (measured by running them)
  grade          Grade students' workspace folders: exercises passed, reflection lengths.
  kernels        Show which implementation each kernel runs on now.
  data status    Which data sets are on disk and verified.
  data fetch     Download (or verify a local copy of) a data set.

Options:
  -h --help           Show this screen.
  --version           Show the TinyTorch version.
  --workspace=<path>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE, else
                      ./workspace); for 'lesson', a single file works too.
  --list              List the lessons instead of running them.
  --quiet             Print only the summary, not each failing example.
  --json=<file>       Also write the grades as JSON to this file.
  --root=<dir>        The data folder (when not given: $TINYTORCH_DATA, else pooch's cache folder).
  --trust-local       Accept a local file whose checksum is not the official one.
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console


def main(argv: list[str] | None = None) -> int:
    from tinytorch import __version__

    args = docopt(__doc__, argv=argv, version=f"tinytorch {__version__}")
    console = Console()
    if args["system"] or args["kernels"]:
        from . import environment

        return environment.system(console) if args["system"] else environment.kernels(console)
    if args["data"]:
        from . import data

        return data.status(args, console) if args["status"] else data.fetch(args, console)
    from . import course

    if args["lesson"]:
        return course.lesson(args)
    if args["module"]:
        return {"start": course.module_start, "test": course.module_test, "status": course.module_status}[
            next(k for k in ("start", "test", "status") if args[k])
        ](args, console)
    if args["grade"]:
        return course.grade(args, console)
    return 0
