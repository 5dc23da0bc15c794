"""Is this machine ready for the whole course? ``tito system info`` and ``tito system doctor``.

The doctor runs the machine checks of lesson 01 (:func:`tinytorch.system.run_checks`) and adds
what the rest of the course needs: the data folder and each data set the lessons, checkpoints and
examples read; the lessons themselves; and the optional extras. Every finding says what was
found and, when it fails, the exact command that fixes it. The info view lists versions, the CPU,
threads, the compiled kernels with the flags they were built with (read from the binaries), the
data sets and the extras.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from tinytorch import system
from tinytorch.core import kernels
from tinytorch.core.blas_wait import blas_wait_policy

#: the data sets the course reads: name -> what needs it. All are required for the whole course.
COURSE_DATA = {
    "mnist": "checkpoints 05 and 10, examples/train_mnist.py",
    "fashion-mnist": "checkpoint 07, examples/train_fashion_mnist.py",
    "cifar10": "examples/train_cifar10.py and the examples that use its model",
    "tinyshakespeare": "the TinyGPT lesson and example",
}
GET_DATA = "export TINYTORCH_DATA=../shared/data   (the course machines' copy; elsewhere: tito data fetch {name})"
#: what fixes a failing check of lesson 01's list
MACHINE_FIXES = {
    "Python": "install Python 3.11 or newer (https://www.python.org/downloads/), then: pip install -e \".[dev]\"",
    "NumPy": 'pip install -U "numpy>=1.26"',
    "C compiler": "apt install build-essential   (macOS: xcode-select --install)",
    "compiled kernels": kernels.BUILD_COMMAND,
    "OpenMP": "apt install libgomp1 (macOS: brew install libomp), then rebuild: " + kernels.BUILD_COMMAND,
    "torch": "pip install torch==2.13.0   (only the tests use it, as an oracle)",
}
_FLAG = re.compile(r"^-(O\d|march=\S+|mtune=\S+|fopenmp|fno-math-errno|fno-trapping-math|ffast-math)$")


@dataclass(frozen=True)
class Finding:
    """One doctor check: what was found, whether the course needs it, and how to fix it."""

    name: str
    ok: bool
    detail: str
    required: bool = True
    fix: str = ""


def machine_findings() -> list[Finding]:
    """Lesson 01's checks, each with its fix."""
    return [Finding(c.name, c.ok, c.detail, c.required, "" if c.ok else MACHINE_FIXES.get(c.name, "")) for c in system.run_checks()]


def data_findings(root: str | os.PathLike | None = None) -> list[Finding]:
    """The data folder, and each data set of :data:`COURSE_DATA` verified file by file."""
    from tinytorch.core.data.datasets import dataset_status
    from tinytorch.core.data.files import DATA_ENV, data_root

    folder = data_root(root)
    source = f"{DATA_ENV}={os.environ[DATA_ENV]}" if root is None and os.environ.get(DATA_ENV) else ("given" if root else "the default cache")
    findings = [Finding("data folder", folder.is_dir(), f"{folder} ({source})" + ("" if folder.is_dir() else ": no such folder"),
                        required=True, fix="" if folder.is_dir() else GET_DATA.format(name="mnist"))]
    rows: dict[str, list[dict]] = {}
    for row in dataset_status(root):
        rows.setdefault(row["dataset"], []).append(row)
    for name, purpose in COURSE_DATA.items():
        files = rows.get(name, [])
        usable = [r for r in files if r["status"] in ("official", "known copy")]
        # A data set is there when one usable copy of each of its files is (CIFAR-10 has two names for one archive).
        needed = {r["file"].replace(".tar.xz", ".tar.gz") for r in files}
        have = {r["file"].replace(".tar.xz", ".tar.gz") for r in usable}
        ok = bool(files) and needed <= have
        detail = f"{len(have)} of {len(needed)} file(s) verified ({', '.join(sorted({r['status'] for r in usable})) or 'none'}); needed by {purpose}"
        if not ok:
            bad = [f"{r['file']}: {r['status']}" for r in files if r["status"] not in ("official", "known copy")]
            detail = f"{'; '.join(bad[:2])}; needed by {purpose}"
        findings.append(Finding(f"data set {name}", ok, detail, required=True, fix="" if ok else GET_DATA.format(name=name)))
    return findings


def course_findings() -> list[Finding]:
    """The lessons: found, and every head readable."""
    from tinytorch.lesson import find_lessons, lessons_dir

    folder = lessons_dir()
    try:
        lessons = find_lessons()
    except ValueError as error:
        return [Finding("lessons", False, str(error), fix=f"repair the head of the lesson named above, in {folder}")]
    if not lessons:
        return [Finding("lessons", False, f"no NN_slug.rst files in {folder}",
                        fix="run from a clone of the repository, or set TINYTORCH_LESSONS to its lessons/ folder")]
    return [Finding("lessons", True, f"{len(lessons)} lessons in {folder}")]


def extras() -> dict[str, list[str]]:
    """Each optional extra of the package -> the distributions it installs (from the package's metadata)."""
    try:
        requirements = importlib.metadata.requires("tinytorch") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    found: dict[str, list[str]] = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?[^;]*;\s*extra\s*==\s*['\"]([\w\-]+)['\"]", requirement)
        if match and match.group(1) != "tinytorch" and match.group(2) != "dev":
            found.setdefault(match.group(2), []).append(match.group(1))
    return found


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def extra_findings() -> list[Finding]:
    findings = []
    for extra, distributions in sorted(extras().items()):
        versions = {d: _installed(d) for d in distributions}
        missing = [d for d, v in versions.items() if v is None]
        detail = ", ".join(f"{d} {v}" if v else f"{d} missing" for d, v in versions.items())
        findings.append(Finding(f"extra [{extra}]", not missing, detail, required=False,
                                fix="" if not missing else f'pip install "tinytorch[{extra}]"'))
    return findings


def run_doctor(data_root: str | os.PathLike | None = None) -> list[Finding]:
    """Every finding, the machine's first."""
    return [*machine_findings(), *course_findings(), *data_findings(data_root), *extra_findings()]


def healthy(findings: list[Finding]) -> bool:
    return all(f.ok for f in findings if f.required)


def build_flags(path: Path) -> list[str]:
    """The optimisation flags a compiled kernel module was built with, read from the compiler's
    record in the binary (GCC and Clang keep the command line in the debug information); empty
    when the binary does not record them."""
    raw = path.read_bytes()
    match = re.search(rb"GNU C[\w+]* [\d.]+ ([^\x00]+)", raw) or re.search(rb"clang version [^\x00]*?\x00([^\x00]*-O[^\x00]*)", raw)
    if not match:
        return []
    seen: list[str] = []
    for flag in match.group(1).decode("ascii", "replace").split():
        if _FLAG.match(flag) and flag not in seen:
            seen.append(flag)
    return seen


def compiled_modules() -> dict[str, str]:
    """Each compiled kernel module -> its build flags (or why there are none)."""
    folder = Path(kernels.__file__).resolve().parent.parent / "_kernels"
    found = {}
    for name in kernels.COMPILED_MODULES:
        binaries = sorted(folder.glob(f"{name}.*.so")) + sorted(folder.glob(f"{name}.*.pyd"))
        if not binaries:
            found[name] = "not built"
        else:
            flags = build_flags(binaries[0])
            found[name] = " ".join(flags) if flags else "built (flags not recorded in the binary)"
    return found


def cpu_model() -> str:
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def info() -> dict[str, dict[str, str]]:
    """What ``tito system info`` shows, section by section."""
    import numpy as np

    from tinytorch import __version__

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ)
    return {
        "versions": {
            "TinyTorch": __version__,
            "Python": f"{platform.python_version()} ({platform.python_implementation()})",
            "NumPy": np.__version__,
            **{d: _installed(d) or "missing" for d in ("rich", "docopt-ng", "pooch")},
            "PyTorch (tests only)": _installed("torch") or "not installed",
        },
        "machine": {
            "system": f"{platform.system()} {platform.release()} ({platform.machine()})",
            "CPU": cpu_model(),
            "cores": f"{os.cpu_count()} ({usable} usable by this process)",
            "kernel threads": f"{kernels.get_num_threads()} (OpenMP {'on' if kernels.openmp_enabled() else 'off'})",
            "thread settings": blas or "none set in the environment",
            "BLAS threads between products": blas_wait_policy(),
            "matrix products": kernels.products(),
            "kernel threads between loops": kernels.wait_policy(),
        },
        "kernels": {"backend": kernels.backend(), **{f"_kernels.{k}": v for k, v in compiled_modules().items()}},
        "data": {f.name: ("✓ " if f.ok else "✗ ") + f.detail for f in data_findings()},
        "extras": {f.name: ("✓ " if f.ok else "✗ ") + f.detail for f in extra_findings()},
    }
