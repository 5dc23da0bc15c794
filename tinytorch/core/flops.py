"""Counting floating-point operations (lesson 14): per op, per layer, forward and backward.

**The convention.** A multiply-add counts as 2 FLOPs, and only the ops that do matrix products are
counted: convolutions, Dense layers, ``@``, attention. This is what ``torch.utils.flop_counter`` and the
PyTorch profiler report, so figures compare one to one. fvcore, ptflops and thop count
multiply-adds ("MACs") instead, which are half as many: ``FlopCount.forward_macs`` gives that view.
Bias additions, normalisation, activations and pooling are not counted (their cost is memory
traffic, not arithmetic; the profiler's times show it).

A convolution of an (N, C, H, W) input with F filters of (C, KH, KW) does, for each of the
N * F * Ho * Wo outputs, C * KH * KW multiply-adds::

    FLOPs = 2 * N * F * Ho * Wo * C * KH * KW

Its backward computes the gradient of the input and of the weight, each a product of the same
size: 2x the forward, or 1x when only one of them is needed (the first layer's input needs none).

>>> from tinytorch import Conv2D, Dense, Flatten, Sequential
>>> model = Sequential(Conv2D(3, 8, kernel_size=3, padding=1), Flatten(), Dense(8 * 32 * 32, 10))
>>> count = count_flops(model, (1, 3, 32, 32))
>>> count.forward == conv2d_flops((1, 3, 32, 32), (8, 3, 3, 3), padding=1) + 2 * 8 * 32 * 32 * 10
True
>>> [(layer.name, layer.kind, layer.forward) for layer in count.layers]
[('0', 'Conv2D', 442368), ('2', 'Dense', 163840)]
>>> count.backward == count.layers[0].forward + 2 * count.layers[1].forward   # conv: weight grad only
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from .exercises import exercise
from .observers import observing

Shape = tuple[int, ...]

CONVENTION = (
    "FLOPs count a multiply-add as 2 (as torch.utils.flop_counter and the PyTorch profiler); only matrix "
    "products are counted (convolutions, Dense, matmul, attention), not bias adds, normalisation, activations or "
    "pooling; MACs = FLOPs / 2 (fvcore, ptflops, thop)."
)


def _ints(op: str, name: str, value: Any, length: int | None = None) -> Shape:
    try:
        shape = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a sequence of ints, got {value!r}") from None
    if length is not None and len(shape) != length:
        raise ValueError(f"{op}: {name} must have {length} entries, got {value!r}")
    if any(v < 0 for v in shape):
        raise ValueError(f"{op}: {name} must not be negative, got {value!r}")
    return shape


def _pair(op: str, name: str, value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if np.ndim(value) == 0 else _ints(op, name, value, 2)  # type: ignore[return-value]


@exercise
def conv2d_flops(input_shape: Iterable[int], weight_shape: Iterable[int], stride: Any = 1, padding: Any = 0) -> int:
    """FLOPs of one 2-D convolution's forward pass, a multiply-add counted as 2 (bias not counted).

    Every output element is a dot product over one (C, KH, KW) window, so the count is
    ``2 * N * F * Ho * Wo * C * KH * KW`` with ``Ho = (H + 2 * padding - KH) // stride + 1``
    (``Wo`` likewise).

    Parameters
    ----------
    input_shape : (N, C, H, W)
        The input batch's shape.
    weight_shape : (F, C, KH, KW)
        The filters' shape.
    stride, padding : int or (int, int)
        As given to the convolution.

    Returns
    -------
    int
        The number of floating-point operations.

    >>> conv2d_flops((1, 3, 32, 32), (32, 3, 3, 3), padding=1)     # the CIFAR CNN's first layer
    1769472
    """
    n, c, h, w = _ints("conv2d_flops", "input_shape", input_shape, 4)
    f, c_w, kh, kw = _ints("conv2d_flops", "weight_shape", weight_shape, 4)
    if c_w != c:
        raise ValueError(f"conv2d_flops: input_shape has {c} channels but weight_shape expects {c_w}")
    (sh, sw), (ph, pw) = _pair("conv2d_flops", "stride", stride), _pair("conv2d_flops", "padding", padding)
    if min(sh, sw) < 1:
        raise ValueError(f"conv2d_flops: stride must be at least 1, got {stride!r}")
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"conv2d_flops: the {kh}x{kw} kernel does not fit the padded {h + 2 * ph}x{w + 2 * pw} input")
    return 2 * n * f * ho * wo * c * kh * kw


def matmul_flops(a_shape: Iterable[int], b_shape: Iterable[int]) -> int:
    """FLOPs of ``a @ b`` (NumPy's rules: batch axes broadcast, 1-D operands allowed): 2 * outputs * K."""
    a, b = _ints("matmul_flops", "a_shape", a_shape), _ints("matmul_flops", "b_shape", b_shape)
    if not a or not b:
        raise ValueError(f"matmul_flops: operands need at least one dimension, got {a} and {b}")
    a2, b2 = ((1,) + a if len(a) == 1 else a), (b + (1,) if len(b) == 1 else b)  # a vector is a row / a column
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul_flops: shapes {a} and {b} do not align: {a2[-1]} != {b2[-2]}")
    out = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    return 2 * math.prod(out) * a2[-1]


# -- per-op formulas ----------------------------------------------------------------------------------
# A forward formula gets the shapes of the op's inputs (None for a non-array input) and of its output;
# a backward formula the forward's input shapes, the incoming gradient's shape, and which input
# gradients the backward computed.
ForwardFormula = Callable[[tuple, Shape], int]
BackwardFormula = Callable[[tuple, Shape, tuple], int]


@dataclass(frozen=True)
class FlopFormula:
    """How many FLOPs one call of an op does, forward and backward."""

    forward: ForwardFormula
    backward: BackwardFormula


def _product_backward(inputs: tuple, grad: Shape, computed: tuple, reduce: int) -> int:
    # Both gradients of a product are products of the same size as the forward: 2 * outputs * K each.
    per_gradient = 2 * math.prod(grad) * reduce
    return per_gradient * sum(bool(done) for done in computed[:2])


def _linear_forward(inputs: tuple, out: Shape) -> int:
    return 2 * math.prod(out) * inputs[0][-1]


def _linear_backward(inputs: tuple, grad: Shape, computed: tuple) -> int:
    return _product_backward(inputs, grad, computed, inputs[0][-1])


def _conv_forward(inputs: tuple, out: Shape) -> int:
    return 2 * math.prod(out) * math.prod(inputs[1][1:])


def _conv_backward(inputs: tuple, grad: Shape, computed: tuple) -> int:
    return _product_backward(inputs, grad, computed, math.prod(inputs[1][1:]))


def _fused_conv_forward(inputs: tuple, out: Shape) -> int:
    # The output may be pooled, so the product's size comes from the input: the fused op runs only
    # on convolutions that keep the input's (H, W) (stride 1, "same" padding; Conv2D.eval_fusion).
    x, weight = inputs[0], inputs[1]
    return 2 * x[0] * weight[0] * x[2] * x[3] * math.prod(weight[1:])


def _attention_sizes(inputs: tuple) -> tuple[int, int, int]:
    """(batch * L * S, E, Ev) of an attention call; a packed (B, L, 3E) projection comes with k = v = None."""
    q, k, v = inputs[:3]
    if k is None:  # MultiHeadAttentionFunction's packed self-attention: q holds [q | k | v]
        e = q[-1] // 3
        return q[0] * q[1] * q[1], e, e
    batch = math.prod(np.broadcast_shapes(q[:-2], k[:-2], v[:-2]))
    return batch * q[-2] * k[-2], q[-1], v[-1]


def _attention_forward(inputs: tuple, out: Shape) -> int:
    # scores = q kᵀ (E multiply-adds each) and out = probs v (Ev each) over every (query, key) pair;
    # the heads split E between them, so the count does not depend on how many there are.
    pairs, e, ev = _attention_sizes(inputs)
    return 2 * pairs * (e + ev)


def _attention_backward(inputs: tuple, grad: Shape, computed: tuple) -> int:
    # dprobs = g vᵀ and dv = probsᵀ g (Ev each), dq = dscores k and dk = dscoresᵀ q (E each). The kernel
    # keeps the forward's probabilities, so unlike torch's count (which assumes flash attention) there
    # is no recomputation of q kᵀ here.
    pairs, e, ev = _attention_sizes(inputs)
    return 2 * pairs * (2 * e + 2 * ev)


FLOP_FORMULAS: dict[str, FlopFormula] = {
    "MatMul": FlopFormula(_linear_forward, _linear_backward),  # 2 * outputs * K, K = a's last axis
    "LinearFunction": FlopFormula(_linear_forward, _linear_backward),
    "Conv2DFunction": FlopFormula(_conv_forward, _conv_backward),
    "FusedConv2DFunction": FlopFormula(_fused_conv_forward, _conv_backward),  # evaluation only: never a backward
    "ScaledDotProductAttentionFunction": FlopFormula(_attention_forward, _attention_backward),
    "MultiHeadAttentionFunction": FlopFormula(_attention_forward, _attention_backward),
}


def register_flop_formula(op: str, forward: ForwardFormula, backward: BackwardFormula) -> None:
    """Count FLOPs for the ``Function`` subclass named ``op`` (e.g. an int8 layer's op) from now on.

    ``forward(input_shapes, output_shape)`` and ``backward(input_shapes, grad_shape, computed)``
    return ints; ``input_shapes`` holds None for an input that is not an array, and ``computed`` a
    bool per forward input: whether the backward returned its gradient.
    """
    FLOP_FORMULAS[op] = FlopFormula(forward, backward)


def op_flops(op: str, phase: str, input_shapes: tuple, output: Any) -> int | None:
    """FLOPs of one recorded op call, or None when the op has no formula (it is not counted).

    For ``phase == "forward"``, ``output`` is the output's shape. For ``"backward"``,
    ``input_shapes`` starts with the incoming gradient's shape, then the forward's input shapes
    (absent when the forward ran before observing began: then None), and ``output`` says which
    input gradients were computed (a tuple of bools).
    """
    formula = FLOP_FORMULAS.get(op)
    if formula is None:
        return None
    if phase == "forward":
        return int(formula.forward(input_shapes, output))
    if len(input_shapes) < 2:  # the forward ran before observing began: its input shapes are unknown
        return None
    return int(formula.backward(input_shapes[1:], input_shapes[0], output))


def shape_of(value: Any) -> Shape | None:
    """An array's shape; None for anything else (numbers, None, tensors are never passed to ops)."""
    return value.shape if isinstance(value, np.ndarray) else None


def computed_gradients(result: Any) -> tuple[bool, ...]:
    """For a backward's result: which input gradients it returned (not None)."""
    return tuple(r is not None for r in result) if isinstance(result, tuple) else (result is not None,)


def flops_unit(values: Iterable[int | None], name: str = "FLOPs") -> tuple[float, str]:
    """(scale, header) for a column of counts, chosen as PyTorch's profiler does from the smallest non-zero
    count: 5120 -> (1e-3, "KFLOPs"), so that every row shows at least one significant digit."""
    counted = [v for v in values if v]
    prefixes = ["", "K", "M", "G", "T", "P"]
    if not counted:
        return 1.0, name
    power = int(max(0.0, min(math.log10(min(counted)) / 3, len(prefixes) - 1)))
    return 10.0 ** (-3 * power), prefixes[power] + name


# -- counting a model ---------------------------------------------------------------------------------
@dataclass
class LayerFlops:
    """What one module did itself (not counting the modules inside it)."""

    name: str  # dotted path in the model ("0", "blocks.1.attn"); "" is the model itself
    kind: str  # the module's class name
    output_shape: Shape | None = None
    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward


class FlopCounter:
    """Count the FLOPs of every op run inside a ``with`` block, per module and per op.

    Like ``torch.utils.flop_counter.FlopCounterMode``: ops are attributed to the innermost module
    running when their forward ran, and a backward to the module of its forward.

    >>> from tinytorch import Dense, randn
    >>> layer = Dense(4, 3)
    >>> with FlopCounter(layer) as counter:
    ...     layer(randn(2, 4, requires_grad=True)).sum().backward()
    >>> counter.forward, counter.backward          # 2 * (2 * 3) * 4 forward; dx and dW backward
    (48, 96)
    """

    def __init__(self, model: Any = None):
        self._names = {id(m): name for name, m in model.named_modules()} if model is not None else {}
        self.layers: dict[int, LayerFlops] = {}
        self.by_op: dict[str, int] = {}
        self._modules: list[Any] = []
        self._forward_owner: dict[tuple, int] = {}  # (op, ids of its input arrays) -> id of its module
        self._outside = LayerFlops("(outside modules)", "")

    def __enter__(self) -> FlopCounter:
        self._observing = observing(self)
        self._observing.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._observing.__exit__(*exc)

    @property
    def forward(self) -> int:
        return sum(layer.forward for layer in self._all())

    @property
    def backward(self) -> int:
        return sum(layer.backward for layer in self._all())

    def _all(self) -> list[LayerFlops]:
        return [*self.layers.values(), self._outside]

    def _layer(self, key: int | None) -> LayerFlops:
        if key is None:
            return self._outside
        return self.layers[key]

    # -- the observer protocol ----------------------------------------------------------------------
    def op_begin(self, name: str, phase: str, inputs: tuple) -> tuple:
        shapes = tuple(shape_of(a) for a in inputs)
        array_ids = tuple(id(a) for a in (inputs if phase == "forward" else inputs[1:]) if isinstance(a, np.ndarray))
        if phase == "forward":
            owner = id(self._modules[-1]) if self._modules else None
            if name in FLOP_FORMULAS:
                self._forward_owner[(name, array_ids)] = owner
        else:
            owner = self._forward_owner.get((name, array_ids))
        return name, phase, shapes, owner

    def op_end(self, token: tuple, result: Any) -> None:
        name, phase, shapes, owner = token
        if name not in FLOP_FORMULAS or result is None:  # no formula, or the op raised
            return
        output = shape_of(result) if phase == "forward" else computed_gradients(result)
        flops = op_flops(name, phase, shapes, output) or 0
        layer = self._layer(owner if owner in self.layers else None)
        if phase == "forward":
            layer.forward += flops
        else:
            layer.backward += flops
        key = name if phase == "forward" else f"{name}Backward"
        self.by_op[key] = self.by_op.get(key, 0) + flops

    def wrap_kernel(self, name: str, function: Callable) -> Callable:
        return function

    def module_begin(self, module: Any, args: tuple) -> Any:
        if id(module) not in self.layers:
            self.layers[id(module)] = LayerFlops(self._names.get(id(module), type(module).__name__), type(module).__name__)
        self._modules.append(module)
        return module

    def module_end(self, token: Any, output: Any) -> None:
        while self._modules and self._modules.pop() is not token:
            pass
        shape = getattr(output, "shape", None)
        if shape is not None:
            self.layers[id(token)].output_shape = tuple(shape)


@dataclass
class FlopCount:
    """The result of :func:`count_flops`: per layer and in total, forward and backward."""

    input_shape: Shape
    layers: list[LayerFlops] = field(default_factory=list)
    convention: str = CONVENTION

    @property
    def forward(self) -> int:
        return sum(layer.forward for layer in self.layers)

    @property
    def backward(self) -> int:
        return sum(layer.backward for layer in self.layers)

    @property
    def total(self) -> int:
        """One training step's arithmetic: forward plus backward."""
        return self.forward + self.backward

    @property
    def batch_size(self) -> int:
        return self.input_shape[0] if self.input_shape else 1

    @property
    def forward_per_sample(self) -> float:
        return self.forward / self.batch_size

    @property
    def forward_macs(self) -> int:
        """The forward pass in multiply-adds, the unit of fvcore, ptflops and thop (FLOPs / 2)."""
        return self.forward // 2

    @property
    def backward_macs(self) -> int:
        return self.backward // 2

    def table(self, macs: bool = False) -> str:
        """Per-layer figures, then the totals, in the unit of the forward total (``MFLOPs``, ``KMACs`` ...)."""
        divide = 2 if macs else 1
        scale, unit = flops_unit([max(self.forward, self.backward) // divide], "MACs" if macs else "FLOPs")
        rows = [(l.name or "(model)", l.kind, str(l.output_shape or ""), l.forward, l.backward) for l in self.layers]
        rows.append(("total", "", "", self.forward, self.backward))
        titles = ("layer", "type", "output shape", f"forward {unit}", f"backward {unit}")
        cells = [(n, k, s, f"{f // divide * scale:.3f}", f"{b // divide * scale:.3f}") for n, k, s, f, b in rows]
        widths = [max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)]

        def line(values: tuple) -> str:
            text = [f"{v:<{w}}" for v, w in zip(values[:3], widths)] + [f"{v:>{w}}" for v, w in zip(values[3:], widths[3:])]
            return "  ".join(text).rstrip()

        return "\n".join([f"FLOPs for input {self.input_shape}", line(titles), *(line(c) for c in cells)])

    def __str__(self) -> str:
        return self.table()


def count_flops(model: Any, input_shape: Iterable[int], dtype: Any = np.float32, backward: bool = True) -> FlopCount:
    """Count the FLOPs ``model`` does on an input of ``input_shape``, per layer, forward and backward.

    The model runs once on zeros of that shape (forward in evaluation mode, then a backward pass
    from an all-ones output gradient); its training flags, its parameters' gradients and the
    random generator are left as they were. Layers without counted ops are left out. The
    convention (a multiply-add is 2 FLOPs) is in :data:`CONVENTION`.

    Parameters
    ----------
    model : Module
        Any TinyTorch module (or a callable on tensors; then its ops count as "(outside modules)").
    input_shape : tuple of int
        The whole input's shape, batch axis first: ``(1, 3, 32, 32)`` for one CIFAR-10 image.
    dtype : dtype
        Of the input (``np.int64`` for models that take token ids).
    backward : bool
        Also run the backward pass and count it.

    Returns
    -------
    FlopCount
        ``.forward``, ``.backward``, ``.layers`` (one :class:`LayerFlops` per module that did
        counted work, in the order they first ran), ``.table()``.
    """
    from . import random as tt_random
    from .autograd import no_grad
    from .tensor import Tensor

    shape = _ints("count_flops", "input_shape", input_shape)
    modules = model.modules() if hasattr(model, "modules") else []
    training = [(m, m.training) for m in modules]
    parameters = model.parameters() if hasattr(model, "parameters") else []
    grads = [(p, p.grad) for p in parameters]
    rng = tt_random.get_rng_state()
    x = Tensor(np.zeros(shape, dtype=dtype), dtype=np.dtype(dtype))
    try:
        if hasattr(model, "eval"):
            model.eval()
        for p in parameters:
            p.grad = None
        with FlopCounter(model if hasattr(model, "named_modules") else None) as counter:
            if backward:
                out = model(x)
                if isinstance(out, Tensor) and out.requires_grad:
                    out.backward(np.ones(out.shape, dtype=out.dtype))
            else:
                with no_grad():
                    model(x)
    finally:
        for m, flag in training:
            object.__setattr__(m, "training", flag)
        for p, g in grads:
            p.grad = g
        tt_random.set_rng_state(rng)
    layers = [layer for layer in counter.layers.values() if layer.total]
    if counter._outside.total:
        layers.append(counter._outside)
    return FlopCount(shape, layers)
