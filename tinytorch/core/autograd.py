"""Reverse-mode automatic differentiation (lesson 09).

A differentiable op is a :class:`Function` subclass with two static methods on NumPy arrays:
``forward(ctx, *inputs, **params)`` computes the result and saves on ``ctx`` what the gradient
needs; ``backward(ctx, grad)`` receives dL/d(output) and returns dL/d(input) for each input. The
chain rule is the whole story:

    dL/dx = dL/dy * dy/dx       (backward of y = f(x), called once per op, output first)

``Function.apply`` runs ``forward`` and, when an input requires a gradient, records a *node* on
the output tensor: the ``ctx`` itself, holding the op, the arrays it saved and its *parents*, one
per input: the node of the op that made that input, the input itself when it is a leaf, or None
when the input needs no gradient. The node does not hold its input tensors, so an intermediate
result that no op saved is freed as soon as the program drops it. ``Tensor.backward()`` walks the
nodes from the output back to the leaves in topological order (:func:`topological_order`, an
iterative depth-first search, so a 10,000-op chain does not exhaust Python's stack), sums the
gradients that reach each node, undoes broadcasting in one place (:func:`unbroadcast`) and
accumulates the result into the ``.grad`` of every leaf.

Gradients accumulate: ``backward`` adds into ``.grad``; an optimizer's ``zero_grad()`` (or
``tensor.grad = None``) clears them between steps. After a backward pass the arrays saved for it
are freed unless ``retain_graph=True``; going through a freed graph again is an error.

In-place writes are checked, as in PyTorch. Every in-place write through the Tensor API
(``t[i] = v``, ``t += 1``, ``t.add_(u)``, an optimizer's step) ticks a write *clock* and raises the
*version* of the memory it wrote (a tensor shares its version with its views); each node notes the
clock when it was recorded. Before a node's backward runs, the engine checks that no array it
saved was written since: if one was, the gradient would be computed from the wrong values, and
``backward()`` raises an error naming the op and the tensor. Writes straight into a tensor's NumPy
array (``t.data[0] = 1``) are not seen, as writes through ``.data`` are not in PyTorch.

``Function.apply`` below is the reference. A small op spends most of its time in it, so it has a
compiled twin (``tinytorch/_kernels/graph.pyx``) that does the same work and records the same
nodes; ``Function.apply`` is that one under the ``"compiled"`` kernel backend (lesson 13).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import kernels
from .random import get_rng_state, set_rng_state

if TYPE_CHECKING:
    from .tensor import Tensor


class _GradState(threading.local):
    enabled = True  # each thread starts with gradients on, as in PyTorch
    queued: list | None = None  # callbacks for the end of the backward() this thread is in (None: not in one)


_grad_state = _GradState()

#: The op observer (the profiler of lesson 14), or None. When one is set, ``Function.apply`` and the
#: backward engine report every op to it: ``token = observer.op_begin(name, phase, inputs)`` before
#: the op's forward (phase ``"forward"``) or backward (``"backward"``) runs, or a gradient is added
#: into a leaf's ``.grad`` (``"AccumulateGrad"``, phase ``"accumulate"``, result None) or a region
#: of :func:`observed_region` runs (phase ``"region"``, no inputs, result None), and
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


@contextlib.contextmanager
def observed_region(name: str, phase: str = "region", inputs: tuple = ()) -> Iterator[None]:
    """Report a block that is not an op to the op observer as an event of its own.

    An optimizer's step and zero_grad use it, named as PyTorch's profiler names them
    (``Optimizer.step#SGD.step``): their time belongs to the training step, not to the gaps
    between ops. The backward engine uses it for ``AccumulateGrad`` (phase ``"accumulate"``).
    Without an observer it only enters and leaves the block.
    """
    observer = _observer
    if observer is None:
        yield
        return
    token = observer.op_begin(name, phase, inputs)
    try:
        yield
    finally:
        observer.op_end(token, None)


def is_grad_enabled() -> bool:
    """True when ops record the graph (the default); False inside ``no_grad()``."""
    return _grad_state.enabled


class _GradMode:
    """Context manager and decorator (``@no_grad()`` or bare ``@no_grad``) that sets whether ops record the graph."""

    enabled: bool

    def __new__(cls, fn: Callable | None = None):
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self) -> None:
        self._previous = _grad_state.enabled
        _grad_state.enabled = self.enabled

    def __exit__(self, *exc) -> None:
        _grad_state.enabled = self._previous

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


# -- versions: which memory was written in place, and when ------------------------------------------
#: Ticks once per in-place write made through the Tensor API. A node notes its value when the node
#: is recorded (``ctx.stamp``), so "was this array written after the node was recorded?" is one
#: comparison, and a node recorded after the latest write needs no check at all.
_clock = 0
#: The clock at the latest in-place write that was itself recorded in the graph (``h += x`` where
#: ``h`` or ``x`` requires grad). Tensors sharing that memory may have gone stale; see _check_history.
_recorded_write_clock = 0


def memory_root(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory: ``array`` itself, or the base a view was taken from."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class _MemoryVersion(weakref.ref):
    """The write history of one block of memory, kept while the array owning it is alive."""

    __slots__ = ("key", "version", "written", "recorded", "writer")

    def __new__(cls, root: np.ndarray, key: int):
        return super().__new__(cls, root, _forget_versions)

    def __init__(self, root: np.ndarray, key: int):
        super().__init__(root, _forget_versions)
        self.key, self.version, self.written, self.recorded, self.writer = key, 0, 0, 0, ""


#: id(memory root) -> its _MemoryVersion; only memory that has been written in place is here.
_versions: dict[int, _MemoryVersion] = {}


def _forget_versions(entry: _MemoryVersion) -> None:
    _versions.pop(entry.key, None)  # the memory is gone; a new array may get its id


def note_write(array: np.ndarray, writer: str, recorded: bool = False) -> None:
    """Record that ``array``'s memory was just written in place by ``writer`` (e.g. ``"add_"``).

    Every in-place method of Tensor calls this after writing, and so does an optimizer's step.
    ``recorded`` says the write is itself part of the graph (the written tensor took the op's node).
    """
    global _clock, _recorded_write_clock
    _clock += 1
    root = memory_root(array)
    key = id(root)
    entry = _versions.get(key)
    if entry is None:
        entry = _versions[key] = _MemoryVersion(root, key)
    entry.version += 1
    entry.written = _clock
    entry.writer = writer
    if recorded:
        entry.recorded = _recorded_write_clock = _clock


def write_clock() -> int:
    """The write clock now: a node recorded now gets this stamp (code that rebuilds nodes uses it)."""
    return _clock


def version_of(array: np.ndarray) -> int:
    """How many in-place writes the memory of ``array`` has had (``Tensor._version``)."""
    entry = _versions.get(id(memory_root(array)))
    return 0 if entry is None else entry.version


def _describe(array: np.ndarray) -> str:
    return f"a {array.dtype} tensor of shape {array.shape}"


def _check_saved(node: Context) -> None:
    """Raise if an array ``node`` saved for backward was written in place after ``node`` was recorded."""
    for i, array in enumerate(node.saved):
        if not isinstance(array, np.ndarray):
            continue
        entry = _versions.get(id(memory_root(array)))
        if entry is not None and entry.written > node.stamp:
            name = node.fn.__name__
            raise RuntimeError(
                f"backward: {name} saved {_describe(array)} (saved value {i}) to compute its gradient, and "
                f"that tensor was then modified in place by {entry.writer} (it is now at version "
                f"{entry.version}); its gradient would be computed from the new values. Make the in-place "
                "change after backward(), write into a copy (clone()), or use the out-of-place op "
                "(x = x + 1 instead of x += 1)"
            )


def _check_history(tensor: Tensor, user: str) -> None:
    """Raise if an in-place op recorded on another tensor rewrote ``tensor``'s memory after it was computed.

    That other tensor (a view of this one, or this one a view of it) took the in-place op into its
    own history; this tensor's history no longer describes its values.
    """
    entry = _versions.get(id(memory_root(tensor._data)))
    if entry is not None and entry.recorded > tensor._node.stamp:
        raise RuntimeError(
            f"{user}: {_describe(tensor._data)} made by {tensor._node.fn.__name__} was then rewritten by "
            f"{entry.writer} on another tensor sharing its memory (a view of it, or the tensor it is a view "
            "of); its recorded history no longer describes its values. Take the view after the in-place "
            "op, or use the out-of-place op"
        )


# -- the graph ----------------------------------------------------------------------------------------
# The compiled recorder (tinytorch/_kernels/graph.pyx) keeps a node's fields in a C struct, NodeFields;
# Context is built on it when it is there, so that both recorders make the same nodes.
_compiled_graph = kernels.compiled_module("graph")
_NodeFields: type = object if _compiled_graph is None else _compiled_graph.NodeFields


class Context(_NodeFields):
    """What one op call remembers for its backward: the graph's node.

    ``ctx.save_for_backward(a, b)`` keeps arrays, read back as ``ctx.saved``; any other attribute
    (``ctx.axis = 1``) may be set freely. ``ctx.needs_input_grad[i]`` tells forward and backward
    whether input ``i`` wants a gradient, so what nobody needs is neither saved nor computed.

    What the engine keeps on a recorded node: ``fn``, the op's Function; ``parents``, one entry
    per input (the node of the op that made it, the input itself when it is a leaf, or None when
    it needs no gradient); ``output_shape`` and ``output_dtype`` of the tensor it made (the
    gradient flowing into the node has them); ``stamp``, the write clock when it was recorded.
    """

    __slots__ = () if _NodeFields is not object else (
        "fn", "needs_input_grad", "parents", "saved", "stamp", "output_shape", "output_dtype", "retains",
        "freed", "__dict__", "__weakref__",
    )  # fmt: skip

    def __init__(self, fn: type[Function], needs_input_grad: tuple[bool, ...]):
        # What forward may use. Function.apply sets the rest when it records the node.
        self.fn = fn
        self.needs_input_grad = needs_input_grad
        self.saved: tuple = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep ``arrays`` for backward. Only these are checked for in-place writes before backward runs."""
        self.saved = arrays

    def __repr__(self) -> str:
        return f"<{self.fn.__name__} node{' (freed)' if getattr(self, 'freed', False) else ''}>"

    def release(self) -> None:
        """Drop what was saved for backward and the links to the parents (after a backward pass without ``retain_graph``)."""
        self.saved = ()
        self.parents = ()
        self.freed = True
        self.__dict__.clear()  # the op's own attributes: they may hold arrays too


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward`` as static methods.

    ``backward`` returns one gradient per positional input of ``forward`` (a tuple, or a single
    array when there is one input), each of the op's *output* shape or of the input's shape: the
    engine sums broadcast axes away. ``None`` means "no gradient for this input". ``backward``
    must not modify ``grad`` in place: the same array may be handed to several ops. Arrays that
    backward reads go through ``ctx.save_for_backward`` (not ``ctx.x = x``), so that in-place
    writes to them are caught.
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
        # Each input hands forward an array (a tensor's) or itself (a constant), and hands backward a
        # parent: where its gradient goes (its node, the tensor itself for a leaf, None if not wanted).
        arrays = []
        parents = []
        needs = []
        wanted = False
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x._data)
                if x.requires_grad:
                    node = x._node
                    if node is None:
                        parents.append(x)  # a leaf: its gradient is accumulated into x.grad
                    else:
                        if node.stamp < _recorded_write_clock:
                            _check_history(x, cls.__name__)
                        parents.append(node)
                    needs.append(True)
                    wanted = True
                    continue
            else:
                # A NumPy scalar (np.sqrt(d), np.float64(2)) acts like a Python number, as in PyTorch:
                # left as it is, NumPy 2 would turn float32 * np.float64 into float64.
                arrays.append(x.item() if isinstance(x, np.generic) else x)
            parents.append(None)
            needs.append(False)
        record = wanted and _grad_state.enabled
        ctx = Context(cls, tuple(needs) if record else (False,) * len(needs))
        if _observer is None:
            out = cls.forward(ctx, *arrays, **params) if params else cls.forward(ctx, *arrays)
        else:
            token, out = _observer.op_begin(cls.__name__, "forward", arrays), None
            try:
                out = cls.forward(ctx, *arrays, **params)
            finally:  # reported even when forward raises (result None), so the observer's nesting stays right
                _observer.op_end(token, out)
            # The observer is told a backward's forward inputs too; nodes keep them only while observed.
            ctx.observed_inputs = tuple(arrays)
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if not record:
            return _tensor(out, None)
        dtype = out.dtype
        if dtype.kind != "f":  # integer and boolean results carry no gradient
            return _tensor(out, None)
        ctx.parents = tuple(parents)
        ctx.stamp = _clock
        ctx.output_shape = out.shape
        ctx.output_dtype = dtype
        ctx.retains = None  # the tensor whose retain_grad() asked for this node's gradient
        ctx.freed = False
        return _tensor(out, ctx)


#: The readable recorder above. ``Function.apply`` is this one under the ``"reference"`` kernel
#: backend, and the compiled twin (tinytorch/_kernels/graph.pyx) under ``"compiled"``.
reference_apply = Function.__dict__["apply"]


def _follow_backend(backend: str) -> None:
    """Record ops with the recorder of ``backend`` (kernels.use() calls this on every switch)."""
    compiled = backend == "compiled" and _compiled_graph is not None
    Function.apply = classmethod(_compiled_graph.apply) if compiled else reference_apply


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


def topological_order(root: Tensor) -> list[Context]:
    """The nodes ``root``'s gradient flows through, ``root.grad_fn`` first (empty for a leaf).

    Every node comes before the nodes of the ops that made its inputs, so by the time backward
    reaches a node, all the gradient flowing into it has arrived. Iterative depth-first search: a
    node is appended after everything it depends on; the list is reversed at the end.

    The graph: ``t.grad_fn`` is the node of the op that made ``t`` (None for a leaf), and
    ``node.parents`` has one entry per input of that op: the input's own node, the input tensor
    itself when it is a leaf, or None when the input needs no gradient. Only nodes (``Context``
    objects) are followed. Each node appears once, however many paths lead to it. No recursion:
    graphs are 10,000 ops deep.

    Parameters
    ----------
    root : Tensor
        The tensor backward starts from (usually the loss).

    Returns
    -------
    list of Context
        ``root.grad_fn`` first; every node before the nodes of its inputs.
    """
    start = root.grad_fn
    if start is None:
        return []
    order: list[Context] = []
    visited: set[Context] = set()
    stack: list[tuple[Context, bool]] = [(start, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:  # reached again by a longer path, which has already placed it
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in node.parents:
            if type(parent) is Context and parent not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def queue_callback(callback: Callable[[], Any]) -> None:
    """Run ``callback()`` once the ``backward()`` now running has finished (call it from a hook).

    Data parallelism uses it to wait for the last gradients to be averaged before the optimizer
    step. A backward inside a backward (gradient checkpointing's re-run) does not end the outer one:
    callbacks run when the outermost finishes, in the order they were queued, and not when it fails.
    """
    if _grad_state.queued is None:
        raise RuntimeError("queue_callback: no backward() is running in this thread; call it from a gradient hook")
    _grad_state.queued.append(callback)


def backward(root: Tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (dL/d root) to every leaf ``root`` depends on; see ``Tensor.backward``."""
    if _grad_state.queued is not None:  # inside another backward: its end runs the callbacks
        _backward(root, grad, retain_graph)
        return
    _grad_state.queued = queued = []
    try:
        _backward(root, grad, retain_graph)
    finally:
        _grad_state.queued = None
    for callback in queued:
        callback()


def _backward(root: Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    start = root._node
    if start is None:
        root._accumulate_grad(grad)
        return
    if start.stamp < _recorded_write_clock:
        _check_history(root, "backward")
    grads: dict[Context, np.ndarray] = {start: grad}
    enabled = _grad_state.enabled
    _grad_state.enabled = False  # backward functions work on arrays; nothing they do is recorded
    try:
        for node in topological_order(root):
            g = grads.pop(node, None)
            if g is None:
                continue  # backward of every op using this node's output returned None for it
            if node.retains is not None:
                kept = node.retains()
                if kept is not None:
                    kept._accumulate_grad(g)
            if node.freed:
                raise RuntimeError(
                    f"backward: the graph through {node.fn.__name__} was freed by an earlier backward(); "
                    "pass retain_graph=True to the first backward() to go through it twice"
                )
            if node.stamp != _clock:  # something was written in place since the node was recorded
                _check_saved(node)
            if _observer is None:
                input_grads = node.fn.backward(node, g)
            else:
                # The forward's inputs come after the gradient: backward FLOPs and shapes depend on them
                # (a node recorded before the observer was set has only the gradient to show).
                inputs = (g, *getattr(node, "observed_inputs", ()))
                token, input_grads = _observer.op_begin(node.fn.__name__, "backward", inputs), None
                try:
                    input_grads = node.fn.backward(node, g)
                finally:
                    _observer.op_end(token, input_grads)
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            if len(input_grads) != len(node.parents):
                raise RuntimeError(
                    f"{node.fn.__name__}.backward returned {len(input_grads)} gradients for {len(node.parents)} inputs"
                )
            for parent, pg in zip(node.parents, input_grads):
                if parent is None or pg is None:
                    continue
                if type(pg) is not np.ndarray:
                    pg = np.asarray(pg)
                if type(parent) is Context:
                    if pg.shape != parent.output_shape:
                        pg = unbroadcast(pg, parent.output_shape)
                    if pg.dtype is not parent.output_dtype:  # identical in the common case; astype copies only if unequal
                        pg = pg.astype(parent.output_dtype, copy=False)
                    earlier = grads.get(parent)
                    grads[parent] = pg if earlier is None else earlier + pg
                elif _observer is None:  # a leaf
                    parent._accumulate_grad(unbroadcast(pg, parent._data.shape))
                else:
                    # a leaf's first gradient is a fresh array whose page faults are backward's
                    # work (and a hook on the leaf, data parallelism's, runs here): an event of its own
                    with observed_region("AccumulateGrad", "accumulate", (pg,)):
                        parent._accumulate_grad(unbroadcast(pg, parent._data.shape))
            if not retain_graph:
                node.release()
    finally:
        _grad_state.enabled = enabled


class Checkpoint(Function):
    """Gradient checkpointing: run ``fn`` without keeping its graph, and run it again in backward.

    Memory for the activations inside ``fn`` is traded for one more forward pass: a block's
    intermediate arrays are not kept between forward and backward. The re-run starts from the
    random state the forward pass saw, so dropout inside ``fn`` draws the same masks both times.
    """

    @staticmethod
    def forward(ctx, *arrays, fn):
        ctx.fn_to_rerun = fn
        ctx.rng_state = get_rng_state()
        ctx.save_for_backward(*arrays)
        with no_grad():
            return fn(*(Tensor(a, dtype=a.dtype) if isinstance(a, np.ndarray) else a for a in arrays)).data

    @staticmethod
    def backward(ctx, grad):
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

    Parameters that ``fn`` uses (a module's weights) get their gradients during the re-run, also
    when no input requires grad (the first block of a model, whose input is the data).
    """
    if is_grad_enabled() and not any(getattr(x, "requires_grad", False) for x in inputs):
        from .tensor import Tensor

        # The engine records an op only when an input requires grad; an empty leaf that does makes
        # it record this one, so that backward re-runs fn and reaches the parameters inside.
        anchor = Tensor(np.zeros(0, dtype=np.float32), requires_grad=True)
        return Checkpoint.apply(*inputs, anchor, fn=lambda *args: fn(*args[:-1]))
    return Checkpoint.apply(*inputs, fn=fn)


# tensor.py imports this module, so Tensor can only be imported once this module is complete.
from .tensor import Tensor, _tensor  # noqa: E402

if _compiled_graph is not None:
    _compiled_graph.install(sys.modules[__name__])
kernels.on_backend_change(_follow_backend)

Variable = Tensor  # the original course's name for Tensor
