"""Which implementation runs each kernel: compiled, reference, or a student's (lesson 13).

Every kernel has one contract, documented in ``tinytorch/_kernels/reference.py``: the NumPy
reference defines all of them; the compiled Cython modules define the same names faster. Layers
and ops never import a kernel module; they call ``kernels.<name>(...)`` and this registry decides:

1. a kernel a student registered with :func:`register` wins;
2. otherwise the active backend's implementation: ``"compiled"`` (the default when the extension
   modules are built) or ``"reference"``;
3. a kernel the compiled modules do not define runs on the reference.

``TINYTORCH_KERNELS=reference`` in the environment starts on the reference backend.

One compiled module holds no kernel: ``graph``, the compiled twin of autograd's ``Function.apply``.
Autograd asks for it with :func:`compiled_module` and follows the backend through
:func:`on_backend_change`.

>>> from tinytorch.core import kernels
>>> with kernels.use("reference"):
...     kernels.backend()
'reference'
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

from tinytorch._kernels import reference
from tinytorch.core import blas_wait
from tinytorch._sourcefile import import_file

#: the compiled extension modules, ``tinytorch/_kernels/<name>.pyx`` each
COMPILED_MODULES = (
    "softmax", "attention", "optim", "conv", "pool", "elementwise", "parallel", "gelu", "layernorm", "int8", "graph", "gemm",
)
BACKENDS = ("compiled", "reference")
ENV_VAR = "TINYTORCH_KERNELS"
BUILD_COMMAND = 'pip install -e ".[dev]"   (or: python setup.py build_ext --inplace)'

KERNEL_NAMES: tuple[str, ...] = tuple(reference.__all__)


class KernelsNotBuiltWarning(UserWarning):
    """The compiled kernels are missing, so TinyTorch runs on the slower NumPy reference."""


def _load_compiled() -> tuple[dict[str, ModuleType], dict[str, tuple[Callable, str]], list[str]]:
    """Import the compiled modules; return ({name: module}, {kernel: (function, module name)}, [missing modules])."""
    modules: dict[str, ModuleType] = {}
    table: dict[str, tuple[Callable, str]] = {}
    missing = []
    for name in COMPILED_MODULES:
        qualified = f"tinytorch._kernels.{name}"
        try:
            module = modules[name] = importlib.import_module(qualified)
        except ImportError:
            missing.append(name)
            continue
        for kernel in KERNEL_NAMES:
            if hasattr(module, kernel):
                table[kernel] = (getattr(module, kernel), qualified)
    return modules, table, missing


# How the kernels' OpenMP threads wait for the next loop. libgomp's default is to spin for 300,000
# rounds (about 15 ms of a core here) before sleeping. On two cores a spinning thread takes the core
# that another pool's thread needs: when the convolution's products still ran on NumPy's BLAS
# threads, that made it 1.3x slower, hence passive waiting (blas_wait.py does the same for
# OpenBLAS). Sleeping at once has its own cost after a rest: Linux wakes a sleeping worker onto the
# main thread's core, and the two take turns on it for the next calls (gemm.pyx gives the
# measurements). Now that the large products run on these same threads (the matmul kernel), a
# short spin, 30,000 rounds (about 1.5 ms), keeps a worker awake through the gaps inside a layer's
# work without taking a core from anyone, provided OpenBLAS's threads sleep at once too. When NumPy
# was imported before TinyTorch they spin after every product NumPy still does, and a spinning
# worker of each pool then holds a core (an int8 kernel after NumPy's products: 0.3 -> 2.8 ms), so
# the kernels' threads do not spin then. The OpenMP runtime reads both variables when the first
# compiled module loads it, so they are set before that; values already in the environment win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SPIN_COUNT = "30000"
if blas_wait.blas_threads_sleep():
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
_wait_settings = (os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"))  # what OpenMP reads at load
_modules, _compiled, _missing = _load_compiled()


def _install_blas() -> str:
    """Give the compiled ``matmul`` (gemm.pyx) the BLAS that NumPy loaded; say where products run."""
    gemm = _modules.get("gemm")
    if gemm is None:
        return "on NumPy's BLAS threads (the compiled kernels are not built)"
    from tinytorch._kernels.blas_symbols import find_cblas

    found = find_cblas()
    if found is None:
        return "on NumPy's BLAS threads (no OpenBLAS 0.3.27+ with openblas_set_num_threads_local found in this process)"
    gemm.install(found["sgemm"], found["dgemm"], found["set_local_threads"], found["get_threads"], found["ilp64"])
    return f"on the kernels' threads, one-thread calls of {Path(found['path']).name}"


_products = _install_blas()
_requested = os.environ.get(ENV_VAR, "").strip().lower()
if _requested and _requested not in BACKENDS:
    raise ValueError(f"{ENV_VAR}={_requested!r} is not a kernel backend; expected one of {BACKENDS}")
if _missing and _requested != "reference":
    warnings.warn(
        f"TinyTorch's compiled kernels are not built (missing: {', '.join(_missing)}); "
        f"running on the NumPy reference. Build them with: {BUILD_COMMAND}",
        KernelsNotBuiltWarning,
        stacklevel=2,
    )
_active = _requested or ("compiled" if _compiled else "reference")
_overrides: dict[str, tuple[Callable, str]] = {}
#: Called with the backend's name on every switch: autograd's Function.apply follows the backend too.
_switch_callbacks: list[Callable[[str], None]] = []
#: The kernel observer (the profiler of lesson 14), or None: when set, ``kernels.<name>`` returns
#: ``observer.wrap_kernel(name, function)`` instead of the function itself, so every call is seen.
_observer = None


def set_observer(observer) -> object:
    """Report every kernel call to ``observer`` from now on (None stops it); returns the one it replaces."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def backend() -> str:
    """The name of the active backend: ``"compiled"`` or ``"reference"``."""
    return _active


def compiled_module(name: str) -> ModuleType | None:
    """The compiled module ``tinytorch._kernels.<name>``, or None when it is not built."""
    if name not in COMPILED_MODULES:
        raise ValueError(f"kernels.compiled_module: {name!r} is not a compiled module; expected one of {COMPILED_MODULES}")
    return _modules.get(name)


def on_backend_change(callback: Callable[[str], None]) -> None:
    """Call ``callback(backend)`` now and after every switch of the backend (code that keeps its own compiled twin)."""
    _switch_callbacks.append(callback)
    callback(_active)


def _switch(name: str) -> None:
    global _active
    _active = name
    for callback in _switch_callbacks:
        callback(name)


def products() -> str:
    """Where the compiled ``matmul`` runs large matrix products: on the kernels' own threads, or NumPy's BLAS threads."""
    return _products if backend() == "compiled" else "on NumPy's BLAS threads (reference backend)"


def wait_policy() -> str:
    """How the kernels' threads wait for the next loop, as the OpenMP runtime was told when it loaded."""
    policy, spin = _wait_settings
    if spin is None:
        return f"OMP_WAIT_POLICY={policy}: they sleep at once (no spin: NumPy's BLAS threads spin, see tinytorch.core.kernels)"
    return f"OMP_WAIT_POLICY={policy}, GOMP_SPINCOUNT={spin}: they spin that many rounds, then sleep"


def compiled_available() -> bool:
    """True when at least one compiled kernel module is built and importable."""
    return bool(_compiled)


def openmp_enabled() -> bool:
    """True when the compiled kernels are built with OpenMP, so their loops can run on several threads."""
    control = compiled_module("parallel")
    return control is not None and control.openmp_enabled()


def set_num_threads(n: int) -> None:
    """Run the compiled kernels' parallel loops on ``n`` threads (OpenMP's setting, for the calling thread).

    NumPy's BLAS, which does the convolution's matrix products, keeps its own pool: size it with
    ``OPENBLAS_NUM_THREADS`` before NumPy is imported. Raises RuntimeError when the compiled kernels
    are not built (the NumPy reference has no loops of its own to parallelise); warns when they were
    built without OpenMP and so always run on one thread.
    """
    control = compiled_module("parallel")
    if control is None:
        raise RuntimeError(f"kernels.set_num_threads: the compiled kernels are not built. Build them with: {BUILD_COMMAND}")
    control.set_num_threads(n)
    if n > 1 and not control.openmp_enabled():
        warnings.warn(
            f"kernels.set_num_threads({n}): the kernels were built without OpenMP and run on one thread",
            UserWarning,
            stacklevel=2,
        )


def get_num_threads() -> int:
    """Threads the compiled kernels' next parallel loop uses: 1 when built without OpenMP or not built at all."""
    control = compiled_module("parallel")
    return 1 if control is None else control.get_num_threads()


class _Restore:
    """Returned by :func:`use` and :func:`register`: the change is already made; ``with`` undoes it on exit."""

    def __init__(self, undo: Callable[[], None]):
        self._undo = undo

    def __enter__(self) -> "_Restore":
        return self

    def __exit__(self, *exc) -> None:
        self._undo()


def use(name: str) -> _Restore:
    """Switch the active backend to ``name`` (``"compiled"`` or ``"reference"``).

    Works as a plain call (the switch stays) and as a context manager (the previous backend comes
    back on exit). Kernels registered by a student stay in force either way.
    """
    if name not in BACKENDS:
        raise ValueError(f"kernels.use: unknown backend {name!r}; expected one of {BACKENDS}")
    if name == "compiled" and not _compiled:
        raise RuntimeError(f"kernels.use('compiled'): the compiled kernels are not built. Build them with: {BUILD_COMMAND}")
    previous = _active
    _switch(name)
    return _Restore(lambda: _switch(previous))


def _module_from(source: ModuleType | str | os.PathLike) -> ModuleType:
    if isinstance(source, ModuleType):
        return source
    path = Path(source)
    return import_file(path, f"tinytorch_user_kernels_{path.stem}", "kernel file (kernels.register)")


def register(source: ModuleType | str | os.PathLike, names: list[str] | None = None) -> _Restore:
    """Make the kernels that ``source`` defines run for the whole framework.

    ``source`` is a module or the path of a ``.py`` file holding some of the functions of
    ``tinytorch/_kernels/reference.py`` (same names, same arguments). Kernels it does not define
    keep running on the active backend. ``names`` limits which ones are taken. Returns an object
    that, used with ``with``, removes the registration on exit.
    """
    module = _module_from(source)
    wanted = names if names is not None else [k for k in KERNEL_NAMES if hasattr(module, k)]
    unknown = [k for k in wanted if k not in KERNEL_NAMES]
    if unknown:
        raise ValueError(f"kernels.register: {unknown} are not kernels; known kernels: {', '.join(KERNEL_NAMES)}")
    absent = [k for k in wanted if not callable(getattr(module, k, None))]
    if absent:
        raise ValueError(f"kernels.register: {module.__name__} does not define {absent}")
    if not wanted:
        raise ValueError(f"kernels.register: {module.__name__} defines none of the kernels ({', '.join(KERNEL_NAMES)})")
    origin = getattr(module, "__file__", None) or module.__name__
    previous = {k: _overrides.get(k) for k in wanted}
    for k in wanted:
        _overrides[k] = (getattr(module, k), f"registered ({origin})")

    def undo() -> None:
        for k, old in previous.items():
            if old is None:
                _overrides.pop(k, None)
            else:
                _overrides[k] = old

    return _Restore(undo)


def unregister(names: list[str] | None = None) -> None:
    """Remove registered kernels (all of them when ``names`` is None)."""
    for k in list(_overrides) if names is None else names:
        _overrides.pop(k, None)


def registered(*names: str) -> bool:
    """True when a kernel registered with :func:`register` replaces any of ``names``.

    A layer with a fused fast path asks this first: a student's ``relu_forward`` must run where
    the model has a ReLU, not be skipped by a kernel that does the ReLU itself.
    """
    return any(name in _overrides for name in names)


def _resolve(name: str) -> tuple[Callable, str]:
    if name in _overrides:
        return _overrides[name]
    if _active == "compiled" and name in _compiled:
        return _compiled[name]
    return getattr(reference, name), "reference"


def describe() -> dict[str, str]:
    """For each kernel, which implementation a call runs now (``"reference"``, a compiled module, or a registered file)."""
    return {name: _resolve(name)[1] for name in KERNEL_NAMES}


def implementation(name: str) -> Callable:
    """The function that runs kernel ``name`` now."""
    if name not in KERNEL_NAMES:
        raise AttributeError(f"no kernel named {name!r}; known kernels: {', '.join(KERNEL_NAMES)}")
    return _resolve(name)[0]


def __getattr__(name: str) -> Callable:
    # ``kernels.softmax_forward(x)`` looks the kernel up at call time, so a switch takes effect at once.
    if name in KERNEL_NAMES:
        function = _resolve(name)[0]
        return function if _observer is None else _observer.wrap_kernel(name, function)
    raise AttributeError(f"module 'tinytorch.core.kernels' has no attribute {name!r}")
