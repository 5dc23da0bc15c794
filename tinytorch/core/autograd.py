"""Reverse-mode automatic differentiation (lesson 09).

A differentiable op is a :class:`Function` subclass with two static methods on NumPy arrays:
``forward(ctx, *inputs, **params)`` computes the result and saves on ``ctx`` what the gradient
needs; ``backward(ctx, grad)`` receives dL/d(output) and returns dL/d(input) for each input. The
chain rule is the whole story:

    dL/dx = dL/dy * dy/dx       (backward of y = f(x), called once per op, output first)

``Function.apply`` runs ``forward`` and, when an input requires a gradient, records a node on the
output tensor: the op, its context and its input tensors. ``Tensor.backward()`` then walks those
nodes from the output back to the leaves in topological order (:func:`topological_order`, an
iterative depth-first search, so a 10,000-op chain does not exhaust Python's stack), sums the
gradients that reach each tensor, undoes broadcasting in one place (:func:`unbroadcast`) and
accumulates the result into the ``.grad`` of every leaf that requires it.

Gradients accumulate: ``backward`` adds into ``.grad``; an optimizer's ``zero_grad()`` (or
``tensor.grad = None``) clears them between steps. After a backward pass the arrays saved for it
are freed unless ``retain_graph=True``; going through a freed graph again is an error.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .random import get_rng_state, set_rng_state

if TYPE_CHECKING:
    from .tensor import Tensor

_state = threading.local()

#: The op observer (the profiler of lesson 14), or None. When one is set, ``Function.apply`` and the
#: backward engine report every op to it: ``token = observer.op_begin(name, phase, inputs)`` before
#: the op's forward (phase ``"forward"``) or backward (``"backward"``) runs and
#: ``observer.op_end(token, result)`` after it. A forward's ``inputs`` are the arrays (and constants)
#: handed to ``forward``; a backward's are the incoming gradient followed by that op's forward inputs,
#: and its ``result`` holds the input gradients (None where none was computed). An op that raises
#: still reports its end, with result None. When none is set, an op pays one global read.
_observer: Any = None


def set_observer(observer: Any) -> Any:
    """Report every op to ``observer`` from now on (None stops it); returns the observer it replaces."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def is_grad_enabled() -> bool:
    """True when ops record the graph (the default); False inside ``no_grad()``."""
    return getattr(_state, "enabled", True)


class _GradMode:
    """Context manager and decorator (``@no_grad()`` or bare ``@no_grad``) that sets whether ops record the graph."""

    enabled: bool

    def __new__(cls, fn: Callable | None = None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc) -> None:
        _state.enabled = self._previous

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Build no graph inside (evaluation, optimizer updates): ``with no_grad(): ...`` or ``@no_grad()``."""

    enabled = False


class enable_grad(_GradMode):
    """Record the graph again inside a ``no_grad()`` block: ``with enable_grad(): ...`` or ``@enable_grad()``."""

    enabled = True


class Context:
    """What one op call remembers for its backward: saved arrays, parameters, its input tensors.

    ``ctx.save_for_backward(a, b)`` keeps arrays, read back as ``ctx.saved``; any other attribute
    (``ctx.axis = 1``) may be set freely. ``ctx.needs_input_grad[i]`` tells backward whether input
    ``i`` wants a gradient, so expensive gradients nobody needs can be skipped.
    """

    def __init__(self, fn: type[Function], inputs: tuple, needs_input_grad: tuple[bool, ...]):
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self.saved: tuple = ()
        self.freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    def __repr__(self) -> str:
        return f"<{self.fn.__name__} node{' (freed)' if self.freed else ''}>"

    def release(self) -> None:
        """Drop what was saved for backward (called after a backward pass without ``retain_graph``).

        The input tensors go too: they hold the forward activations (often the very arrays saved),
        so keeping them would keep the whole graph's memory alive for as long as the output lives.
        """
        self.saved = ()
        self.inputs = ()
        self.freed = True
        for name in [k for k in vars(self) if k not in ("fn", "inputs", "needs_input_grad", "saved", "freed")]:
            delattr(self, name)


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward`` as static methods.

    ``backward`` returns one gradient per positional input of ``forward`` (a tuple, or a single
    array when there is one input), each of the op's *output* shape or of the input's shape: the
    engine sums broadcast axes away. ``None`` means "no gradient for this input". ``backward``
    must not modify ``grad`` in place: the same array may be handed to several ops.
    """

    @staticmethod
    def forward(ctx: Context, *inputs: Any, **params: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **params: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays; record the op when a gradient will be needed.

        Inputs that are not tensors (Python numbers, NumPy arrays) are constants: they are passed
        to ``forward`` as they are and get no gradient.
        """
        from .tensor import Tensor

        # A NumPy scalar (np.sqrt(d), np.float64(2)) acts like a Python number, as in PyTorch: left as it
        # is, NumPy 2 would turn float32 * np.float64 into float64.
        arrays = tuple(x.data if isinstance(x, Tensor) else x.item() if isinstance(x, np.generic) else x for x in inputs)
        needs = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        track = any(needs) and is_grad_enabled()
        ctx = Context(cls, inputs if track else (), needs)
        if _observer is None:
            out = cls.forward(ctx, *arrays, **params)
        else:
            token, out = _observer.op_begin(cls.__name__, "forward", arrays), None
            try:
                out = cls.forward(ctx, *arrays, **params)
            finally:  # reported even when forward raises (result None), so the observer's nesting stays right
                _observer.op_end(token, out)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
        track = track and out.dtype.kind == "f"
        return Tensor._from_op(out, ctx if track else None)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the gradient of broadcasting an array of ``shape`` to ``grad.shape``.

    Broadcasting copies a value along new leading axes and along axes of size 1, so its gradient
    adds the copies back up: sum the extra leading axes, then the axes where ``shape`` has a 1.

    Parameters
    ----------
    grad : np.ndarray
        dL/d(output), of the broadcast (output) shape.
    shape : tuple of int
        The shape of the input that was broadcast; ``()`` for a scalar.

    Returns
    -------
    np.ndarray
        dL/d(input), of exactly ``shape`` (size-1 axes kept); ``grad`` itself when nothing was broadcast.

    Raises
    ------
    ValueError
        When an array of ``shape`` does not broadcast to ``grad.shape``.

    >>> unbroadcast(np.ones((4, 2, 3)), (2, 1)).tolist()
    [[12.0], [12.0]]
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} cannot be reduced to {shape}")
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} does not broadcast to {shape}")
    return grad


def topological_order(root: Tensor) -> list[Tensor]:
    """The tensors ``root`` depends on (through ops that need gradients), ``root`` first.

    Every tensor comes before the tensors it was computed from, so by the time backward reaches a
    tensor, all the gradient flowing into it has arrived. Iterative depth-first search: a tensor is
    appended after everything it depends on; the list is reversed at the end.

    The graph: ``t.grad_fn`` is the node of the op that made ``t`` (None for a leaf) and
    ``t.grad_fn.inputs`` are that op's inputs, which may include constants (numbers, arrays, tensors
    that do not require grad); only inputs that are tensors with ``requires_grad`` are followed.
    Each tensor appears once, however many paths lead to it: compare tensors with ``is`` or
    ``id()``, since ``==`` compares their elements. No recursion: graphs are 10,000 ops deep.

    Parameters
    ----------
    root : Tensor
        The tensor backward starts from (usually the loss).

    Returns
    -------
    list of Tensor
        ``root`` first; every tensor before each of its inputs that requires grad.
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        node = tensor._node
        if node is not None:
            for parent in node.inputs:
                if getattr(parent, "requires_grad", False) and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def backward(root: Tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (dL/d root) to every leaf ``root`` depends on; see ``Tensor.backward``."""
    grads: dict[int, np.ndarray] = {id(root): grad}
    for tensor in topological_order(root):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        node = tensor._node
        if node is None or tensor._retains_grad:
            tensor._accumulate_grad(g)
        if node is None:
            continue
        if node.freed:
            raise RuntimeError(
                f"backward: the graph through {node.fn.__name__} was freed by an earlier backward(); "
                "pass retain_graph=True to the first backward() to go through it twice"
            )
        with no_grad():
            if _observer is None:
                input_grads = node.fn.backward(node, g)
            else:
                # The forward's inputs come after the gradient: backward FLOPs and shapes depend on them.
                from .tensor import Tensor

                inputs = (g, *(x.data if isinstance(x, Tensor) else x for x in node.inputs))
                token, input_grads = _observer.op_begin(node.fn.__name__, "backward", inputs), None
                try:
                    input_grads = node.fn.backward(node, g)
                finally:
                    _observer.op_end(token, input_grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.fn.__name__}.backward returned {len(input_grads)} gradients for {len(node.inputs)} inputs"
            )
        for parent, pg, needed in zip(node.inputs, input_grads, node.needs_input_grad):
            if not needed or pg is None:
                continue
            pg = unbroadcast(np.asarray(pg), parent.shape)
            if pg.dtype != parent.dtype:
                pg = pg.astype(parent.dtype)
            key = id(parent)
            grads[key] = grads[key] + pg if key in grads else pg
        if not retain_graph:
            node.release()


class Checkpoint(Function):
    """Gradient checkpointing: run ``fn`` without keeping its graph, and run it again in backward.

    Memory for the activations inside ``fn`` is traded for one more forward pass: a block's
    intermediate arrays are not kept between forward and backward. The re-run starts from the
    random state the forward pass saw, so dropout inside ``fn`` draws the same masks both times.
    """

    @staticmethod
    def forward(ctx, *arrays, fn):
        from .tensor import Tensor

        ctx.fn_to_rerun = fn
        ctx.rng_state = get_rng_state()
        ctx.save_for_backward(*arrays)
        with no_grad():
            return fn(*(Tensor(a, dtype=a.dtype) if isinstance(a, np.ndarray) else a for a in arrays)).data

    @staticmethod
    def backward(ctx, grad):
        from .tensor import Tensor

        leaves = [
            Tensor(a, dtype=a.dtype, requires_grad=needed) if isinstance(a, np.ndarray) else a
            for a, needed in zip(ctx.saved, ctx.needs_input_grad)
        ]
        resume = get_rng_state()
        set_rng_state(ctx.rng_state)
        try:
            with enable_grad():
                out = ctx.fn_to_rerun(*leaves)
        finally:
            set_rng_state(resume)  # the draws after checkpoint() go on as if there had been no re-run
        if out.requires_grad:
            out.backward(grad)
        return tuple(
            leaf.grad.data if needed and leaf.grad is not None else None
            for leaf, needed in zip(leaves, ctx.needs_input_grad)
        )


def checkpoint(fn: Callable[..., Tensor], *inputs: Any) -> Tensor:
    """``fn(*inputs)`` with gradient checkpointing: see :class:`Checkpoint`.

    Parameters that ``fn`` uses (a module's weights) get their gradients during the re-run.
    """
    return Checkpoint.apply(*inputs, fn=fn)
