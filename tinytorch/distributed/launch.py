"""Starting a job: where ``mpiexec`` is, the command line for p ranks, and running it with a deadline.

The ``mpich`` wheel (``pip install "tinytorch[distributed]"``) puts ``mpiexec`` beside the Python
interpreter of the environment it was installed into, so that one is preferred to whatever ``PATH``
finds first (a system MPI that mpi4py was not built against would start p unrelated worlds of one).

On one machine ``mpiexec -n 2 python train.py`` starts two ranks. Across machines, list them in a
host file, one ``host:slots`` per line, and start the job from any of them (each machine needs the
same environment and files at the same paths, and passwordless ssh between them)::

    # hosts
    node1:2
    node2:2

    mpiexec -f hosts -n 4 python train.py      # MPICH's Hydra; Open MPI spells it --hostfile
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .comm import INSTALL

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def mpiexec_path() -> Path:
    """The ``mpiexec`` of this Python environment (beside the interpreter), else the first on ``PATH``."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError(f"mpiexec: no MPI launcher beside {sys.executable} or on PATH; {INSTALL}")
    return Path(found)


def mpiexec_command(ranks: int, argv: Sequence[str], hostfile: str | os.PathLike | None = None) -> list[str]:
    """``mpiexec -n RANKS [-f HOSTFILE] python ARGV...``: this interpreter, ``ranks`` times."""
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"mpiexec_command: ranks must be a positive integer, got {ranks!r}")
    hosts = ["-f", str(hostfile)] if hostfile is not None else []
    return [str(mpiexec_path()), "-n", str(ranks), *hosts, sys.executable, *argv]


def thread_environment(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every BLAS/OpenMP pool limited to ``threads``."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def run(
    ranks: int,
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python ARGV`` as ``ranks`` ranks under ``mpiexec`` and wait at most ``timeout`` seconds.

    Output is captured as text. The launcher gets a session of its own: on timeout the whole
    session (the launcher and every rank it started) is killed and :class:`subprocess.TimeoutExpired`
    raised, so nothing is left running.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("MPIEXEC_TIMEOUT", str(int(timeout) + 1))  # Hydra's own deadline, a second behind ours
    process = subprocess.Popen(
        mpiexec_command(ranks, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise subprocess.TimeoutExpired(process.args, timeout, out, err) from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
