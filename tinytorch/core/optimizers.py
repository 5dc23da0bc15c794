"""Optimizers: how a model's parameters move downhill (lesson 10).

An optimizer holds *param groups* (lists of parameters, each with its own hyperparameters) and a
*state* per parameter (momentum, Adam's moving averages). ``step()`` updates every parameter that
has a gradient, in place, with one kernel call per parameter (``kernels.sgd_step``,
``kernels.adam_step``, ``kernels.rmsprop_step``: compiled, or the NumPy reference in
``tinytorch/_kernels/reference.py``, which states each formula). The formulas are PyTorch's, so
the same start gives the same steps.

>>> import numpy as np
>>> import tinytorch as tt
>>> from tinytorch.core.module import Parameter
>>> w = Parameter(np.array([1.0, -2.0]))
>>> opt = SGD([w], lr=0.1)
>>> w.grad = tt.tensor([0.5, -1.0])
>>> opt.step()
>>> w
Parameter containing:
Tensor([ 0.95, -1.9 ], requires_grad=True)

As in the seed course, an optimizer may be made before the model exists and *bound* later
(the :class:`~tinytorch.core.training.Trainer` does it):

>>> opt = Adam(lr=0.001)
>>> opt.bind([w])
>>> len(opt.param_groups[0]["params"])
1

State lives in NumPy arrays of the parameter's dtype, allocated on a parameter's first step.
Parameters whose ``grad`` is None are skipped (they keep their state untouched).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from . import kernels
from .autograd import note_write, observed_region
from .exercises import exercise
from .schedulers import (
    CosineAnnealingLR,
    LRScheduler,
    OneCycleLR,
    StepLR,
    WarmupCosineLR,
    cosine_lr,
)
from .tensor import Tensor

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "clip_grad_norm_",
    "adam_update",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "WarmupCosineLR",
    "OneCycleLR",
    "cosine_lr",
]

ParamsArg = Iterable[Tensor] | Iterable[Mapping[str, Any]] | None


def _check_range(
    owner: str, name: str, value: Any, low: float, high: float = math.inf, high_open: bool = False
) -> None:
    """Raise unless ``low <= value <= high`` (``< high`` when ``high_open``), naming the optimizer and setting."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{owner}: {name} must be a number in {bound}, got {value!r}")


class Optimizer:
    """The base of every optimizer: param groups, per-parameter state, ``step`` and ``zero_grad``.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict, or None
        The parameters to optimize (``model.parameters()``), or param groups
        (``[{"params": [...], "lr": 0.01}, {"params": [...]}]``: a group's missing settings take the
        optimizer's defaults). ``None`` makes an *unbound* optimizer: call :meth:`bind` before
        stepping.
    defaults : dict
        The hyperparameters every group starts from.

    A subclass defines ``_update(param, grad, state, group)``, which changes ``param`` (a NumPy
    array) in place and keeps whatever it needs in ``state`` (a dict, empty on the first step).
    """

    def __init__(self, params: ParamsArg, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._check_group(self.defaults)  # each optimizer's own checks, before anything is bound
        self.state: dict[Tensor, dict[str, Any]] = {}
        # An unbound optimizer has one empty group, so a scheduler made now can already set its lr.
        self.param_groups: list[dict[str, Any]] = [{"params": [], **self.defaults}]
        if params is not None:
            self.bind(params)

    # -- parameters -------------------------------------------------------------------------------
    @property
    def is_bound(self) -> bool:
        """True once the optimizer has parameters to update."""
        return any(group["params"] for group in self.param_groups)

    def bind(self, params: Iterable[Tensor] | Iterable[Mapping[str, Any]]) -> None:
        """Give an unbound optimizer its parameters (or param groups).

        Settings already changed on the empty group (by a scheduler made before binding, say) carry
        over to every new group, unless a group dict sets them itself.
        """
        if self.is_bound:
            raise RuntimeError(f"{type(self).__name__}.bind: the optimizer already has parameters; make a new one")
        items = list(params)
        if not items:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = items if isinstance(items[0], Mapping) else [{"params": items}]
        template = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        unbound, self.param_groups = self.param_groups, []
        try:
            for group in groups:
                self.add_param_group({**template, **group})
        except Exception:
            self.param_groups = unbound  # a failed bind leaves the optimizer as it was
            raise

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group (a dict with ``"params"`` and optional settings); missing settings take the defaults."""
        name = type(self).__name__
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"{name}: a param group must be a dict with a 'params' entry, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f" or not p.is_leaf:
                raise ValueError(
                    f"{name}: can only optimize float leaf tensors, got a {p.dtype} tensor of shape {p.shape}"
                )
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or taken & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears more than once (in one group or in two groups)")
        unknown = set(group) - set(self.defaults) - {"params"} - _SCHEDULER_KEYS
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {sorted(unknown)}; known: {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate a group's settings (subclasses add their own checks)."""
        _check_range(type(self).__name__, "lr", group["lr"], 0.0)

    def parameters(self) -> list[Tensor]:
        """Every parameter of every group, in order (the order :meth:`state_dict` numbers them by)."""
        return [p for group in self.param_groups for p in group["params"]]

    # -- stepping ---------------------------------------------------------------------------------
    def _require_bound(self, what: str) -> None:
        if not self.is_bound:
            name = type(self).__name__
            raise RuntimeError(
                f"{name}.{what}: the optimizer has no parameters. Pass them when making it "
                f"({name}(model.parameters(), ...)) or call optimizer.bind(model.parameters()) "
                "(Trainer does this for you)"
            )

    def step(self) -> None:
        """Update every parameter that has a gradient, in place (no graph is recorded).

        Each update raises the parameter's version, as PyTorch's in-place updates do: a graph
        recorded before the step that saved the parameter refuses to run its backward afterwards.
        """
        self._require_bound("step")
        name = type(self).__name__
        writer = f"{name}.step()"
        with observed_region(f"Optimizer.step#{name}.step"):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    self._update(p.data, p.grad.data, self.state.setdefault(p, {}), group)
                    note_write(p.data, writer)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update()")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: ``grad = None`` (default), or fill it with zeros."""
        with observed_region(f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"):
            for p in self.parameters():
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    # -- saving -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state: ``{"state": {index: {name: array or number}}, "param_groups": [...]}``.

        Parameters are numbered in :meth:`parameters` order; arrays are copies. Everything other
        than the arrays is a JSON-able number, bool, string or list.
        """
        index = {id(p): i for i, p in enumerate(self.parameters())}
        state = {
            index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for p, s in self.state.items()
            if id(p) in index and s
        }
        groups = [
            {
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"},
                "params": [index[id(p)] for p in g["params"]],
            }
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s result (keys may be strings, as after a JSON round trip).

        The groups must hold the same number of parameters as when saved, and each saved array
        must have its parameter's shape; nothing is changed when a check fails.
        """
        name = f"{type(self).__name__}.load_state_dict"
        self._require_bound("load_state_dict")
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(
                f"{name}: expected a dict with 'state' and 'param_groups', got {type(state_dict).__name__}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state has {len(saved_groups)} param group(s); this optimizer has {len(self.param_groups)}"
            )
        for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"{name}: param group {i} held {len(saved['params'])} parameter(s) when saved; "
                    f"it now holds {len(own['params'])}"
                )
        params = self.parameters()
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entries in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"{name}: state for parameter {i}, but there are only {len(params)} parameters")
            p = params[i]
            restored = {}
            for k, v in entries.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.shape:
                        raise ValueError(
                            f"{name}: {k} of parameter {i} has shape {v.shape}; the parameter has {p.shape}"
                        )
                    v = np.array(v, dtype=p.dtype, order="C", copy=True)
                restored[k] = v
            new_state[p] = restored
        for saved, own in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = tuple(v) if k == "betas" else v
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


#: settings a scheduler keeps in each param group (as PyTorch's schedulers do)
_SCHEDULER_KEYS = {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

    With ``g = grad + weight_decay * param`` and momentum ``μ``::

        buf = g                                  (first step)
        buf = μ buf + (1 - dampening) g          (later steps)
        param -= lr * (g + μ buf if nesterov else buf)     (just ``lr * g`` when μ = 0)

    State: ``momentum_buffer`` (only when ``momentum > 0``), the size of the parameters.
    """

    def __init__(
        self,
        params: ParamsArg = None,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_range("SGD", "momentum", group["momentum"], 0.0)
        _check_range("SGD", "weight_decay", group["weight_decay"], 0.0)
        _check_range("SGD", "dampening", group["dampening"], -math.inf)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening == 0")

    def _update(self, param, grad, state, group):
        buffer = None
        first = False
        if group["momentum"] != 0:
            first = "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = np.zeros_like(param)
            buffer = state["momentum_buffer"]
        kernels.sgd_step(
            param,
            grad,
            buffer,
            group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            first_step=first,
        )


class Adam(Optimizer):
    """Adam: momentum on the gradient, scaled per element by a running RMS of the gradient.

    With ``g = grad + weight_decay * param`` (L2; :class:`AdamW` decays the weights directly)::

        m = β1 m + (1 - β1) g          v = β2 v + (1 - β2) g²
        param -= lr * (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)

    ``amsgrad=True`` divides by the running maximum of ``v`` instead. State per parameter:
    ``step`` and two arrays the size of the parameter (three with amsgrad), so Adam keeps about
    twice the parameter memory beside the parameters themselves.
    """

    _decoupled = False

    def __init__(
        self,
        params: ParamsArg = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        _check_range(name, "betas[0]", betas[0], 0.0, 1.0, high_open=True)
        _check_range(name, "betas[1]", betas[1], 0.0, 1.0, high_open=True)
        _check_range(name, "eps", group["eps"], 0.0)
        _check_range(name, "weight_decay", group["weight_decay"], 0.0)

    def _update(self, param, grad, state, group):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        kernels.adam_step(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["step"],
            group["lr"],
            beta1,
            beta2,
            group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=self._decoupled,
            max_exp_avg_sq=state["max_exp_avg_sq"] if group["amsgrad"] else None,
        )


class AdamW(Adam):
    """Adam with *decoupled* weight decay: ``param *= 1 - lr * weight_decay`` before the Adam step,
    instead of adding ``weight_decay * param`` to the gradient (Loshchilov & Hutter, 2019)."""

    _decoupled = True

    def __init__(
        self,
        params: ParamsArg = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running RMS of recent gradients.

    With ``g = grad + weight_decay * param``::

        v = α v + (1 - α) g²
        (centered: ḡ = α ḡ + (1 - α) g,   v̂ = v - ḡ²;  else v̂ = v)
        buf = μ buf + g / (sqrt(v̂) + eps);  param -= lr * buf     (momentum μ > 0)
        param -= lr * g / (sqrt(v̂) + eps)                          (μ = 0)
    """

    def __init__(
        self,
        params: ParamsArg = None,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_range("RMSprop", "alpha", group["alpha"], 0.0, 1.0)
        _check_range("RMSprop", "eps", group["eps"], 0.0)
        _check_range("RMSprop", "weight_decay", group["weight_decay"], 0.0)
        _check_range("RMSprop", "momentum", group["momentum"], 0.0)

    def _update(self, param, grad, state, group):
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(param)
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(param)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(param)
        state["step"] += 1
        kernels.rmsprop_step(
            param,
            grad,
            state["square_avg"],
            group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            momentum_buffer=state.get("momentum_buffer") if group["momentum"] > 0 else None,
            centered=group["centered"],
            grad_avg=state.get("grad_avg") if group["centered"] else None,
        )


@exercise
def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients of ``parameters`` in place so that their joint norm is at most ``max_norm``.

    The norm is taken over all gradients together, as if they were one long vector
    (``norm_type`` 2 by default; ``math.inf`` for the largest absolute value). When it exceeds
    ``max_norm`` every gradient is multiplied by ``max_norm / (norm + 1e-6)``; otherwise nothing
    changes. Parameters without a gradient are ignored.

    Returns
    -------
    float
        The total norm *before* clipping (PyTorch's ``torch.nn.utils.clip_grad_norm_`` semantics).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    _check_range("clip_grad_norm_", "max_norm", max_norm, 0.0)
    if not (norm_type == math.inf or (isinstance(norm_type, (int, float)) and norm_type > 0)):
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or math.inf, got {norm_type!r}")
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(np.sum(np.abs(g.astype(np.float64)) ** norm_type) for g in grads) ** (1.0 / norm_type))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= g.dtype.type(scale)
    return total


@exercise
def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    step: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Adam step on NumPy arrays; returns new ``(param, exp_avg, exp_avg_sq)``, the inputs unchanged.

    ``step`` is the number of this step, counting from 1 (it sets the bias corrections)::

        m = beta1 * exp_avg + (1 - beta1) * grad
        v = beta2 * exp_avg_sq + (1 - beta2) * grad**2
        param - lr * (m / (1 - beta1**step)) / (sqrt(v / (1 - beta2**step)) + eps)

    Float32 and float64 inputs keep their dtype; anything else is computed in float64.
    """
    dtype = np.result_type(param, grad, exp_avg, exp_avg_sq)
    dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    param, exp_avg, exp_avg_sq = (np.array(a, dtype=dtype, order="C", copy=True) for a in (param, exp_avg, exp_avg_sq))
    kernels.adam_step(param, np.asarray(grad, dtype=dtype), exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps)
    return param, exp_avg, exp_avg_sq
