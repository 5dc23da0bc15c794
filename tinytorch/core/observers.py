"""Attach one observer to the three hooks the measuring tools of lesson 14 are built on.

Ops report to ``autograd.set_observer``, kernel calls to ``kernels.set_observer`` and module calls
to ``module.set_observer``; each slot holds one observer. :func:`observing` fills all three for the
length of a block and empties them afterwards. When a slot is already taken (a FLOP count inside a
profiled block), both observers see every event, the one already there outermost, so tools nest.

An observer defines ``op_begin(name, phase, inputs) -> token``, ``op_end(token, result)``,
``wrap_kernel(name, function) -> function``, ``module_begin(module, args) -> token`` and
``module_end(token, output)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from . import autograd, kernels, module


class _Both:
    """Forwards every event to two observers: ``outer`` (set first) around ``inner``."""

    def __init__(self, outer: Any, inner: Any):
        self.outer, self.inner = outer, inner

    def op_begin(self, name: str, phase: str, inputs: tuple) -> tuple:
        return self.outer.op_begin(name, phase, inputs), self.inner.op_begin(name, phase, inputs)

    def op_end(self, token: tuple, result: Any) -> None:
        self.inner.op_end(token[1], result)
        self.outer.op_end(token[0], result)

    def wrap_kernel(self, name: str, function: Callable) -> Callable:
        return self.outer.wrap_kernel(name, self.inner.wrap_kernel(name, function))

    def module_begin(self, mod: Any, args: tuple) -> tuple:
        return self.outer.module_begin(mod, args), self.inner.module_begin(mod, args)

    def module_end(self, token: tuple, output: Any) -> None:
        self.inner.module_end(token[1], output)
        self.outer.module_end(token[0], output)


_SLOTS = (autograd.set_observer, kernels.set_observer, module.set_observer)


@contextmanager
def observing(observer: Any) -> Iterator[None]:
    """Report every op, kernel call and module call to ``observer`` inside the block."""
    previous = []
    for set_observer in _SLOTS:
        before = set_observer(None)
        set_observer(observer if before is None else _Both(before, observer))
        previous.append(before)
    try:
        yield
    finally:
        for set_observer, before in zip(_SLOTS, previous):
            set_observer(before)
