"""Weight initialisation (lesson 04): fill a parameter in place with a well-scaled random draw.

A layer's output variance is the sum of ``fan_in`` products of weights and inputs, so weights of
variance ``gain**2 / fan_in`` keep the signal at the same scale from layer to layer (Kaiming/He);
averaging fan-in and fan-out keeps the gradient's scale too (Xavier/Glorot). A uniform draw on
``[-bound, bound]`` has variance ``bound**2 / 3``, hence the ``sqrt(3)`` in the uniform bounds.

Every draw comes from the framework's generator, so ``tinytorch.manual_seed`` makes it reproducible.

>>> import tinytorch as tt
>>> w = tt.zeros(256, 784)
>>> _ = kaiming_uniform_(w, nonlinearity="relu")
>>> round(float(w.data.std() * 784 ** 0.5), 1)      # std = gain / sqrt(fan_in), gain = sqrt(2)
1.4
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .autograd import no_grad
from .exercises import exercise
from .random import generator
from .tensor import Tensor

_LINEAR_GAIN = ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d")


def calculate_fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight laid out as PyTorch does: ``(out, in)`` or ``(out, in, kh, kw)``.

    >>> calculate_fan_in_and_fan_out((10, 784))
    (784, 10)
    >>> calculate_fan_in_and_fan_out((32, 3, 3, 3))
    (27, 288)
    """
    if len(shape) < 2:
        raise ValueError(f"fan in/out: needs a weight of at least 2 dimensions, got shape {tuple(shape)}")
    receptive_field = int(np.prod(shape[2:], dtype=np.int64))
    return int(shape[1]) * receptive_field, int(shape[0]) * receptive_field


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which ``nonlinearity`` shrinks the standard deviation, undone by the init.

    ReLU zeroes half of its input, halving the variance: gain ``sqrt(2)``. Leaky ReLU with slope
    ``a`` keeps a bit more: ``sqrt(2 / (1 + a**2))``.
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one of "
        f"{', '.join(_LINEAR_GAIN + ('tanh', 'relu', 'leaky_relu', 'selu'))}"
    )


def _fan(shape: tuple[int, ...], mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


@exercise
def kaiming_uniform_bound(fan_in: int, a: float = 0.0) -> float:
    """The bound of Kaiming's uniform init for leaky-ReLU slope ``a``: ``sqrt(6 / ((1 + a**2) fan_in))``.

    ``a=0`` is plain ReLU. PyTorch's default for Dense and Conv2D weights uses ``a=sqrt(5)``,
    which makes the bound exactly ``1 / sqrt(fan_in)``.

    >>> round(kaiming_uniform_bound(600), 4)
    0.1
    >>> round(kaiming_uniform_bound(100, a=math.sqrt(5)), 4)
    0.1
    """
    if fan_in <= 0:
        raise ValueError(f"kaiming_uniform_bound: fan_in must be positive, got {fan_in}")
    return math.sqrt(6.0 / ((1 + a**2) * fan_in))


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write ``values`` into ``tensor`` in place, under no_grad as PyTorch's init functions do (its version goes up)."""
    _check(tensor)
    with no_grad():
        return tensor.copy_(values)


def _check(tensor: Tensor, floats_only: bool = False) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init: expected a Tensor or Parameter, got {type(tensor).__name__}")
    if floats_only and tensor.dtype.kind != "f":
        raise TypeError(f"init: a random draw needs a float tensor, got dtype {tensor.dtype}")


def _draw(tensor: Tensor, draw: str) -> np.ndarray:
    """Fill ``tensor`` with a standard draw (``"random"``: U[0, 1), ``"standard_normal"``) in its own dtype.

    Drawing straight into the parameter's memory needs no temporary array: a 4096 x 4096 float32
    layer costs its 64 MiB and nothing more.
    """
    _check(tensor, floats_only=True)
    array = tensor.data
    sample = getattr(generator(), draw)
    if array.dtype in (np.float32, np.float64) and array.flags.c_contiguous:
        sample(out=array, dtype=array.dtype)
    else:
        array[...] = sample(size=array.shape)
    return array


def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Fill with draws from U(low, high); returns ``tensor``."""
    array = _draw(tensor, "random")
    array *= high - low
    array += low
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from N(mean, std**2); returns ``tensor``."""
    array = _draw(tensor, "standard_normal")
    array *= std
    array += mean
    return tensor


def constant_(tensor: Tensor, value: float) -> Tensor:
    return _fill(tensor, value)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He init, uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``; ``a`` is the leaky-ReLU slope."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor.shape, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He init, normal: N(0, std**2) with ``std = gain / sqrt(fan)``."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor.shape, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init, uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot init, normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a convolution weight ``(out, in, *kernel)`` so that the layer passes its input through.

    Output channel ``i`` of each of the ``groups`` copies 1 at the kernel's centre for input channel
    ``i`` and 0 elsewhere, for ``i < min(out // groups, in)``; the remaining output channels are
    zero. An identity-initialised 3x3 convolution (``padding=1``) starts as a residual connection
    that training moves away from (PyTorch's ``nn.init.dirac_``).
    """
    _check(tensor)
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"init.dirac_: expected a 3-, 4- or 5-D convolution weight, got shape {tensor.shape}")
    out_channels, in_channels = tensor.shape[:2]
    if groups < 1 or out_channels % groups:
        raise ValueError(f"init.dirac_: {out_channels} output channels do not split into groups={groups}")
    per_group = out_channels // groups
    values = np.zeros(tensor.shape, dtype=tensor.dtype)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for i in range(min(per_group, in_channels)):
            values[(g * per_group + i, i, *centre)] = 1
    return _fill(tensor, values)


def default_weight_init_(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default for Dense and Conv2D: weight Kaiming-uniform with ``a=sqrt(5)``, bias U(±1/sqrt(fan_in))."""
    bound = kaiming_uniform_bound(calculate_fan_in_and_fan_out(weight.shape)[0], a=math.sqrt(5))
    uniform_(weight, -bound, bound)
    if bias is not None:
        bound = 1.0 / math.sqrt(calculate_fan_in_and_fan_out(weight.shape)[0])
        uniform_(bias, -bound, bound)
