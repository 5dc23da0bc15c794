"""Tensor: one NumPy array, plus what autograd needs to differentiate through it (lesson 02).

A ``Tensor`` holds its values in ``.data``, a NumPy array: float32 unless float64 is asked for,
or an integer/boolean array for labels, indices and masks (which never get gradients). Every
operator and method builds its result with one op from :mod:`tinytorch.core.ops`; when an input
``requires_grad``, the result remembers the op so that ``backward()`` can run the chain rule.

Method names and arguments follow NumPy (``sum(axis=None, keepdims=False)``, ``reshape``,
``transpose(*axes)``, ``.size`` is the number of elements); the autograd API follows PyTorch
(``requires_grad``, ``backward``, ``grad``, ``detach``, ``no_grad``).

>>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
Tensor([[2., 4.],
        [6., 8.]])
"""

from __future__ import annotations

import operator
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from .ops._axes import normalize_axis
from .random import generator

if TYPE_CHECKING:
    from .autograd import Context, Function

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
DEFAULT_FLOAT = float32


def _as_array(data: Any, dtype: Any = None, copy: bool = False) -> np.ndarray:
    """``data`` as a NumPy array: floats become float32 unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data._data
    try:
        array = np.array(data, copy=True) if copy else np.asarray(data)
    except (ValueError, TypeError) as error:
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__}: {error}") from None
    if dtype is not None:
        target = np.dtype(dtype)
    elif array.dtype.kind == "f":
        target = DEFAULT_FLOAT
    elif array.dtype.kind in "iub":
        target = array.dtype
    else:
        raise TypeError(f"tensor: data of dtype {array.dtype} is not supported; use numbers (float, int or bool)")
    return array if array.dtype == target else array.astype(target)


def _shape_arg(op: str, shape: tuple) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"{op}: shape must be non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def _unwrap(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def _index(index: Any) -> Any:
    """An index for ``Tensor.__getitem__``: tensors and lists inside it become NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    return index


_new = object.__new__


class Tensor:
    """An n-dimensional array that can record how it was computed, for automatic differentiation.

    Parameters
    ----------
    data : array_like
        Numbers, nested lists, a NumPy array or another Tensor. Floating data becomes float32
        unless ``dtype`` is given; a NumPy array of the right dtype is used without a copy.
    dtype : dtype, optional
        ``float32`` (default for floats), ``float64``, or an integer/boolean dtype.
    requires_grad : bool
        Record the ops applied to this tensor so ``backward()`` can fill ``.grad``. Floats only.
    """

    __slots__ = ("_data", "requires_grad", "grad", "_node", "__weakref__", "__dict__")
    __array_ufunc__ = None  # make NumPy defer to Tensor's reflected operators (np.float32(2) * t)
    _grad_hooks: tuple = ()  # register_post_accumulate_grad_hook's; a tensor that has some keeps its own

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False):
        self._data: np.ndarray = _as_array(data, dtype)
        self.grad: Tensor | None = None
        self._node: Context | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _from_op(data: np.ndarray, node: Context | None) -> Tensor:
        """The result of an op: ``data`` as it is, recording ``node`` when it is not None."""
        # np.argmax(x) and comparisons of 0-d arrays give NumPy scalars; .data is always an ndarray
        return _tensor(data if isinstance(data, np.ndarray) else np.asarray(data), node)

    def _set_data(self, value: Any) -> None:
        array = value._data if isinstance(value, Tensor) else np.asarray(value)
        current = getattr(self, "_data", None)
        if current is None:  # a tensor being built without __init__ (Tensor.__new__) takes the array as it is
            self._data = _as_array(array, array.dtype)
            return
        if array.dtype != current.dtype:
            if not np.can_cast(array.dtype, current.dtype, "same_kind"):
                raise TypeError(
                    f"data: cannot assign a {array.dtype} array to a {current.dtype} tensor (the tensor keeps "
                    f"its dtype); convert it first, or make a new tensor"
                )
            array = array.astype(current.dtype)
        self._data = array

    # The getter is a C-level attrgetter: a .data read costs about what a plain attribute read does.
    data = property(
        operator.attrgetter("_data"),
        _set_data,
        doc="""The values: a NumPy array, shared with the tensor (not a copy).

        Writing into it (``t.data[0] = 1``, or NumPy ``out=``) is invisible to autograd: such a write
        is not checked against the arrays a graph saved for backward, as writes through ``.data``
        are not in PyTorch. Use it deliberately (an optimizer's update, an initialiser). Assigning a
        new array (``t.data = np.zeros((3, 4))``) keeps the tensor's dtype, converting the array as
        the Tensor constructor does (float64 -> float32 for a float32 tensor); the shape may change.
        """,
    )

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's memory has had (shared with its views), as PyTorch's ``_version``."""
        return version_of(self._data)

    # -- what it is -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        """Number of elements (NumPy's meaning)."""
        return self._data.size

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def is_leaf(self) -> bool:
        """True when no recorded op made this tensor (created by the user, or under ``no_grad``)."""
        return self._node is None

    @property
    def grad_fn(self) -> Context | None:
        """The node of the recorded op that made this tensor, or None for a leaf.

        ``grad_fn.fn`` is the op's Function; ``grad_fn.parents`` has one entry per input of the op: that
        input's own ``grad_fn``, the input itself when it is a leaf, or None when it needs no gradient.
        """
        return self._node

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", precision=4, threshold=64, edgeitems=3, prefix="Tensor(")
        extras = []
        if self.dtype not in (float32, int64, bool_):
            extras.append(f"dtype={self.dtype}")
        if self.requires_grad:
            extras.append(f"grad_fn={self._node.fn.__name__}" if self._node else "requires_grad=True")
        return "Tensor(" + ", ".join([body, *extras]) + ")"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(tensor)`` gives the data (converted when ``dtype`` asks)."""
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self._data

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, got shape {self.shape}")
        return self._data.item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # -- autograd -------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording ops on this leaf tensor; returns it."""
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"requires_grad: only float tensors can require gradients, this one is {self.dtype}")
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("requires_grad_(False): only leaf tensors can stop requiring grad; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor too after ``backward()`` (a leaf always keeps it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        if self._node is not None:
            self._node.retains = weakref.ref(self)  # weak: the graph must not keep the tensor alive

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], Any]) -> HookHandle:
        """Call ``hook(self)`` each time ``backward()`` has added a gradient into this leaf's ``.grad``.

        Data parallelism uses it to start averaging a gradient across processes while backward is
        still computing the others. A leaf that several ops use gets one gradient, and one call, per
        use. Returns a handle whose ``remove()`` takes the hook off again.
        """
        if self._node is not None or not self.requires_grad:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only a leaf tensor that requires grad accumulates .grad; "
                f"this one {'was computed by ' + self._node.fn.__name__ if self._node else 'does not require grad'}"
            )
        self._grad_hooks = (*self._grad_hooks, hook)
        return HookHandle(self, hook)

    def detach(self) -> Tensor:
        """The same data (shared, with the same version) with no history: gradients stop here."""
        return Tensor._from_op(self._data, None)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``); the next backward starts afresh."""
        self.grad = None

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf this tensor depends on and add it to ``leaf.grad``.

        ``grad`` is dL/d(self); it may be left out only when self has one element (a loss).
        Gradients *accumulate* into ``.grad``: clear them between steps (``zero_grad``). The arrays
        saved for backward are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad())"
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward: grad can be left out only for a one-element output (a loss), got shape {self.shape}; "
                    "pass grad= of the same shape"
                )
            seed = np.ones(self.shape, dtype=self.dtype)
        else:
            seed = np.asarray(_unwrap(grad), dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(f"backward: grad has shape {seed.shape}; expected the tensor's shape {self.shape}")
        autograd.backward(self, seed, retain_graph=retain_graph)

    def _accumulate_grad(self, g: np.ndarray) -> None:
        if self.grad is None:
            self.grad = Tensor._from_op(np.array(g, dtype=self._data.dtype, copy=True), None)
        else:
            self.grad._data += g
        for hook in self._grad_hooks:
            hook(self)

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return Sub.apply(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return Sub.apply(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return Pow.apply(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return Pow.apply(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return MatMul.apply(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return MatMul.apply(other, self)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return Abs.apply(self)

    # Comparisons give boolean tensors, which carry no gradient.
    def _compare(self, ufunc: np.ufunc, other: Any) -> Tensor:
        return Tensor._from_op(ufunc(self._data, _unwrap(other)), None)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.equal, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(np.not_equal, other)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(np.less, other)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(np.less_equal, other)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(np.greater, other)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(np.greater_equal, other)

    def any(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor._from_op(np.any(self._data, axis=axis, keepdims=keepdims), None)

    def all(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor._from_op(np.all(self._data, axis=axis, keepdims=keepdims), None)

    # -- element-wise functions -----------------------------------------------------------------
    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def tanh(self) -> Tensor:
        return Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return ReLU.apply(self)

    def maximum(self, other: Any) -> Tensor:
        return Maximum.apply(self, other)

    def minimum(self, other: Any) -> Tensor:
        return Minimum.apply(self, other)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        return Clip.apply(self, low=min, high=max)

    clamp = clip

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype``; differentiable between float dtypes."""
        return Cast.apply(self, dtype=np.dtype(dtype))

    def clone(self) -> Tensor:
        """A copy of the data that stays in the graph (gradients flow back to self)."""
        return Cast.apply(self, dtype=self.dtype)

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return Var.apply(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return self.var(axis=axis, keepdims=keepdims, ddof=ddof).sqrt()

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return Min.apply(self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return LogSumExp.apply(self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return LogSoftmax.apply(self, axis=axis)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Index of the largest element (int64, no gradient)."""
        return Tensor._from_op(np.argmax(self._data, axis=axis, keepdims=keepdims), None)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor._from_op(np.argmin(self._data, axis=axis, keepdims=keepdims), None)

    # -- shape ----------------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge axes ``start_axis..end_axis`` into one (all of them by default, as in NumPy)."""
        if self.ndim == 0:
            return self.reshape(1)
        start = normalize_axis("flatten", start_axis, self.ndim)
        end = normalize_axis("flatten", end_axis, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
        merged = int(np.prod(self.shape[start:end + 1]))
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1:])

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        """Remove size-1 axes (all of them, or the ones named)."""
        if axis is None:
            axes = [i for i, n in enumerate(self.shape) if n == 1]
        else:
            axes = [normalize_axis("squeeze", a, self.ndim) for a in ((axis,) if isinstance(axis, int) else axis)]
            wrong = [a for a in axes if self.shape[a] != 1]
            if wrong:
                raise ValueError(f"squeeze: axis {wrong[0]} has size {self.shape[wrong[0]]}, not 1 (shape {self.shape})")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 axis at ``axis`` (NumPy's ``expand_dims``)."""
        axis = normalize_axis("unsqueeze", axis, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    expand_dims = unsqueeze

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute the axes as NumPy does: no argument reverses them; else ``axes`` is the new order.

        PyTorch's ``transpose(dim0, dim1)`` (swap two axes) is :meth:`swapaxes`.
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        if len(axes) != self.ndim:
            raise ValueError(
                f"transpose: got {len(axes)} axes {axes} for a tensor of shape {self.shape}; give all "
                f"{self.ndim} axes in their new order (to swap two axes use swapaxes)"
            )
        return Transpose.apply(self, axes=axes)

    permute = transpose

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        order = list(range(self.ndim))
        a, b = normalize_axis("swapaxes", axis1, self.ndim), normalize_axis("swapaxes", axis2, self.ndim)
        order[a], order[b] = order[b], order[a]
        return Transpose.apply(self, axes=tuple(order))

    @property
    def T(self) -> Tensor:
        """All axes reversed (the matrix transpose for 2-D), as in NumPy."""
        return self if self.ndim < 2 else self.transpose()

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped: a batch of transposed matrices."""
        return self.swapaxes(-1, -2)

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        """Broadcast to ``shape`` without copying (-1 keeps an axis); the gradient sums over the copies."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Expand.apply(self, shape=tuple(shape))

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return Expand.apply(self, shape=tuple(shape))

    def split(self, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
        return split(self, indices_or_sections, axis)

    # -- indexing -------------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        return GetItem.apply(self, index=_index(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        """``t[index] = value``, in place, with NumPy's indexing; it raises the version, as every in-place write does.

        A leaf that requires grad can be written only under ``no_grad()``. When ``t`` or ``value``
        requires grad (and gradients are on), the assignment is recorded: gradients flow to
        ``value`` through the positions written and to ``t``'s earlier history through the others.
        """
        self._assign("setitem", _index(index), value)

    # -- in-place writes ------------------------------------------------------------------------
    # Every in-place method goes through _write (or _assign, for plain assignment). As in PyTorch:
    # - it raises the version of the tensor's memory, so a graph that saved these values for its
    #   backward refuses to run it on the new ones (see autograd.note_write);
    # - a leaf that requires grad cannot be written while gradients are on (its gradient would be
    #   that of values it no longer holds): optimizers update parameters under no_grad();
    # - when the write involves a tensor that requires grad, it is recorded: the op runs as usual
    #   and this tensor takes the result's place in the graph (its grad_fn becomes the op's node).
    def _check_writable(self, op: str) -> None:
        if self.requires_grad and self._node is None and is_grad_enabled():
            raise RuntimeError(
                f"{op}: a leaf tensor that requires grad cannot be modified in place while gradients are "
                "recorded (its gradient would belong to values it no longer holds); write under no_grad(), "
                "as optimizers do, or into a clone()"
            )

    def _records(self, operands: tuple) -> bool:
        """Whether an in-place op on self with ``operands`` must be recorded in the graph."""
        if not is_grad_enabled():
            return False
        return self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands)

    def _write(self, op: str, function: type[Function], *operands: Any, **params: Any) -> Tensor:
        """Overwrite self with ``function(self, *operands, **params)``; returns self."""
        self._check_writable(op)
        result = function.apply(self, *operands, **params)
        if self._records(operands):
            return self._take_result(op, result)
        self._store(op, result._data)
        note_write(self._data, op)
        return self

    def _assign(self, op: str, index: Any, value: Any) -> Tensor:
        """``self[index] = value`` in place; returns self."""
        self._check_writable(op)
        if self._records((value,)):
            return self._take_result(op, SetItem.apply(self, value, index=index))
        try:
            self._data[index] = _unwrap(value)
        except (IndexError, ValueError, TypeError) as error:
            self._write_failed(op, error, np.shape(_unwrap(value)))
        note_write(self._data, op)
        return self

    def _store(self, op: str, array: np.ndarray) -> None:
        try:
            np.copyto(self._data, array, casting="same_kind")
        except (ValueError, TypeError) as error:
            self._write_failed(op, error, array.shape, array.dtype)

    def _write_failed(self, op: str, error: Exception, shape: tuple, dtype: Any = None) -> None:
        if not self._data.flags.writeable:
            raise ValueError(
                f"{op}: this tensor's memory is read-only (an expand()/broadcast_to() view, or a read-only "
                "array); write into a copy (clone())"
            ) from None
        if dtype is not None and not np.can_cast(dtype, self.dtype, "same_kind"):
            raise TypeError(f"{op}: cannot write a {dtype} result into a {self.dtype} tensor in place") from None
        kind = IndexError if isinstance(error, IndexError) else TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{op}: cannot write a value of shape {shape} into a tensor of shape {self.shape}: {error}") from None

    def _take_result(self, op: str, result: Tensor) -> Tensor:
        """The recorded in-place write: store ``result`` into self's memory and take its place in the graph."""
        if result.shape != self.shape:
            raise ValueError(
                f"{op}: the result has shape {result.shape}, which does not fit this tensor of shape {self.shape}"
            )
        node = result._node
        if node is not None:
            # The op may have saved the very values this write overwrites (mul_ keeps self's old
            # values for the other factor's gradient): it gets its own copy, as in PyTorch.
            root = memory_root(self._data)
            node.saved = tuple(
                s.copy() if isinstance(s, np.ndarray) and memory_root(s) is root else s for s in node.saved
            )
        self._store(op, result._data)
        note_write(self._data, op, recorded=node is not None)
        if node is not None:
            node.stamp = autograd._clock  # the write is part of this node: it is recorded after it
            node.output_dtype = self._data.dtype
            if self._node is not None and self._node.retains is not None:
                node.retains, self._node.retains = self._node.retains, None
            self._node = node
            self.requires_grad = True
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._write("+=", Add, other)

    def __isub__(self, other: Any) -> Tensor:
        return self._write("-=", Sub, other)

    def __imul__(self, other: Any) -> Tensor:
        return self._write("*=", Mul, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._write("/=", Div, other)

    def __ipow__(self, other: Any) -> Tensor:
        return self._write("**=", Pow, other)

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: ``self += alpha * other``; returns self."""
        return self._write("add_", Add, other if alpha == 1 else Mul.apply(other, alpha))

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: ``self -= alpha * other``; returns self."""
        return self._write("sub_", Sub, other if alpha == 1 else Mul.apply(other, alpha))

    def mul_(self, other: Any) -> Tensor:
        return self._write("mul_", Mul, other)

    def div_(self, other: Any) -> Tensor:
        return self._write("div_", Div, other)

    def pow_(self, other: Any) -> Tensor:
        return self._write("pow_", Pow, other)

    def neg_(self) -> Tensor:
        return self._write("neg_", Neg)

    def abs_(self) -> Tensor:
        return self._write("abs_", Abs)

    def exp_(self) -> Tensor:
        return self._write("exp_", Exp)

    def log_(self) -> Tensor:
        return self._write("log_", Log)

    def sqrt_(self) -> Tensor:
        return self._write("sqrt_", Sqrt)

    def tanh_(self) -> Tensor:
        return self._write("tanh_", Tanh)

    def sigmoid_(self) -> Tensor:
        return self._write("sigmoid_", Sigmoid)

    def relu_(self) -> Tensor:
        return self._write("relu_", ReLU)

    def clip_(self, min: float | None = None, max: float | None = None) -> Tensor:
        """In place: values below ``min`` become ``min``, above ``max`` become ``max``; returns self."""
        return self._write("clip_", Clip, low=min, high=max)

    clamp_ = clip_

    def fill_(self, value: Any) -> Tensor:
        """In place: every element becomes ``value`` (a number, or a one-element tensor); returns self."""
        if np.size(_unwrap(value)) != 1:
            raise ValueError(f"fill_: expected one value, got an array of shape {np.shape(_unwrap(value))}")
        return self._assign("fill_", Ellipsis, value)

    def zero_(self) -> Tensor:
        """In place: every element becomes 0; returns self."""
        return self._assign("zero_", Ellipsis, 0)

    def copy_(self, source: Any) -> Tensor:
        """In place: copy ``source``'s values (broadcast to this shape, converted to this dtype); returns self."""
        return self._assign("copy_", Ellipsis, source)


def _tensor(data: np.ndarray, node: Context | None) -> Tensor:
    """A Tensor holding ``data`` (an ndarray, as it is), made by ``node`` (None: a leaf); skips __init__'s checks."""
    t = _new(Tensor)
    t._data = data
    t.grad = None
    t._node = node
    t.requires_grad = node is not None
    return t


class HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` takes the hook off its tensor."""

    def __init__(self, tensor: Tensor, hook: Callable[[Tensor], Any]):
        self._tensor, self._hook = weakref.ref(tensor), hook

    def remove(self) -> None:
        tensor = self._tensor()
        if tensor is not None:
            tensor._grad_hooks = tuple(h for h in tensor._grad_hooks if h is not self._hook)


# -- creating tensors -------------------------------------------------------------------------------
def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (floats become float32 unless ``dtype`` is given)."""
    array = _as_array(data, dtype, copy=True)
    t = Tensor(array, dtype=array.dtype)  # Tensor() alone would turn a float64 request back into float32
    return t.requires_grad_(True) if requires_grad else t


def from_numpy(array: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A tensor sharing ``array``'s memory and keeping its dtype (float64 stays float64)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    return Tensor(array, dtype=array.dtype, requires_grad=requires_grad)


def _filled(op: str, shape: tuple, value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    dtype = np.dtype(dtype or DEFAULT_FLOAT)
    return Tensor(np.full(_shape_arg(op, shape), value, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def zeros(*shape: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("zeros", shape, 0, dtype, requires_grad)


def ones(*shape: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("ones", shape, 1, dtype, requires_grad)


def full(shape: Sequence[int] | int, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("full", (shape,) if isinstance(shape, int) else (tuple(shape),), fill_value, dtype, requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
    """Evenly spaced values in [start, stop): int64 for integer arguments, float32 otherwise."""
    if stop is None:
        start, stop = 0, start
    return Tensor(np.arange(start, stop, step), dtype=dtype)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    dtype = np.dtype(dtype or DEFAULT_FLOAT)
    return Tensor(np.eye(n, m, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def _sample_dtype(op: str, dtype: Any) -> np.dtype:
    """``dtype`` (float32 when None) for float samples: an integer dtype would truncate them all to 0."""
    dtype = np.dtype(dtype or DEFAULT_FLOAT)
    if dtype.kind != "f":
        raise TypeError(f"{op}: samples are floats, so dtype must be a float dtype, got {dtype}; use randint for integers")
    return dtype


def rand(*shape: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from the framework's generator (see ``manual_seed``)."""
    values = generator().random(_shape_arg("rand", shape))
    return Tensor(values, dtype=_sample_dtype("rand", dtype), requires_grad=requires_grad)


def randn(*shape: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the framework's generator (see ``manual_seed``)."""
    values = generator().standard_normal(_shape_arg("randn", shape))
    return Tensor(values, dtype=_sample_dtype("randn", dtype), requires_grad=requires_grad)


def randint(low: int, high: int, shape: Sequence[int], dtype: Any = int64) -> Tensor:
    """Integers in [low, high) from the framework's generator."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else (tuple(shape),)
    return Tensor(generator().integers(low, high, size=_shape_arg("randint", shape)), dtype=dtype)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


# -- functions of tensors ---------------------------------------------------------------------------
def exp(x: Tensor) -> Tensor:
    return Exp.apply(x)


def log(x: Tensor) -> Tensor:
    return Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt.apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


def matmul(a: Any, b: Any) -> Tensor:
    return MatMul.apply(a, b)


def maximum(a: Any, b: Any) -> Tensor:
    return Maximum.apply(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return Minimum.apply(a, b)


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    return Clip.apply(x, low=min, high=max)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Elements of ``a`` where ``condition`` is true, else of ``b`` (broadcasting)."""
    return Where.apply(np.asarray(_unwrap(condition)), a, b)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(x, axis=axis)


def logsumexp(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    return Stack.apply(*tensors, axis=axis)


def split(x: Tensor, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into equal sections (an int that divides the axis) or at the given indices, as ``np.split``."""
    axis = normalize_axis("split", axis, x.ndim)
    length = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or length % sections:
            raise ValueError(f"split: axis {axis} of length {length} does not divide into {sections} equal sections")
        bounds = [length // sections * i for i in range(1, sections)]
    else:
        bounds = [int(i) for i in indices_or_sections]
    edges = [0, *bounds, length]
    lead = (slice(None),) * axis
    return [x[lead + (slice(a, b),)] for a, b in zip(edges[:-1], edges[1:])]


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Pad with a constant; ``pad_width`` as in ``np.pad`` (an int, a (before, after) pair, or one pair per axis)."""
    return Pad.apply(x, pad_width=pad_width, value=value)


# -- shapes and memory layout (lesson 02) ---------------------------------------------------------------
def broadcast_shape(shape_a: Sequence[int], shape_b: Sequence[int]) -> tuple[int, ...]:
    """The shape of the result when arrays of ``shape_a`` and ``shape_b`` are broadcast together.

    NumPy's rule: line the shapes up at their last axis, padding the shorter one with 1s on the
    left; on each axis the two sizes must be equal or one of them must be 1, and the result takes
    the other size. ``(3, 1)`` and ``(4,)`` give ``(3, 4)``. A size of 0 follows the same rule.

    Parameters
    ----------
    shape_a, shape_b : sequence of int
        The two shapes; ``()`` is the shape of a scalar.

    Returns
    -------
    tuple of int
        The broadcast shape: as many axes as the longer of the two.

    Raises
    ------
    ValueError
        When an axis has two different sizes and neither is 1; the message names both shapes.
    """
    a, b = tuple(int(n) for n in shape_a), tuple(int(n) for n in shape_b)
    ndim = max(len(a), len(b))
    padded_a, padded_b = (1,) * (ndim - len(a)) + a, (1,) * (ndim - len(b)) + b
    result = []
    for axis, (m, n) in enumerate(zip(padded_a, padded_b)):
        if m != n and m != 1 and n != 1:
            raise ValueError(
                f"broadcast: shapes {a} and {b} cannot be broadcast together: axis {axis - ndim} has sizes "
                f"{m} and {n} (counting axes from the right, sizes must be equal or one of them 1)"
            )
        result.append(n if m == 1 else m)
    return tuple(result)


def contiguous_strides(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    """The strides of a C-contiguous (row-major) array of ``shape`` whose elements take ``itemsize`` bytes.

    A stride is the number of bytes to step in memory to move one position along an axis, so
    element ``[i, j, ...]`` lives ``i * strides[0] + j * strides[1] + ...`` bytes from the start.
    In row-major order the last axis is contiguous (its stride is ``itemsize``) and each earlier
    axis steps over one whole block of the axes after it:
    ``strides[k] = itemsize * shape[k + 1] * ... * shape[-1]``. A float32 ``(3, 4)`` array has
    strides ``(16, 4)``. (For an array with no elements NumPy may report other strides; they
    never matter there.)

    Parameters
    ----------
    shape : sequence of int
        The array's shape; ``()`` for a 0-d array.
    itemsize : int
        Bytes per element (``np.dtype(np.float32).itemsize`` is 4).

    Returns
    -------
    tuple of int
        One stride per axis, in bytes.
    """
    strides = []
    step = int(itemsize)
    for n in reversed(tuple(shape)):
        strides.append(step)
        step *= int(n)
    return tuple(reversed(strides))


# autograd.py and the ops import Tensor, and Tensor's methods use them: they are imported once
# Tensor exists, so either module can be imported first.
from . import autograd  # noqa: E402
from .autograd import is_grad_enabled, memory_root, note_write, version_of  # noqa: E402
from .ops.arithmetic import Add, Div, MatMul, Mul, Neg, Pow, Sub  # noqa: E402
from .ops.elementwise import Abs, Cast, Clip, Exp, Log, Maximum, Minimum, ReLU, Sigmoid, Sqrt, Tanh, Where  # noqa: E402
from .ops.indexing import Concatenate, GetItem, Pad, SetItem, Stack  # noqa: E402
from .ops.reduction import LogSumExp, Max, Mean, Min, Sum, Var  # noqa: E402
from .ops.shape import Expand, Reshape, Transpose  # noqa: E402
from .ops.softmax import LogSoftmax, Softmax  # noqa: E402
