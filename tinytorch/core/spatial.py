"""Spatial layers (lesson 06): convolution, pooling and batch normalisation of (N, C, H, W) images.

A convolution slides a (C, KH, KW) filter over the image and takes a dot product at every
position; F filters give F output channels. Its output size follows from the geometry alone:

    Ho = (H + 2 * padding - KH) // stride + 1        (and the same for W)

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> conv = Conv2D(3, 16, kernel_size=3, padding=1)
>>> conv
Conv2D(3 -> 16, kernel_size=(3, 3), padding=(1, 1))
>>> conv(tt.randn(2, 3, 32, 32)).shape
(2, 16, 32, 32)
>>> MaxPool2D(2)(tt.randn(2, 16, 32, 32)).shape
(2, 16, 16, 16)

The arithmetic runs in the kernels (``kernels.conv2d_forward`` and friends: compiled, or the
NumPy reference in ``tinytorch/_kernels/reference.py``); this module checks shapes, keeps the
parameters and connects the kernels to autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import autograd, kernels
from .activations import ReLU
from .autograd import Function
from .exercises import exercise
from .init import default_weight_init_
from .module import Module, Parameter, as_input
from .normalization import BatchNorm
from .tensor import Tensor

IntPair = int | tuple[int, int]


def _pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each at least ``minimum``, as an (h, w) tuple."""
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _output_hw(
    op: str, input_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[int, int]:
    """(Ho, Wo) of a window sliding over the last two axes of ``input_shape``; an error names ``op``."""
    h, w = input_shape[-2:]
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    if kernel[0] > hp or kernel[1] > wp:
        raise ValueError(
            f"{op} got input of shape {tuple(input_shape)}: the {kernel[0]}x{kernel[1]} kernel is larger than "
            f"the padded input {hp}x{wp} (padding {padding})"
        )
    return (hp - kernel[0]) // stride[0] + 1, (wp - kernel[1]) // stride[1] + 1


@exercise
def conv2d_output_shape(input_hw: tuple[int, int], kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0) -> tuple[int, int]:
    """The (Ho, Wo) a convolution or pooling window produces on an (H, W) input.

    Padding adds ``padding`` rows (columns) on each side; the window fits
    ``(H + 2 * padding - kernel) // stride + 1`` times along the height, likewise the width.

    Parameters
    ----------
    input_hw : (int, int)
        Height and width of the input.
    kernel_size, stride, padding : int or (int, int)
        The window's size, its step, and the zero padding on each side.

    Returns
    -------
    (int, int)
        The output's height and width. A kernel larger than the padded input is an error.
    """
    kernel = _pair("conv2d_output_shape", "kernel_size", kernel_size, 1)
    step = _pair("conv2d_output_shape", "stride", stride, 1)
    pad = _pair("conv2d_output_shape", "padding", padding, 0)
    return _output_hw("conv2d_output_shape", tuple(input_hw), kernel, step, pad)


@exercise
def im2col(x: Any, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Every (C, KH, KW) window of an (N, C, H, W) image batch, flattened into one row each.

    Row ``(n * Ho + i) * Wo + j`` holds the window whose top-left corner is at
    ``(i * stride - padding, j * stride - padding)`` of image ``n`` (zero padding), its values in
    (c, a, b) order: the order of ``weight.reshape(F, C * KH * KW)``. A convolution is then one
    matrix product, ``im2col(x) @ weight.reshape(F, -1).T``, the way fast implementations do it
    (the compiled kernel builds the same matrix, transposed).

    Parameters
    ----------
    x : array_like or Tensor
        (N, C, H, W) images.
    kernel_size, stride, padding : int or (int, int)
        The window, its step, and the zero padding on each side.

    Returns
    -------
    numpy.ndarray
        Shape (N * Ho * Wo, C * KH * KW), the dtype of ``x``; (Ho, Wo) from :func:`conv2d_output_shape`.
    """
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    _check_image("im2col", x.shape, None)
    kernel = _pair("im2col", "kernel_size", kernel_size, 1)
    step, pad = _pair("im2col", "stride", stride, 1), _pair("im2col", "padding", padding, 0)
    ho, wo = _output_hw("im2col", x.shape, kernel, step, pad)
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=(2, 3))  # (N, C, Hp', Wp', KH, KW), a view
    windows = windows[:, :, : (ho - 1) * step[0] + 1 : step[0], : (wo - 1) * step[1] + 1 : step[1]]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(x.shape[0] * ho * wo, -1)


def _check_image(op: str, shape: tuple[int, ...], channels: int | None) -> None:
    if len(shape) != 4:
        expected = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{op} got input of shape {shape}; expected 4-D input {expected}")
    if channels is not None and shape[1] != channels:
        raise ValueError(f"{op} got input of shape {shape} with {shape[1]} channels; expected {channels}")


# -- convolution ------------------------------------------------------------------------------------
class Conv2DFunction(Function):
    """out = conv2d(x, weight) + bias, through ``kernels.conv2d_forward`` / ``conv2d_backward``."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        x = np.ascontiguousarray(x)  # copied once here, not again by the backward kernel
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return kernels.conv2d_forward(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved
        need_x, _, need_b = ctx.needs_input_grad
        return kernels.conv2d_backward(
            x, weight, np.ascontiguousarray(grad), ctx.stride, ctx.padding, need_input_grad=need_x, need_bias_grad=need_b
        )


class FusedConv2DFunction(Function):
    """Evaluation only: a convolution, then ReLU and a max-pool, in one kernel call (``kernels.conv2d_fused_forward``).

    A batch norm in evaluation mode comes folded into ``weight`` and ``bias`` (see
    :meth:`Conv2D.eval_fusion`). It runs only when no graph is recorded, so it has no backward.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, relu, pool):
        return kernels.conv2d_fused_forward(np.ascontiguousarray(x), weight, bias, stride, padding, relu=relu, pool=pool)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("FusedConv2DFunction runs only without a graph (evaluation, no gradient), so it has no backward")


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """2-D convolution (cross-correlation, as every framework computes it) of (N, C, H, W) input.

    ``weight`` is (F, C, KH, KW), ``bias`` (F,); the result is (N, F, Ho, Wo) with Ho, Wo from
    :func:`conv2d_output_shape`.
    """
    x_shape, w_shape = np.shape(getattr(x, "data", x)), np.shape(getattr(weight, "data", weight))
    if len(w_shape) != 4:
        raise ValueError(f"conv2d: weight must be 4-D (F, C, KH, KW), got shape {w_shape}")
    _check_image("conv2d", x_shape, w_shape[1])
    step, pad = _pair("conv2d", "stride", stride, 1), _pair("conv2d", "padding", padding, 0)
    _output_hw("conv2d", x_shape, w_shape[2:], step, pad)
    return Conv2DFunction.apply(x, weight, bias, stride=step, padding=pad)


class Conv2D(Module):
    """A 2-D convolution layer on (N, C, H, W) images (alias ``Conv2d``).

    Parameters
    ----------
    in_channels, out_channels : int
        C of the input, F of the output.
    kernel_size : int or (int, int)
        (KH, KW) of each filter.
    stride : int or (int, int)
        Step between windows (default 1).
    padding : int, (int, int) or "same"
        Zeros added on each side (default 0). ``"same"`` keeps H and W: it needs odd kernel sizes
        and stride 1, and pads ``(kernel - 1) // 2``.
    bias : bool
        Learn one bias per output channel.

    Attributes
    ----------
    weight : Parameter
        (out_channels, in_channels, KH, KW), initialised as PyTorch does (Kaiming-uniform, a=sqrt(5)).
    bias : Parameter or None
        (out_channels,), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels * KH * KW.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair | str = 0,
        bias: bool = True,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Conv2D: {name} must be a positive integer, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair("Conv2D", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2D", "stride", stride, 1)
        self.padding = self._padding(padding)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels, *self.kernel_size), dtype=np.float32))
        self.register_parameter("bias", Parameter(np.empty(self.out_channels, dtype=np.float32)) if bias else None)
        self.reset_parameters()

    def _padding(self, padding: IntPair | str) -> tuple[int, int]:
        if padding != "same":
            return _pair("Conv2D", "padding", padding, 0)
        if self.stride != (1, 1) or self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise ValueError(
                f"Conv2D: padding='same' needs stride 1 and odd kernel sizes, got kernel_size={self.kernel_size}, "
                f"stride={self.stride}"
            )
        return (self.kernel_size[0] - 1) // 2, (self.kernel_size[1] - 1) // 2

    def reset_parameters(self) -> None:
        default_weight_init_(self.weight, self.bias)

    def forward(self, x: Tensor, fuse: tuple[Module, ...] = ()) -> Tensor:
        """The convolution of ``x``; with ``fuse``, also the layers that follow it (see :meth:`eval_fusion`)."""
        x = as_input(self, x, self.weight.dtype)
        _check_image(self.label(), x.shape, self.in_channels)
        _output_hw(self.label(), x.shape, self.kernel_size, self.stride, self.padding)
        if fuse:
            return self._fused_forward(x, fuse)
        return Conv2DFunction.apply(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def eval_fusion(self, x: Any, following: list[Module]) -> int:
        """How many of the layers right after this one (``following``) can run fused with it on ``x``.

        In evaluation, without a graph, a block Conv2D -> BatchNorm2D -> ReLU -> MaxPool2D (each of the
        last three optional, in this order) is one kernel call: the batch norm's fixed affine map is
        folded into the filters and bias (recomputed on every call, so it always follows the current
        weights and running statistics: it costs one pass over the filters), ReLU and the pool are
        applied while the convolution's output is unpacked, and the full-size activations are never
        written. Sequential asks this of each Conv2D and, when the answer is k > 0, calls
        ``conv(x, fuse=following[:k])`` instead of the k + 1 layers one by one; the profiler then
        shows one ``FusedConv2DFunction`` op inside ``Conv2D.forward``.

        It answers 0 (run the layers one by one, exactly as written) when a graph is being recorded
        (training, or gradients wanted for the input or the parameters), in training mode, for a
        subclass that defines its own forward, when a student's kernel replaces one of the fused
        layers' kernels (their code must run), or for a convolution that changes the image size
        (stride or padding other than "same": the FLOP counter derives the product's size from the
        input's). The fused layers must be exactly BatchNorm2D (with running statistics), ReLU and
        MaxPool2D with non-overlapping, unpadded windows.
        """
        if self.training or type(self).forward is not Conv2D.forward:
            return 0
        if kernels.registered("conv2d_forward", "batchnorm_forward_eval", "relu_forward", "maxpool2d_forward"):
            return 0
        if self.stride != (1, 1) or any(2 * p != k - 1 for p, k in zip(self.padding, self.kernel_size)):
            return 0
        fused = 0
        layer = following[0] if following else None
        if type(layer) is BatchNorm2D and self._absorbs(layer):
            fused += 1
            layer = following[fused] if len(following) > fused else None
        if type(layer) is ReLU:
            fused += 1
            layer = following[fused] if len(following) > fused else None
        hw = np.shape(getattr(x, "data", x))[2:]
        if type(layer) is MaxPool2D and layer.stride == layer.kernel_size and layer.padding == (0, 0) and len(hw) == 2 \
                and all(k <= s for k, s in zip(layer.kernel_size, hw)):
            fused += 1
        if fused and autograd.is_grad_enabled() and (getattr(x, "requires_grad", False) or any(
                p.requires_grad for layer in (self, *following[:fused]) for p in layer.parameters())):
            return 0  # a graph is being recorded: the layers' own ops must record it
        return fused

    def _absorbs(self, bn: BatchNorm) -> bool:
        """True when ``bn`` in evaluation mode is a fixed per-channel map of this layer's output, of its dtype."""
        return (not bn.training and bn.track_running_stats and bn.num_features == self.out_channels
                and bn.running_mean.dtype == self.weight.dtype and bn.running_var.dtype == self.weight.dtype
                and (not bn.affine or (bn.weight.dtype == self.weight.dtype and bn.bias.dtype == self.weight.dtype)))

    def _fused_forward(self, x: Tensor, fuse: tuple[Module, ...]) -> Tensor:
        weight = self.weight.data
        bias = None if self.bias is None else self.bias.data
        layers = list(fuse)
        if layers and isinstance(layers[0], BatchNorm):
            scale, shift = layers.pop(0).eval_affine()
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = shift if bias is None else bias * scale + shift
        relu = bool(layers) and isinstance(layers[0], ReLU)
        if relu:
            layers.pop(0)
        pool = layers.pop(0).kernel_size if layers else (1, 1)
        return FusedConv2DFunction.apply(x, weight, bias, stride=self.stride, padding=self.padding, relu=relu, pool=pool)

    def extra_repr(self) -> str:
        text = f"{self.in_channels} -> {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1):
            text += f", stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text + ("" if self.bias is not None else ", bias=False")


Conv2d = Conv2D


# -- pooling ----------------------------------------------------------------------------------------
class MaxPool2DFunction(Function):
    """The maximum of each window; its gradient goes to the element that was the maximum (``argmax``)."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        out, argmax = kernels.maxpool2d_forward(x, kernel, stride, padding)
        ctx.save_for_backward(argmax)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved
        return kernels.maxpool2d_backward(np.ascontiguousarray(grad), argmax, ctx.input_shape)


class AvgPool2DFunction(Function):
    """The mean of each window (padding counted as zeros); its gradient is shared equally by the window."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.input_shape, ctx.window = x.shape, (kernel, stride, padding)
        return kernels.avgpool2d_forward(x, kernel, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        return kernels.avgpool2d_backward(np.ascontiguousarray(grad), ctx.input_shape, *ctx.window)


class GlobalAvgPool2DFunction(Function):
    """The mean of each (H, W) plane: (N, C, H, W) -> (N, C)."""

    @staticmethod
    def forward(ctx, x):
        ctx.input_shape = x.shape
        return kernels.global_avgpool2d_forward(x)

    @staticmethod
    def backward(ctx, grad):
        return kernels.global_avgpool2d_backward(np.ascontiguousarray(grad), ctx.input_shape)


def _pool_geometry(op: str, kernel_size: IntPair, stride: IntPair | None, padding: IntPair) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding) pairs of a pooling window; stride defaults to the kernel size."""
    kernel = _pair(op, "kernel_size", kernel_size, 1)
    step = kernel if stride is None else _pair(op, "stride", stride, 1)
    pad = _pair(op, "padding", padding, 0)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {pad} must be at most half the {kernel[0]}x{kernel[1]} window")
    return kernel, step, pad


def _pool(function: type[Function], op: str, x: Any, geometry: tuple[tuple[int, int], ...]) -> Tensor:
    x_shape = np.shape(getattr(x, "data", x))
    _check_image(op, x_shape, None)
    kernel, step, pad = geometry
    _output_hw(op, x_shape, kernel, step, pad)
    return function.apply(x, kernel=kernel, stride=step, padding=pad)


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """The maximum of each (KH, KW) window of (N, C, H, W) input, ``stride`` apart (default: the kernel size).

    Padding counts as -inf, so it is never the maximum; it may be at most half the window.
    """
    return _pool(MaxPool2DFunction, "max_pool2d", x, _pool_geometry("max_pool2d", kernel_size, stride, padding))


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> Tensor:
    """The mean of each (KH, KW) window of (N, C, H, W) input; zero padding counts in the mean."""
    return _pool(AvgPool2DFunction, "avg_pool2d", x, _pool_geometry("avg_pool2d", kernel_size, stride, padding))


def global_avg_pool2d(x: Tensor) -> Tensor:
    """The mean of each channel's (H, W) plane: (N, C, H, W) -> (N, C)."""
    _check_image("global_avg_pool2d", np.shape(getattr(x, "data", x)), None)
    return GlobalAvgPool2DFunction.apply(x)


class _Pool2D(Module):
    """Shared by MaxPool2D and AvgPool2D: the window's geometry, checks and repr."""

    function: type[Function]

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = _pool_geometry(type(self).__name__, kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return _pool(self.function, self.label(), x, (self.kernel_size, self.stride, self.padding))

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return text + (f", padding={self.padding}" if self.padding != (0, 0) else "")


class MaxPool2D(_Pool2D):
    """:func:`max_pool2d` as a layer (alias ``MaxPool2d``); ``stride`` defaults to ``kernel_size``."""

    function = MaxPool2DFunction


class AvgPool2D(_Pool2D):
    """:func:`avg_pool2d` as a layer (alias ``AvgPool2d``); ``stride`` defaults to ``kernel_size``."""

    function = AvgPool2DFunction


class GlobalAvgPool2D(Module):
    """:func:`global_avg_pool2d` as a layer: (N, C, H, W) -> (N, C), ready for a Dense head."""

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        _check_image(self.label(), x.shape, None)
        return GlobalAvgPool2DFunction.apply(x)


MaxPool2d, AvgPool2d = MaxPool2D, AvgPool2D


# -- normalisation ----------------------------------------------------------------------------------
class BatchNorm2D(BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel over N, H and W (alias ``BatchNorm2d``).

    Training normalises with the batch's statistics and updates ``running_mean``/``running_var``
    (momentum 0.1, unbiased variance, as PyTorch); ``eval()`` normalises with the running ones.
    """

    ranks = (4,)
    layout = "(N, C, H, W)"


BatchNorm2d = BatchNorm2D
