"""Networks (lesson 05): Sequential containers and multi-layer perceptrons.

A :class:`Sequential` runs its layers one after another, each on the previous one's output. Its
layers are registered under the names ``"0"``, ``"1"``, ... so parameter names read
``"0.weight"``, as in PyTorch:

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = create_mlp(4, [8, 8], 3)
>>> net
MLP(
  (0): Dense(4 -> 8)
  (1): ReLU()
  (2): Dense(8 -> 8)
  (3): ReLU()
  (4): Dense(8 -> 3)
)
>>> net(tt.randn(5, 4)).shape
(5, 3)
>>> [name for name, _ in net.named_parameters()][:2]
['0.weight', '0.bias']
>>> mlp_parameter_count(4, [8, 8], 3) == net.num_parameters()
True
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .activations import ReLU
from .exercises import exercise
from .layers import Dense
from .module import Module
from .tensor import Tensor


class Sequential(Module):
    """Layers applied in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Built from modules (``Sequential(a, b)``), a list of them (``Sequential([a, b])``) or a
    mapping of names to modules. Supports ``len``, iteration, ``net[i]`` (a module),
    ``net[i:j]`` (a new Sequential sharing the same modules) and ``append``.
    """

    def __init__(self, *layers: Module | Sequence[Module] | Mapping[str, Module]):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            for name, module in layers[0].items():
                self.add_module(str(name), self._checked(module, name))
            return
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for module in layers:
            self.append(module)

    def _checked(self, module: Any, position: Any) -> Module:
        if not isinstance(module, Module):
            raise TypeError(
                f"{type(self).__name__}: layer {position} is a {type(module).__name__}, not a Module "
                "(pass instances such as ReLU(), not classes or functions)"
            )
        return module

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self._modules)), self._checked(module, len(self._modules)))
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, index: int | slice) -> Module:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(layers[index])
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, got {type(index).__name__}")
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"{type(self).__name__} index {index} is out of range for {len(layers)} layers")
        return layers[index]

    def forward(self, x: Tensor) -> Tensor:
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):
            layer = layers[i]
            # A layer may run the ones after it fused with it in evaluation (Conv2D -> BatchNorm2D ->
            # ReLU -> MaxPool2D as one kernel call, lesson 06): it says how many it takes.
            fusion = getattr(layer, "eval_fusion", None)
            fused = fusion(x, layers[i + 1 : i + 4]) if fusion is not None and not layer.training else 0
            x = layer(x, fuse=tuple(layers[i + 1 : i + 1 + fused])) if fused else layer(x)
            i += 1 + fused
        return x


def _make_activation(activation: type[Module] | Callable[[], Module] | Module) -> Module:
    """A fresh activation module: call a class/factory, or copy a given instance (so none is shared)."""
    module = copy.deepcopy(activation) if isinstance(activation, Module) else activation()
    if not isinstance(module, Module):
        raise TypeError(f"create_mlp: activation must make a Module (e.g. ReLU), got {type(module).__name__}")
    return module


def _sizes(input_size: int, hidden_sizes: Sequence[int], output_size: int) -> list[int]:
    sizes = [input_size, *hidden_sizes, output_size]
    if not all(isinstance(n, (int, np.integer)) and n > 0 for n in sizes):
        raise ValueError(f"create_mlp: layer sizes must be positive integers, got {sizes}")
    return [int(n) for n in sizes]


class MLP(Sequential):
    """A multi-layer perceptron: Dense layers with an activation between consecutive ones.

    ``MLP(784, [256, 128], 10)`` is Dense(784 -> 256), ReLU, Dense(256 -> 128), ReLU,
    Dense(128 -> 10), then ``output_activation`` when one is given.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        output_size: int,
        activation: type[Module] | Callable[[], Module] | Module = ReLU,
        output_activation: type[Module] | Callable[[], Module] | Module | None = None,
    ):
        super().__init__()
        sizes = _sizes(input_size, hidden_sizes, output_size)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.append(Dense(n_in, n_out))
            if i < len(sizes) - 2:
                self.append(_make_activation(activation))
        if output_activation is not None:
            self.append(_make_activation(output_activation))


@exercise
def create_mlp(
    input_size: int,
    hidden_sizes: Sequence[int],
    output_size: int,
    activation: type[Module] | Callable[[], Module] | Module = ReLU,
    output_activation: type[Module] | Callable[[], Module] | Module | None = None,
) -> MLP:
    """Build an :class:`MLP`: Dense layers of the given sizes with ``activation`` between them.

    Parameters
    ----------
    input_size : int
        Features of each input vector.
    hidden_sizes : sequence of int
        Width of each hidden layer, in order (empty for a single Dense layer).
    output_size : int
        Features of each output vector.
    activation : Module class, factory or instance
        Placed after every hidden layer; each gets its own instance (default ``ReLU``).
    output_activation : Module class, factory or instance, optional
        Placed after the last Dense layer (e.g. ``Sigmoid`` for binary outputs).

    Returns
    -------
    MLP
        A Sequential: ``Dense, activation, Dense, activation, ..., Dense[, output_activation]``.
    """
    return MLP(input_size, hidden_sizes, output_size, activation, output_activation)


@exercise
def mlp_parameter_count(input_size: int, hidden_sizes: Sequence[int], output_size: int) -> int:
    """Parameters of an MLP with biases: ``sum(n_in * n_out + n_out)`` over consecutive layer sizes.

    >>> mlp_parameter_count(784, [128], 10)           # 784*128 + 128 + 128*10 + 10
    101770
    """
    sizes = _sizes(input_size, hidden_sizes, output_size)
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


@exercise
def mlp_forward_flops(batch_size: int, input_size: int, hidden_sizes: Sequence[int], output_size: int) -> int:
    """Floating-point operations of an MLP's forward pass, counting the matrix products only.

    Each Dense layer multiplies a (batch, n_in) matrix by (n_in, n_out): ``2 * batch * n_in * n_out``
    operations (a multiply and an add per term). Bias additions and activations add
    ``O(batch * n_out)``, negligible next to the products.

    >>> mlp_forward_flops(32, 784, [128], 10)
    6504448
    """
    sizes = _sizes(input_size, hidden_sizes, output_size)
    return sum(2 * batch_size * n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
