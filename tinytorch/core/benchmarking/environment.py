"""What a measurement ran on: machine, library versions, thread settings, time (recorded with every report)."""

from __future__ import annotations

import datetime
import os
import platform

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path) as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith(prefix)), None)
    except OSError:
        return None


def describe_environment() -> dict[str, str]:
    """CPU, cores, memory, Python, NumPy and its BLAS, TinyTorch's kernels and threads, the date (UTC)."""
    import numpy as np

    from tinytorch import __version__
    from tinytorch.core import kernels

    memory = _first_line("/proc/meminfo", "MemTotal")
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "logical_cores": str(os.cpu_count()),
        "memory": f"{int(memory.split()[0]) / 2**20:.1f} GiB" if memory else "unknown",
        "python": f"{platform.python_version()} on {platform.system()} {platform.release()}",
        "numpy": f"{np.__version__} (BLAS: {blas.get('name', '?')} {blas.get('version', '')})".replace(" )", ")"),
        "tinytorch": __version__,
        "kernels": f"{kernels.backend()}, OpenMP {'on' if kernels.openmp_enabled() else 'off'}, {kernels.get_num_threads()} threads",
        "thread_variables": ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in THREAD_VARIABLES),
    }
