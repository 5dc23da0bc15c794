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

from typing import Any, Iterator, Sequence

import numpy as np

from . import autograd
from .autograd import Context, is_grad_enabled
from .ops.arithmetic import Add, Div, MatMul, Mul, Neg, Pow, Sub
from .ops.elementwise import Abs, Cast, Clip, Exp, Log, Maximum, Minimum, ReLU, Sigmoid, Sqrt, Tanh, Where
from .ops.indexing import Concatenate, GetItem, Pad, Stack
from .ops.reduction import LogSumExp, Max, Mean, Min, Sum, Var
from .ops.shape import Expand, Reshape, Transpose
from .ops.softmax import LogSoftmax, Softmax
from .ops._axes import normalize_axis
from .random import generator

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
DEFAULT_FLOAT = float32


def _as_array(data: Any, dtype: Any = None, copy: bool = False) -> np.ndarray:
    """``data`` as a NumPy array: floats become float32 unless ``dtype`` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
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
    return x.data if isinstance(x, Tensor) else x


def _index(index: Any) -> Any:
    """An index for ``Tensor.__getitem__``: tensors and lists inside it become NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


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

    __slots__ = ("data", "requires_grad", "grad", "_node", "_retains_grad", "__weakref__", "__dict__")
    __array_ufunc__ = None  # make NumPy defer to Tensor's reflected operators (np.float32(2) * t)

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False):
        self.data: np.ndarray = _as_array(data, dtype)
        self.grad: Tensor | None = None
        self._node: Context | None = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, data: np.ndarray, node: Context | None) -> Tensor:
        """The result of an op: ``data`` as it is, recording ``node`` when it is not None."""
        t = Tensor.__new__(Tensor)
        # np.argmax(x) and comparisons of 0-d arrays give NumPy scalars; .data is always an ndarray
        data = data if isinstance(data, np.ndarray) else np.asarray(data)
        t.data, t.grad, t._node, t._retains_grad = data, None, node, False
        t.requires_grad = node is not None
        return t

    # -- what it is -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements (NumPy's meaning)."""
        return self.data.size

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    @property
    def is_leaf(self) -> bool:
        """True when no recorded op made this tensor (created by the user, or under ``no_grad``)."""
        return self._node is None

    @property
    def grad_fn(self) -> Context | None:
        """The recorded op that made this tensor (``.fn`` is its Function, ``.inputs`` its inputs), or None."""
        return self._node

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, threshold=64, edgeitems=3, prefix="Tensor(")
        extras = []
        if self.dtype not in (float32, int64, bool_):
            extras.append(f"dtype={self.dtype}")
        if self.requires_grad:
            extras.append(f"grad_fn={self._node.fn.__name__}" if self._node else "requires_grad=True")
        return "Tensor(" + ", ".join([body, *extras]) + ")"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(tensor)`` gives the data (converted when ``dtype`` asks)."""
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.data)

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
        """Keep ``.grad`` for this non-leaf tensor too after ``backward()``."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retains_grad = True

    def detach(self) -> Tensor:
        """The same data (shared) with no history: gradients stop here."""
        return Tensor._from_op(self.data, None)

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
            self.grad = Tensor._from_op(np.array(g, dtype=self.dtype, copy=True), None)
        else:
            self.grad.data += g

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
        return Tensor._from_op(ufunc(self.data, _unwrap(other)), None)

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
        return Tensor._from_op(np.any(self.data, axis=axis, keepdims=keepdims), None)

    def all(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor._from_op(np.all(self.data, axis=axis, keepdims=keepdims), None)

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
        return Tensor._from_op(np.argmax(self.data, axis=axis, keepdims=keepdims), None)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor._from_op(np.argmin(self.data, axis=axis, keepdims=keepdims), None)

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
        """Assign in place; only outside the graph (a tensor that requires grad: under ``no_grad()``)."""
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                "setitem: in-place assignment into a tensor that requires grad cannot be differentiated; "
                "build a new tensor (where(), concatenate()) or assign under no_grad()"
            )
        self.data[_index(index)] = _unwrap(value)


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
