"""Export a model to ONNX, the interchange format that onnxruntime, TensorRT and the browsers run.

:func:`export_onnx` walks a Sequential of the framework's layers and writes one ONNX operator (or
a few) per layer, with the weights stored in the file as initializers and the batch axis left
dynamic. It runs the model on the example input alongside, so every layer sees the shape it
really gets (a Dense layer after a convolution flattens first, as it does in the framework).
:func:`check_onnx` runs the file in onnxruntime and compares its outputs with the model's.

>>> import tempfile, numpy as np, tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Conv2D(3, 4, 3, padding=1), tt.BatchNorm2D(4), tt.ReLU(), tt.MaxPool2D(2),
...                     tt.Flatten(), tt.Dense(4 * 4 * 4, 10))
>>> path = export_onnx(net, np.zeros((1, 3, 8, 8), np.float32), tempfile.mkdtemp() + "/net.onnx")
>>> error = check_onnx(path, net, np.random.default_rng(0).normal(size=(5, 3, 8, 8)).astype(np.float32))
>>> error < 1e-5
True

Operators used (opset 17): Gemm, MatMul, Add, Conv, BatchNormalization, LayerNormalization, Relu,
LeakyRelu, Sigmoid, Tanh, Erf/Mul (GELU), Softmax, LogSoftmax, MaxPool, AveragePool,
GlobalAveragePool, Flatten, Reshape, Gather, Identity; TinyGPT's forward pass adds the attention
nodes of :mod:`.onnx_transformer`. Needs the ``interchange`` extra (onnx, and
onnxruntime for :func:`check_onnx`).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..autograd import no_grad
from ..layers import Dense, Dropout, Embedding, Flatten, Identity
from ..module import Module
from ..networks import Sequential
from ..normalization import BatchNorm, LayerNorm
from ..spatial import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from ..tensor import Tensor
from .extras import require
from .onnx_transformer import BY_CLASS_PATH, default_dynamic_axes

__all__ = ["export_onnx", "check_onnx", "OPSET"]

OPSET = 17  # the first opset with LayerNormalization; onnxruntime runs 7 to 21+


class OnnxGraph:
    """The nodes and weights of a graph under construction, with unique names."""

    def __init__(self) -> None:
        self.onnx = require("onnx", "export_onnx")
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: Counter = Counter()

    def name(self, hint: str) -> str:
        self._used[hint] += 1
        return hint if self._used[hint] == 1 else f"{hint}_{self._used[hint] - 1}"

    def constant(self, hint: str, array: np.ndarray) -> str:
        """Store ``array`` in the file as a named initializer; returns its name."""
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.require(array, requirements="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        """Append one node; returns the name of its (single) output."""
        output = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output


Converter = Callable[[OnnxGraph, Any, str, np.ndarray, str], str]


def _dense(g: OnnxGraph, layer: Dense, x: str, value: np.ndarray, where: str) -> str:
    w = layer.weight.data
    if value.ndim >= 3 and value.shape[-1] != layer.in_features:  # the framework flattens (N, C, H, W) first
        x, value = g.op("Flatten", [x], f"{where}.flatten", axis=1), value.reshape(value.shape[0], -1)
    bias = [g.constant(f"{where}.bias", layer.bias.data)] if layer.bias is not None else []
    if value.ndim == 2:
        return g.op("Gemm", [x, g.constant(f"{where}.weight", w), *bias], where, transB=1)
    y = g.op("MatMul", [x, g.constant(f"{where}.weight_t", w.T)], f"{where}.matmul")
    return g.op("Add", [y, *bias], where) if bias else y


def _conv(g: OnnxGraph, layer: Conv2D, x: str, value: np.ndarray, where: str) -> str:
    inputs = [x, g.constant(f"{where}.weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(g.constant(f"{where}.bias", layer.bias.data))
    (ph, pw) = layer.padding
    return g.op("Conv", inputs, where, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=[ph, pw, ph, pw])


def _batch_norm(g: OnnxGraph, layer: BatchNorm, x: str, value: np.ndarray, where: str) -> str:
    if not layer.track_running_stats:
        raise ValueError(f"export_onnx: {where} ({layer.label()}) keeps no running statistics, so its evaluation "
                         "output depends on the batch; ONNX cannot express that")
    c, dtype = layer.num_features, layer.running_mean.dtype
    scale = layer.weight.data if layer.affine else np.ones(c, dtype)
    shift = layer.bias.data if layer.affine else np.zeros(c, dtype)
    inputs = [x, g.constant(f"{where}.weight", scale), g.constant(f"{where}.bias", shift),
              g.constant(f"{where}.running_mean", layer.running_mean.data),
              g.constant(f"{where}.running_var", layer.running_var.data)]
    return g.op("BatchNormalization", inputs, where, epsilon=layer.eps)


def _layer_norm(g: OnnxGraph, layer: LayerNorm, x: str, value: np.ndarray, where: str) -> str:
    shape, dtype = layer.normalized_shape, value.dtype
    scale = layer.weight.data if layer.weight is not None else np.ones(shape, dtype)
    shift = layer.bias.data if layer.bias is not None else np.zeros(shape, dtype)
    return g.op("LayerNormalization", [x, g.constant(f"{where}.weight", scale), g.constant(f"{where}.bias", shift)],
                where, axis=-len(shape), epsilon=layer.eps)


def _gelu(g: OnnxGraph, layer: GELU, x: str, value: np.ndarray, where: str) -> str:
    """0.5 x (1 + erf(x / sqrt 2)), or the tanh form (the Gelu operator only arrives in opset 20)."""
    dtype = value.dtype
    half = g.constant(f"{where}.half", np.array(0.5, dtype))
    one = g.constant(f"{where}.one", np.array(1.0, dtype))
    if layer.approximate == "tanh":
        cube = g.op("Mul", [g.op("Mul", [x, x], f"{where}.sq"), x], f"{where}.cube")
        inner = g.op("Add", [x, g.op("Mul", [cube, g.constant(f"{where}.c", np.array(0.044715, dtype))], f"{where}.cc")],
                     f"{where}.inner")
        scaled = g.op("Mul", [inner, g.constant(f"{where}.k", np.array(math.sqrt(2 / math.pi), dtype))], f"{where}.scaled")
        core = g.op("Tanh", [scaled], f"{where}.tanh")
    else:
        core = g.op("Erf", [g.op("Mul", [x, g.constant(f"{where}.rsqrt2", np.array(1 / math.sqrt(2), dtype))],
                                 f"{where}.scaled")], f"{where}.erf")
    return g.op("Mul", [g.op("Mul", [x, half], f"{where}.halfx"), g.op("Add", [core, one], f"{where}.plus1")], where)


def _pool(op_type: str, **extra: Any) -> Converter:
    def convert(g: OnnxGraph, layer: Any, x: str, value: np.ndarray, where: str) -> str:
        (ph, pw) = layer.padding
        return g.op(op_type, [x], where, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                    pads=[ph, pw, ph, pw], **extra)
    return convert


def _flatten(g: OnnxGraph, layer: Flatten, x: str, value: np.ndarray, where: str) -> str:
    ndim = value.ndim
    start, end = layer.start_axis % ndim, layer.end_axis % ndim
    if start == 1 and end == ndim - 1:
        return g.op("Flatten", [x], where, axis=1)
    out_shape = value.reshape(*value.shape[:start], -1, *value.shape[end + 1:]).shape
    # the batch axis stays dynamic: 0 copies it from the input, -1 absorbs it when it is merged
    target = [0, *out_shape[1:]] if start > 0 else [-1, *out_shape[1:]]
    return g.op("Reshape", [x, g.constant(f"{where}.shape", np.array(target, np.int64))], where)


def _simple(op_type: str, **attributes: Callable[[Any], Any]) -> Converter:
    def convert(g: OnnxGraph, layer: Any, x: str, value: np.ndarray, where: str) -> str:
        return g.op(op_type, [x], where, **{k: read(layer) for k, read in attributes.items()})
    return convert


def _global_avg_pool(g: OnnxGraph, layer: GlobalAvgPool2D, x: str, value: np.ndarray, where: str) -> str:
    return g.op("Flatten", [g.op("GlobalAveragePool", [x], f"{where}.pool")], where, axis=1)


def _embedding(g: OnnxGraph, layer: Embedding, x: str, value: np.ndarray, where: str) -> str:
    return g.op("Gather", [g.constant(f"{where}.weight", layer.weight.data), x], where, axis=0)


#: layer class -> how it becomes ONNX nodes (exact classes; LogSoftmax before its base Softmax)
CONVERTERS: dict[type, Converter] = {
    Dense: _dense,
    Conv2D: _conv,
    LayerNorm: _layer_norm,
    GELU: _gelu,
    MaxPool2D: _pool("MaxPool"),
    AvgPool2D: _pool("AveragePool", count_include_pad=1),  # the framework counts zero padding in the mean
    GlobalAvgPool2D: _global_avg_pool,
    Flatten: _flatten,
    Embedding: _embedding,
    ReLU: _simple("Relu"),
    LeakyReLU: _simple("LeakyRelu", alpha=lambda m: m.negative_slope),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    LogSoftmax: _simple("LogSoftmax", axis=lambda m: m.axis),
    Softmax: _simple("Softmax", axis=lambda m: m.axis),
    Dropout: _simple("Identity"),  # exported in eval mode, where dropout passes its input through
    Identity: _simple("Identity"),
}


def _converter(layer: Module) -> Converter | None:
    if isinstance(layer, BatchNorm):
        return _batch_norm
    return CONVERTERS.get(type(layer)) or BY_CLASS_PATH.get(f"{type(layer).__module__}.{type(layer).__qualname__}")


def _emit(g: OnnxGraph, layer: Module, x: str, value: np.ndarray, where: str) -> tuple[str, np.ndarray]:
    """Nodes for ``layer`` applied to ``x`` (whose value on the example is ``value``); returns the output and its value."""
    if isinstance(layer, Sequential):
        for name, child in layer.named_children():
            x, value = _emit(g, child, x, value, f"{where}.{name}" if where else name)
        return x, value
    convert = _converter(layer)
    if convert is None:
        known = ", ".join(sorted({c.__name__ for c in CONVERTERS} | {"BatchNorm1D", "BatchNorm2D", "Sequential", "TinyGPT"}))
        raise TypeError(f"export_onnx: cannot export {where or 'the model'} ({layer.label()}); exportable layers: {known}")
    out = convert(g, layer, x, value, where or type(layer).__name__.lower())
    result = layer(Tensor(value, dtype=value.dtype))
    return out, result.numpy()


def export_onnx(
    model: Module,
    example_input: Any,
    path: str | os.PathLike,
    *,
    opset: int = OPSET,
    input_name: str = "input",
    output_name: str = "output",
    dynamic_axes: dict[int, str] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file with a dynamic batch axis; returns the path.

    Parameters
    ----------
    model : Module
        A Sequential (nested ones too) of Dense, Conv2D, BatchNorm1D/2D, LayerNorm, the
        activations, MaxPool2D/AvgPool2D/GlobalAvgPool2D, Flatten, Dropout, Identity and Embedding.
        It is exported in eval mode (Dropout off, BatchNorm on running statistics) and left in the
        mode it was in.
    example_input : array_like or Tensor
        A batch like the real input; its shape past the batch axis and its dtype are fixed in the file.
    path : path
        Where the ``.onnx`` file goes (written to a temporary file, then renamed).
    opset : int
        The ONNX operator set (at least 17).
    dynamic_axes : dict, optional
        Input axes left free in the file, by position, with their names; the output's axes of the
        same positions are free too. Default ``{0: "batch"}``, and ``{0: "batch", 1: "sequence"}``
        for TinyGPT (any prompt length up to its max_length).

    Returns
    -------
    Path
        ``path``; the file passes ``onnx.checker.check_model(full_check=True)``.
    """
    onnx = require("onnx", "export_onnx")
    if opset < OPSET:
        raise ValueError(f"export_onnx: opset {opset} lacks LayerNormalization; use {OPSET} or later")
    import tinytorch

    value = np.asarray(example_input.data if isinstance(example_input, Tensor) else example_input)
    if value.ndim == 0:
        raise ValueError(f"export_onnx: example_input must be a batch (its first axis the batch axis), got a scalar")
    g = OnnxGraph()
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out, out_value = _emit(g, model, input_name, value, "")
    finally:
        model.train(was_training)
    g.nodes.append(onnx.helper.make_node("Identity", [out], [output_name], name=output_name))

    axes = default_dynamic_axes(model) if dynamic_axes is None else dict(dynamic_axes)

    def tensor_info(name: str, array: np.ndarray) -> Any:
        element = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        return onnx.helper.make_tensor_value_info(name, element, [axes.get(i, n) for i, n in enumerate(array.shape)])

    graph = onnx.helper.make_graph(g.nodes, type(model).__name__, [tensor_info(input_name, value)],
                                   [tensor_info(output_name, out_value)], initializer=g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="tinytorch", producer_version=tinytorch.__version__)
    proto.ir_version = min(proto.ir_version, 8)  # IR 8 is what onnxruntime releases of the last years all read
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(proto.SerializeToString())
    os.replace(temporary, path)
    return path


def check_onnx(path: str | os.PathLike, model: Module, inputs: Any, rtol: float = 1e-3, atol: float = 1e-5) -> float:
    """Run the ONNX file in onnxruntime on ``inputs`` and compare with ``model``; returns the largest absolute difference.

    Raises
    ------
    ValueError
        When any output differs by more than ``atol + rtol * |expected|`` (numpy.testing's rule),
        naming the worst element.
    """
    ort = require("onnxruntime", "check_onnx")
    array = np.asarray(inputs.data if isinstance(inputs, Tensor) else inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: array})
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            expected = model(Tensor(array, dtype=array.dtype)).numpy()
    finally:
        model.train(was_training)
    if got.shape != expected.shape:
        raise ValueError(f"check_onnx: onnxruntime returned shape {got.shape}; the model returns {expected.shape}")
    difference = np.abs(got.astype(np.float64) - expected)
    bad = difference > atol + rtol * np.abs(expected)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"check_onnx: {int(bad.sum())} outputs differ beyond rtol={rtol}, atol={atol}; e.g. at {list(i)} "
                         f"onnxruntime gives {got[i]!r}, the model {expected[i]!r}")
    return float(difference.max())
