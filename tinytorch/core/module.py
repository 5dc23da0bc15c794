"""Module and Parameter: how a model holds its weights (taught in lesson 04, used from lesson 03 on).

A :class:`Parameter` is a tensor a model learns: a float leaf that requires grad. A
:class:`Module` is anything with a ``forward``: assigning a Parameter or another Module to one of
its attributes *registers* it, so the module can find every weight it owns, however deeply nested:

>>> import numpy as np
>>> class Scale(Module):
...     def __init__(self, n):
...         super().__init__()
...         self.gain = Parameter(np.ones(n))
...     def forward(self, x):
...         return x * self.gain
>>> class Twice(Module):
...     def __init__(self):
...         super().__init__()
...         self.first, self.second = Scale(3), Scale(3)
...     def forward(self, x):
...         return self.second(self.first(x))
>>> model = Twice()
>>> [name for name, _ in model.named_parameters()]
['first.gain', 'second.gain']
>>> model.num_parameters()
6
>>> model
Twice(
  (first): Scale()
  (second): Scale()
)

This file sits below the lesson modules (like ``tensor.py``): the activations of lesson 03 are
Modules too, although lesson 04 is the one that teaches how Module works.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from .autograd import no_grad
from .tensor import Tensor

#: The module observer (the profiler and FLOP counter of lesson 14), or None. When one is set, calling
#: a module reports it: ``token = observer.module_begin(module, args)`` before its ``forward`` and
#: ``observer.module_end(token, output)`` after it (output None when forward raised), so ops can be
#: attributed to the layer that ran them. When none is set, a call pays one global read.
_observer: Any = None


def set_observer(observer: Any) -> Any:
    """Report every module call to ``observer`` from now on (None stops it); returns the observer it replaces."""
    global _observer
    previous, _observer = _observer, observer
    return previous


class Parameter(Tensor):
    """A tensor that a module learns: always a float leaf, requiring grad unless frozen.

    Parameters
    ----------
    data : array_like
        Initial values. They become float32 unless ``dtype`` is given; an array (or Tensor) that
        already has that dtype is shared, not copied, as ``Tensor`` and PyTorch's Parameter do.
    dtype : dtype, optional
        ``float32`` (default) or ``float64``.
    requires_grad : bool
        ``False`` freezes the parameter (it stays registered and saved, but gets no gradient).
    """

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, dtype=np.dtype(dtype or np.float32))
        if self.dtype.kind != "f":
            raise TypeError(f"Parameter: parameters must be float32 or float64, got dtype {self.dtype}")
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match: names missing from the state, and extra names in it."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _indent(text: str, spaces: int) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


class Module:
    """The base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign their Parameters, buffers and sub-modules
    as attributes, and define ``forward``. Calling the module calls ``forward``.

    Collections (``parameters()``, ``named_parameters()``, ``children()``, ``modules()``, ...)
    are returned as lists, so ``len()`` works; iterating them is the same as in PyTorch. Names are
    dotted paths (``"0.weight"`` for the weight of a Sequential's first layer).
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ because our own __setattr__ needs these dictionaries to exist.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- registration ------------------------------------------------------------------------------
    def _registries(self) -> tuple[dict, dict, dict]:
        try:
            return self._parameters, self._buffers, self._modules
        except AttributeError:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() in __init__ before assigning attributes"
            ) from None

    def _forget(self, name: str) -> None:
        for registry in self._registries():
            registry.pop(name, None)
        self._non_persistent.discard(name)

    def _register(self, registry: str, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` in one registry (``"_parameters"``, ``"_buffers"``, ``"_modules"``) and as an attribute.

        Replacing an entry keeps its place in the registry (a layer swapped inside a Sequential stays
        where it was, as in PyTorch).
        """
        target = getattr(self, registry)
        for other in self._registries():
            if other is not target:
                other.pop(name, None)
        self._non_persistent.discard(name)
        target[name] = value
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        parameters, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            self._register("_parameters", name, value)
            return
        if isinstance(value, Module):
            self._register("_modules", name, value)
            return
        if name in parameters:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a Parameter; assign a Parameter (or None), "
                    f"not {type(value).__name__}"
                )
            parameters[name] = None
        elif name in buffers:
            value = buffers[name] = self._as_buffer(value)
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a sub-module; assign a Module (or None)")
            modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, for an optional parameter such as a missing bias) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._register("_parameters", name, param)

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Register a tensor the module keeps but does not learn (BatchNorm's running statistics).

        Buffers are saved by ``state_dict()`` (unless ``persistent=False``), follow ``to(dtype)``
        when they are float, and never require grad.
        """
        self._register("_buffers", name, self._as_buffer(value))
        if not persistent:
            self._non_persistent.add(name)

    @staticmethod
    def _as_buffer(value: Any) -> Tensor | None:
        if value is None:
            return None
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        return Tensor(array, dtype=array.dtype)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child under ``name`` (any string, e.g. ``"0"``)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        self._register("_modules", name, module)

    # -- running ---------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _observer is None:
            return self.forward(*args, **kwargs)
        token, output = _observer.module_begin(self, args), None
        try:
            output = self.forward(*args, **kwargs)
        finally:
            _observer.module_end(token, output)
        return output

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and all below it; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: Dropout passes input through, BatchNorm uses its running statistics."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # -- walking the tree -------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
        """``(name, module)`` for this module (name ``prefix``) and every module below it, each once."""
        found: list[tuple[str, Module]] = []
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # depth first, children in registration order
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            found.append((name, module))
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))
        return found

    def modules(self) -> list[Module]:
        return [m for _, m in self.named_modules()]

    def named_children(self) -> list[tuple[str, Module]]:
        return [(k, m) for k, m in self._modules.items() if m is not None]

    def children(self) -> list[Module]:
        return [m for _, m in self.named_children()]

    def _named_members(self, registry: str, recurse: bool) -> list[tuple[str, Tensor]]:
        found: list[tuple[str, Tensor]] = []
        seen: set[int] = set()
        owners = self.named_modules() if recurse else [("", self)]
        for prefix, module in owners:
            for key, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                found.append((f"{prefix}.{key}" if prefix else key, value))
        return found

    def named_parameters(self, recurse: bool = True) -> list[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` for every parameter; a parameter shared by two modules appears once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        return [p for _, p in self.named_parameters(recurse)]

    def named_buffers(self, recurse: bool = True) -> list[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> list[Tensor]:
        return [b for _, b in self.named_buffers(recurse)]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many numbers the model learns (only those that require grad when ``trainable_only``)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn(module)`` on every module below this one and then on this one (custom init); returns self."""
        for module in reversed(self.modules()):
            fn(module)
        return self

    # -- dtype --------------------------------------------------------------------------------------
    def to(self, dtype: Any) -> Module:
        """Convert every parameter and float buffer to ``dtype`` (float32 or float64), in place; returns self.

        The Parameter objects stay the same (only their arrays change), so an optimizer that
        holds them keeps working. Gradients are dropped.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.to: parameters must stay float, got dtype {dtype}")
        # Assigning .data would keep each tensor's dtype (that is its job); this changes it on purpose.
        for p in self.parameters():
            p._data = p._data.astype(dtype, copy=False)
            p.grad = None
        for b in self.buffers():
            if b.dtype.kind == "f":
                b._data = b._data.astype(dtype, copy=False)
        return self

    def double(self) -> Module:
        """``to(float64)``: what gradient checks need."""
        return self.to(np.float64)

    def float(self) -> Module:
        """``to(float32)``, the default."""
        return self.to(np.float32)

    # -- saving and loading -------------------------------------------------------------------------
    def _state_items(self) -> list[tuple[str, Tensor]]:
        """Every saved tensor under its full name: each module's parameters, then its persistent buffers."""
        items: list[tuple[str, Tensor]] = []
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            items += [(dot + k, p) for k, p in module._parameters.items() if p is not None]
            items += [
                (dot + k, b) for k, b in module._buffers.items() if b is not None and k not in module._non_persistent
            ]
        return items

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> a copy of the values (a NumPy array) of every parameter and persistent buffer."""
        return {name: t.data.copy() for name, t in self._state_items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state`` (name -> array or Tensor) into the parameters and buffers, in place.

        Shapes must match. With ``strict=True`` (default) the names must match exactly too; with
        ``strict=False`` the names that do match are loaded and the others are returned. Nothing is
        loaded when any check fails.
        """
        own = dict(self._state_items())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        values = {k: np.asarray(v.data if isinstance(v, Tensor) else v) for k, v in state.items() if k in own}
        mismatched = [f"{k}: expected {own[k].shape}, got {v.shape}" for k, v in values.items() if v.shape != own[k].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing names: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected names: {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches: {'; '.join(mismatched)}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + ". ".join(problems))
        with no_grad():  # in place, as PyTorch's load_state_dict: the same objects, their versions raised
            for k, v in values.items():
                own[k].copy_(v)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown between the parentheses of this module's repr (override in subclasses)."""
        return ""

    def label(self) -> str:
        """The module's one-line name for error messages, e.g. ``Dense(784 -> 10)``."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        children = [f"({k}): {_indent(repr(m), 2)}" for k, m in self.named_children()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def as_input(layer: Module, x: Any, dtype: np.dtype) -> Tensor:
    """``x`` as a Tensor of ``dtype`` (a layer's parameter dtype), or an error naming ``layer``.

    Arrays and lists are wrapped (floats become ``dtype``); a Tensor of another dtype is an error
    rather than a silent upcast, which would double the memory and time of everything after it.
    """
    if not isinstance(x, Tensor):
        array = np.asarray(x)
        x = Tensor(array, dtype=dtype if array.dtype.kind in "fiub" else None)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer.label()} got input of dtype {x.dtype}; it needs {dtype} (x.astype(tt.{dtype}))")
    if x.dtype != dtype:
        raise TypeError(
            f"{layer.label()} got input of dtype {x.dtype} but its parameters are {dtype}; convert the input "
            f"(x.astype(tt.{dtype})) or the layer (layer.to(tt.{x.dtype}))"
        )
    return x
