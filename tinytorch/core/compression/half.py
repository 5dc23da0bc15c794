"""Half-precision weight storage: parameters kept as float16, every computation in float32.

A float16 number takes 2 bytes instead of 4, so a model stored that way takes half the memory and
half the file. It holds about 3 significant decimal digits (10 bits of mantissa), which is plenty
to *compute* with a weight, but not to *train* it: an SGD update ``lr * grad`` is usually a tiny
fraction of the weight, and when it is below half the spacing of float16 numbers around the weight
(half an *ulp*: about 0.00049 for a weight of 1.0) adding it rounds straight back to the old value.
The update is lost, every step, and the weight never moves. Mixed-precision training (Micikevicius
et al. 2018) therefore keeps a float32 *master* copy of every weight: the optimizer updates the
master, where small updates accumulate, and the float16 storage is refreshed from it after each
step.

* :func:`half_precision` wraps a model so that its parameters are stored as float16 and each
  forward pass casts them to float32 (a recorded cast, so the backward pass runs in float32 too
  and the gradients that reach the float16 parameters are float32 arrays).
* :class:`MasterWeights` wraps any optimizer made on those parameters: it keeps the float32
  masters, hands them the gradients, lets the wrapped optimizer update them and rounds them back
  into the float16 storage.

What it saves: at inference the weights take half the memory (each layer's weights are cast to
float32 only while that layer runs). In training nothing is saved on the weights themselves: 2
bytes of storage plus 4 of master per parameter, against 4, with float32 gradients and optimizer
state as before; the memory of training is the activations' (see :mod:`.memory`).

>>> import tinytorch as tt
>>> from tinytorch.core.optimizers import SGD
>>> _ = tt.manual_seed(0)
>>> net = half_precision(tt.Sequential(tt.Dense(4, 8), tt.ReLU(), tt.Dense(8, 2)))
>>> sorted({str(p.dtype) for p in net.parameters()})
['float16']
>>> optimizer = MasterWeights(SGD(net.parameters(), lr=0.1))
>>> loss = net(tt.randn(3, 4)).sum()
>>> loss.dtype
dtype('float32')
>>> loss.backward()
>>> str(net.parameters()[0].grad.dtype)
'float32'
>>> optimizer.step()
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..autograd import note_write
from ..module import Module, Parameter
from ..networks import Sequential
from ..optimizers import Optimizer
from ..tensor import Tensor

__all__ = ["HalfPrecision", "half_precision", "MasterWeights", "master_weights_sgd"]

HALF = np.dtype(np.float16)
FULL = np.dtype(np.float32)


@contextmanager
def _computing_in_float32(module: Module) -> Iterator[None]:
    """Within the block, every float16 parameter of ``module`` reads as its float32 cast.

    The parameters stay registered (``parameters()`` and ``state_dict()`` still see the float16
    storage); only the attribute a layer's forward reads is swapped, as PyTorch's
    ``functional_call`` does, and put back however the block ends. The cast is recorded, so the
    gradient flows back through it into the float16 parameter.
    """
    casts: dict[int, Tensor] = {}  # a parameter shared by two layers is cast once
    swapped: list[tuple[Module, str, Parameter]] = []
    try:
        for owner in module.modules():
            for name, p in owner._parameters.items():
                if p is None or p.dtype != HALF:
                    continue
                if id(p) not in casts:
                    casts[id(p)] = p.astype(FULL)
                object.__setattr__(owner, name, casts[id(p)])
                swapped.append((owner, name, p))
        yield
    finally:
        for owner, name, p in swapped:
            object.__setattr__(owner, name, p)


class HalfPrecision(Module):
    """``module`` with its parameters stored as float16 and its forward pass computed in float32.

    Made by :func:`half_precision`. The float16 parameters are the model's own (``parameters()``,
    ``state_dict()`` and checkpoints hold float16; the state's names are the wrapped model's, so a
    float32 model of the same layout loads a half-precision checkpoint, widened); buffers such as batch norm's running statistics
    stay float32. In a :class:`~tinytorch.Sequential` each layer's weights are cast just before that
    layer runs, so without a graph (inference) at most one layer's float32 copy exists at a time;
    with a graph the casts are kept for the backward pass, as any layer input is.

    Train it with :class:`MasterWeights` around the optimizer: updating float16 weights directly
    loses every update smaller than half a float16 step.
    """

    def __init__(self, module: Module) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"half_precision: expected a Module, got {type(module).__name__}")
        if isinstance(module, HalfPrecision):
            raise TypeError("half_precision: the model is already stored in half precision")
        for p in module.parameters():
            if p.dtype.kind == "f" and p.dtype != HALF:
                # Module.to converts buffers too; running statistics stay float32 here.
                p._data = p._data.astype(HALF)
                p.grad = None
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.module, Sequential) and not kwargs and len(args) == 1:
            x = args[0]
            for layer in self.module:
                with _computing_in_float32(layer):
                    x = layer(x)
            return x
        with _computing_in_float32(self.module):
            return self.module(*args, **kwargs)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The wrapped model's state under its own names, so a plain model of the same layout loads it."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any:
        """Load the wrapped model's state (float values are rounded into the float16 storage)."""
        return self.module.load_state_dict(state, strict)

    def float(self) -> Module:
        """The wrapped model with float32 parameters again (the float16 values, widened)."""
        return self.module.to(FULL)

    def extra_repr(self) -> str:
        return "float16 storage, float32 compute"


def half_precision(model: Module) -> HalfPrecision:
    """Store ``model``'s parameters as float16 (in place) and return it wrapped to compute in float32.

    Parameters
    ----------
    model : Module
        Any model; its float parameters become float16 arrays (the Parameter objects stay the same).

    Returns
    -------
    HalfPrecision
        Call it as the model. Save it with ``save_checkpoint`` (the file holds float16) and load
        into ``half_precision(build_model())``; loading into a float32 model widens the values.
    """
    return HalfPrecision(model)


class MasterWeights(Optimizer):
    """Train float16 parameters through float32 *master* copies: wraps ``optimizer``.

    ``optimizer`` is made on the float16 parameters as usual (``SGD(model.parameters(), ...)``, or
    unbound, for a Trainer to bind). The wrapper gives it a float32 copy of every float16 parameter
    to update instead, and after each step rounds the masters into the float16 storage. Gradients
    reach the float16 parameters as float32 arrays (the wrapper's ``zero_grad`` gives them float32
    gradient buffers) and are handed to the masters unrounded. Schedulers and ``param_groups``
    act on the wrapped optimizer; parameters that are not float16 are updated directly.

    Parameters
    ----------
    optimizer : Optimizer
        Any TinyTorch optimizer, with no steps taken yet.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        # Not Optimizer.__init__: the groups, defaults and state are the wrapped optimizer's.
        if not isinstance(optimizer, Optimizer) or isinstance(optimizer, MasterWeights):
            raise TypeError(f"MasterWeights: expected an optimizer to wrap (SGD(...), Adam(...)), got {type(optimizer).__name__}")
        if optimizer.state:
            raise ValueError(f"MasterWeights: {type(optimizer).__name__} has already taken steps; wrap it before training")
        self.optimizer = optimizer
        self.storage: list[Tensor] = []  # the model's float16 parameters ...
        self.masters: list[Parameter] = []  # ... and their float32 masters, pairwise
        if optimizer.is_bound:
            self._take_over()

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:
        return self.optimizer.state

    @property
    def is_bound(self) -> bool:
        return self.optimizer.is_bound

    def bind(self, params: Iterable[Tensor] | Iterable[Mapping[str, Any]]) -> None:
        self.optimizer.bind(params)
        self._take_over()

    def _take_over(self) -> None:
        for group in self.optimizer.param_groups:
            for i, p in enumerate(group["params"]):
                if p.dtype != HALF:
                    continue
                master = Parameter(p.data.astype(FULL))
                group["params"][i] = master
                self.storage.append(p)
                self.masters.append(master)
        self._zero_storage_grads()

    def _zero_storage_grads(self) -> None:
        # A float16 leaf would round its first gradient to float16; a float32 buffer already
        # there makes backward add the float32 gradient into it unrounded.
        for p in self.storage:
            p.grad = Tensor(np.zeros(p.shape, dtype=FULL), dtype=FULL)

    def parameters(self) -> list[Tensor]:
        """The model's parameters (float16 storage, not the masters): where the gradients are."""
        masters = {id(m): p for p, m in zip(self.storage, self.masters)}
        return [masters.get(id(p), p) for p in self.optimizer.parameters()]

    def step(self) -> None:
        """Hand the gradients to the masters, step the wrapped optimizer, round the masters into storage."""
        self._require_bound("step")
        for p, master in zip(self.storage, self.masters):
            g = p.grad
            master.grad = None if g is None else Tensor(g.data.astype(FULL, copy=False), dtype=FULL)
        self.optimizer.step()
        for p, master in zip(self.storage, self.masters):
            if master.grad is not None:
                np.copyto(p.data, master.data, casting="same_kind")
                note_write(p.data, "MasterWeights.step()")
            master.grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: float32 zeros for the float16 parameters (see the class), ``None`` or zeros for the rest."""
        self.optimizer.zero_grad(set_to_none)
        self._zero_storage_grads()

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state and the float32 masters (in :meth:`parameters` order of the float16 ones)."""
        return {"optimizer": self.optimizer.state_dict(), "masters": [m.data.copy() for m in self.masters]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s result; the float16 storage is set from the restored masters."""
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"optimizer", "masters"}:
            raise ValueError("MasterWeights.load_state_dict: expected a dict with 'optimizer' and 'masters' "
                             f"(MasterWeights.state_dict()), got {type(state_dict).__name__} {sorted(state_dict)[:4] if isinstance(state_dict, Mapping) else ''}")
        masters = [np.asarray(m) for m in state_dict["masters"]]
        shapes = [m.shape for m in self.masters]
        if [m.shape for m in masters] != shapes:
            raise ValueError(f"MasterWeights.load_state_dict: masters of shapes {[m.shape for m in masters]}, "
                             f"expected {shapes}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        for p, master, saved in zip(self.storage, self.masters, masters):
            master.data[...] = saved
            np.copyto(p.data, saved, casting="same_kind")
            note_write(p.data, "MasterWeights.load_state_dict()")

    def __repr__(self) -> str:
        return f"MasterWeights({self.optimizer!r})"


def master_weights_sgd(weight: np.ndarray, grads: Sequence[np.ndarray], lr: float) -> np.ndarray:
    """Plain SGD steps ``w -= lr * g`` on float16 ``weight`` through a float32 master copy.

    The master starts as ``weight`` in float32, takes every update in float32, and the float16
    weight after each step is the master rounded to float16. This is what :class:`MasterWeights`
    does around any optimizer, written out for one array.

    Parameters
    ----------
    weight : np.ndarray
        The float16 weights.
    grads : sequence of np.ndarray
        One gradient per step, each of ``weight``'s shape.
    lr : float
        The learning rate.

    Returns
    -------
    np.ndarray
        The float16 weights after the last step.
    """
    master = np.asarray(weight, dtype=FULL).copy()
    for g in grads:
        master -= np.float32(lr) * np.asarray(g, dtype=FULL)
    return master.astype(HALF)
