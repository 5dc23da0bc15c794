"""Is this machine ready for TinyTorch? The environment checks of lesson 01 and ``tito system``.

Each check looks at one thing and returns a :class:`Check`: its name, whether it passed, a one-line
detail saying what was found (and, when it failed, what to do about it), and whether TinyTorch
needs it. :func:`run_checks` runs them all; a command line renders the list.

>>> check = check_python("3.10.12")
>>> check.ok, check.detail
(False, 'Python 3.10.12 is too old: TinyTorch needs 3.11 or newer')

Nothing here imports PyTorch: whether it is installed is read from the package metadata.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import sysconfig
from dataclasses import dataclass

import numpy as np

from tinytorch.core import kernels
from tinytorch.core.exercises import exercise

MIN_PYTHON = (3, 11)
MIN_NUMPY = (1, 26)

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class Check:
    """The outcome of one environment check.

    ``required`` checks must pass for TinyTorch to work as the lessons expect; the others (OpenMP,
    PyTorch) only report what is available.
    """

    name: str
    ok: bool
    detail: str
    required: bool = True


@exercise
def parse_version(text: str) -> tuple[int, ...]:
    """The numeric release at the start of a version string, as a tuple of ints.

    Reads dot-separated integers from the start of ``text`` (after surrounding whitespace) and
    stops at the first character that does not continue them, so pre-release and local suffixes
    are ignored: ``"3.11.7"`` gives ``(3, 11, 7)``, ``"2.1.0rc1"`` gives ``(2, 1, 0)``,
    ``"2.13.0+cpu"`` gives ``(2, 13, 0)``, ``"1.26"`` gives ``(1, 26)``.

    Parameters
    ----------
    text : str
        A version string such as ``platform.python_version()`` or ``np.__version__``.

    Returns
    -------
    tuple of int
        One int per dot-separated number, in order.

    Raises
    ------
    ValueError
        When ``text`` does not start with a number; the message quotes ``text``.
    """
    match = _RELEASE.match(text.strip())
    if not match:
        raise ValueError(f"parse_version: {text!r} does not start with a version number such as 3.11.7")
    return tuple(int(part) for part in match.group().split("."))


@exercise
def version_at_least(version: str | tuple[int, ...], minimum: str | tuple[int, ...]) -> bool:
    """True when ``version`` is the same release as ``minimum`` or a later one.

    Versions are compared number by number, not as strings (3.9 is older than 3.11), and a missing
    trailing number counts as 0 (``(3, 11)`` equals ``(3, 11, 0)``). Strings are read with
    :func:`parse_version`, so ``"3.11.0rc1"`` counts as 3.11.0.

    Parameters
    ----------
    version, minimum : str or tuple of int
        Version strings (``"3.11.7"``) or tuples of ints (``(3, 11)``), in any mix.

    Returns
    -------
    bool
    """
    have = parse_version(version) if isinstance(version, str) else tuple(version)
    need = parse_version(minimum) if isinstance(minimum, str) else tuple(minimum)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def _check_minimum(name: str, version: str, minimum: tuple[int, ...]) -> Check:
    if version_at_least(version, minimum):
        return Check(name, True, f"{name} {version}")
    return Check(name, False, f"{name} {version} is too old: TinyTorch needs {_dotted(minimum)} or newer")


def check_python(version: str | None = None) -> Check:
    """Python must be 3.11 or newer; ``version`` defaults to the running interpreter's."""
    return _check_minimum("Python", version or platform.python_version(), MIN_PYTHON)


def check_numpy(version: str | None = None) -> Check:
    """NumPy must be 1.26 or newer; ``version`` defaults to the installed one."""
    return _check_minimum("NumPy", version or np.__version__, MIN_NUMPY)


def find_c_compiler() -> str | None:
    """The path of the C compiler that building the kernels would use, or None when there is none.

    That is ``$CC`` when it is set (setuptools honours it), else the compiler Python was built
    with (``sysconfig``'s ``CC``), else ``cc``, ``gcc`` or ``clang``, whichever is found first.
    """
    if os.environ.get("CC"):
        return shutil.which(shlex.split(os.environ["CC"])[0])
    configured = sysconfig.get_config_var("CC") or ""
    candidates = [*shlex.split(configured)[:1], "cc", "gcc", "clang"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_compiler() -> Check:
    """A C compiler is needed to build the kernels (``pip install -e .`` runs it)."""
    path = find_c_compiler()
    if path:
        return Check("C compiler", True, path)
    if os.environ.get("CC"):
        return Check("C compiler", False, f"CC={os.environ['CC']} is set but not found; unset it or fix the path")
    return Check(
        "C compiler",
        False,
        "none found on PATH; install one (Debian/Ubuntu: apt install build-essential; macOS: xcode-select --install)",
    )


def check_kernels() -> Check:
    """The compiled kernels should be built; says which backend is active."""
    if not kernels.compiled_available():
        return Check("compiled kernels", False, f"not built, so everything runs on the NumPy reference; build: {kernels.BUILD_COMMAND}")
    active = kernels.backend()
    if active == "compiled":
        return Check("compiled kernels", True, "built and active")
    return Check("compiled kernels", True, f"built, but the {active} backend is active ({kernels.ENV_VAR} or kernels.use)")


def check_openmp() -> Check:
    """Whether the compiled kernels run on several threads (optional: without OpenMP they run on one)."""
    if not kernels.compiled_available():
        return Check("OpenMP", False, "no compiled kernels, so no threads", required=False)
    if kernels.openmp_enabled():
        return Check("OpenMP", True, f"enabled, {kernels.get_num_threads()} thread(s)", required=False)
    return Check("OpenMP", False, "the kernels were built without OpenMP and run on one thread", required=False)


def check_optional_package(name: str, purpose: str) -> Check:
    """Whether package ``name`` is installed, found without importing it; ``purpose`` says what it is for."""
    if importlib.util.find_spec(name) is None:
        return Check(name, False, f"not installed (optional: {purpose})", required=False)
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "version unknown"
    return Check(name, True, f"{version} ({purpose})", required=False)


def check_torch() -> Check:
    """PyTorch is optional: the tests compare against it when it is there."""
    return check_optional_package("torch", "tests use it as an oracle and skip those comparisons without it")


def run_checks() -> list[Check]:
    """Every check, required ones first."""
    return [
        check_python(),
        check_numpy(),
        check_compiler(),
        check_kernels(),
        check_openmp(),
        check_torch(),
    ]


def environment_ok(checks: list[Check]) -> bool:
    """True when every required check passed."""
    return all(c.ok for c in checks if c.required)
