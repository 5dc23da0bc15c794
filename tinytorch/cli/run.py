"""tito run: run a Python program with your workspace's functions inside the framework.

Usage:
  tito run [--workspace=<dir>] <script> [<args>...]

Options:
  --workspace=<dir>  A workspace folder of NN_slug.py files (when not given: $TINYTORCH_WORKSPACE,
                     else ./workspace).

Every exercise you have written (not the stubs) runs in place of the framework's function of the
same name while the program runs: `tito run examples/train_cifar10.py --epochs=1` trains the CIFAR-10
CNN on your im2col, your optimizer step and your kernels. Afterwards it says which of your
functions ran and how often. Put the program's own options after its path.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from docopt import docopt
from rich.console import Console
from rich.markup import escape

from tinytorch.cli.module import workspace_of


def main(argv: list[str], console: Console) -> int:
    from tinytorch import use_workspace
    from tinytorch.workspace.files import WorkspaceError

    # Everything after the program's path is the program's own: split there before docopt reads ours.
    at = next((i for i, arg in enumerate(argv[1:], 1) if not arg.startswith("-")), len(argv))
    args = docopt(__doc__, argv=argv[: at + 1])
    program_args = argv[at + 1 :]
    script = Path(args["<script>"])
    if not script.is_file():
        console.print(f"[red]tito run: no program at {script}[/]")
        return 2
    folder = workspace_of(args)
    try:
        workspace = use_workspace(folder)
    except (NotADirectoryError, WorkspaceError) as error:
        console.print(f"[red]tito run: {escape(str(error))}[/]")
        return 2
    yours = workspace.functions()
    console.print(f"running {script} with {len(yours)} function(s) of yours from {folder}: "
                  + escape(", ".join(k.rsplit(".", 1)[1] for k in sorted(yours)) or "none written yet"))
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *program_args]
    sys.path.insert(0, str(script.resolve().parent))  # as `python script.py` does: the program's folder first
    status = 0
    try:
        with workspace:
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            finally:
                ran = workspace.calls()
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    for key in sorted(yours):
        console.print(f"  yours: {key.rsplit('.', 1)[1]} ({yours[key]})" + (f": called {ran[key]} time(s)" if key in ran else ""))
    return status
