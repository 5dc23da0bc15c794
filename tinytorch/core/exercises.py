"""The student's functions inside the framework: the registry of exercise substitutes.

Every function a lesson asks a student to write (the names in a lesson's ``:exercises:``) is also
a function the framework has. Where the framework calls it, it is declared with :func:`exercise`,
and a call looks this registry up first: when a student's function is registered under that name,
it runs in place of the framework's own. So ``LeakyReLU()`` runs the student's ``leaky_relu``, the
``DataLoader`` batches with their ``batch_slices``, the ``Trainer`` clips with their
``clip_grad_norm_``, and a whole training run exercises the student's code. This is the
counterpart of the kernel registry (:mod:`tinytorch.core.kernels`), which does the same for
kernels; nothing in the framework is reassigned, so nothing leaks from one run to the next:

1. :func:`register` installs substitutes and returns a handle; ``with`` (or ``handle.close()``)
   removes them again and restores what was registered before.
2. A call to a declared function runs its substitute when there is one, else the framework's
   function, and counts the substitute's calls (:func:`calls`): a run can say how often the
   student's code ran. A substitute that calls the framework's function of its own name (to
   wrap it) reaches the framework's, not itself.
3. :func:`implementation` returns the function that runs now, also for exercises the framework
   does not route through the registry (those only run where a caller asks for them by name);
   a substitute's calls through it are counted too.

A student's workspace is registered as a whole by :func:`tinytorch.use_workspace`.

>>> from tinytorch.core import exercises, networks
>>> with exercises.register({networks.mlp_parameter_count: lambda *sizes: -1}, origin="example"):
...     networks.mlp_parameter_count(4, [8], 2)
-1
>>> networks.mlp_parameter_count(4, [8], 2)
58
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

#: key (``module.name`` where the framework defines it) -> the framework's own function
_declared: dict[str, Callable] = {}
#: key -> the substitute that runs instead
_substitutes: dict[str, "Substitute"] = {}
#: per thread, the keys whose substitute is running now: a substitute that calls the framework's
#: function of its own name (to delegate to it) reaches the framework's, instead of itself forever
_running = threading.local()


@dataclass
class Substitute:
    """A function registered in place of the framework's: where it came from and how often it ran."""

    key: str
    function: Callable
    origin: str
    calls: int = 0


def key_of(function: Callable) -> str:
    """The registry key of a framework function: ``module.name`` of its definition."""
    declared = getattr(function, "__exercise__", None)
    if declared is not None:
        return declared
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    if not module or not name:
        raise TypeError(f"exercises: {function!r} is not a function defined in a module")
    return f"{module}.{name}"


def exercise(function: Callable) -> Callable:
    """Declare ``function`` as an exercise: calls to it run a registered substitute when there is one.

    The returned function has the same name, signature and docstring (``functools.wraps``), so a
    lesson's stub is written from it as from the original, which stays reachable as ``__wrapped__``.
    """
    key = key_of(function)
    _declared[key] = function

    @functools.wraps(function)
    def call(*args, **kwargs):
        substitute = _substitutes.get(key)
        if substitute is None:
            return function(*args, **kwargs)
        running = _running.__dict__.setdefault("keys", set())
        if key in running:
            return function(*args, **kwargs)
        substitute.calls += 1
        running.add(key)
        try:
            return substitute.function(*args, **kwargs)
        finally:
            running.discard(key)

    call.__exercise__ = key
    return call


def is_declared(function_or_key: Callable | str) -> bool:
    """True when the framework routes calls of this exercise through the registry."""
    key = function_or_key if isinstance(function_or_key, str) else key_of(function_or_key)
    return key in _declared


def is_framework_function(candidate: Callable, framework: Callable) -> bool:
    """True when ``candidate`` is the framework's own ``framework`` (for example imported from it),
    which must not be registered in its own place."""
    own = {framework, getattr(framework, "__wrapped__", framework)}
    return candidate in own or getattr(candidate, "__wrapped__", None) in own


class Registration:
    """The substitutes one :func:`register` call installed; ``close()`` (or leaving ``with``) removes them."""

    def __init__(self, keys: Iterable[str], previous: Mapping[str, Substitute | None]):
        self.keys = list(keys)
        self._previous = dict(previous)
        self._open = True

    def close(self) -> None:
        """Restore what each key ran on before the registration (the framework's function, or an
        earlier substitute). Closing twice does nothing."""
        if not self._open:
            return
        self._open = False
        for key, old in self._previous.items():
            if old is None:
                _substitutes.pop(key, None)
            else:
                _substitutes[key] = old

    def __enter__(self) -> "Registration":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def register(functions: Mapping[Callable | str, Callable], origin: str) -> Registration:
    """Run each function of ``functions`` in place of the framework's function (or key) it maps from.

    ``origin`` says where the substitutes come from (a workspace file) for :func:`describe`.
    Registering the framework's own function in its own place is an error (it would call itself).
    """
    resolved: dict[str, Callable] = {}
    for target, replacement in functions.items():
        key = target if isinstance(target, str) else key_of(target)
        if not callable(replacement):
            raise TypeError(f"exercises.register: the substitute for {key} is not callable: {replacement!r}")
        framework = _declared.get(key) or (None if isinstance(target, str) else target)
        if framework is not None and is_framework_function(replacement, framework):
            raise ValueError(f"exercises.register: the substitute for {key} is the framework's own function")
        resolved[key] = replacement
    previous = {key: _substitutes.get(key) for key in resolved}
    for key, replacement in resolved.items():
        _substitutes[key] = Substitute(key, replacement, origin)
    return Registration(resolved, previous)


def implementation(function_or_key: Callable | str) -> Callable:
    """The function that runs now for this exercise: its substitute (counting its calls), else the framework's own."""
    key = function_or_key if isinstance(function_or_key, str) else key_of(function_or_key)
    substitute = _substitutes.get(key)
    if substitute is not None:
        return _counting(substitute)
    if key in _declared:
        return _declared[key]
    if isinstance(function_or_key, str):
        raise LookupError(f"exercises.implementation: no exercise {key!r} is declared or registered")
    return function_or_key


def _counting(substitute: Substitute) -> Callable:
    @functools.wraps(substitute.function)
    def call(*args, **kwargs):
        substitute.calls += 1
        return substitute.function(*args, **kwargs)

    return call


def substitutes() -> dict[str, Substitute]:
    """Every substitute registered now, by key."""
    return dict(_substitutes)


def calls() -> dict[str, int]:
    """How many times each registered substitute has run, by key."""
    return {key: s.calls for key, s in _substitutes.items()}


def describe() -> dict[str, str]:
    """For each registered substitute: where it came from, and whether the framework's own code calls it."""
    return {
        key: f"{s.origin}" + ("" if key in _declared else " (called only where asked for by name: the framework does not route it)")
        for key, s in _substitutes.items()
    }
