"""Regularization: dropout and weight penalties, the original course's ``tinytorch.core.regularization``.

A penalty is added to the loss so that large weights cost something: L2 (``lambda_reg * sum(w**2)``,
"weight decay") shrinks every weight in proportion to its size, L1 (``lambda_reg * sum(|w|)``)
pushes small weights to exactly zero. Both are built from tensor operations, so ``backward()``
differentiates them with the rest of the loss. Given a Module they penalise its weights, not its
biases (the usual practice: a bias does not scale an input, so it does not overfit one).

>>> import tinytorch as tt
>>> w = tt.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
>>> penalty = L2Regularization(lambda_reg=0.1)
>>> loss = penalty(w)
>>> round(loss.item(), 4)                       # 0.1 * (1 + 4 + 0.25)
0.525
>>> loss.backward()
>>> w.grad                                      # 2 * lambda_reg * w
Tensor([[ 0.2, -0.4],
        [ 0.1,  0. ]])
>>> round(L1Regularization(0.1)(w).item(), 4)   # 0.1 * (1 + 2 + 0.5)
0.35

``L2Regularization(lambda_reg)`` added to the loss moves the weights as SGD's
``weight_decay=2 * lambda_reg`` does.
"""

from __future__ import annotations

import math
from typing import Iterable

from .layers import Dropout
from .module import Module
from .tensor import Tensor

__all__ = ["Dropout", "L1Regularization", "L2Regularization"]


def _weights(owner: str, weights: Tensor | Module | Iterable[Tensor]) -> list[Tensor]:
    """The tensors a penalty applies to: one tensor, several, or a Module's weights (its biases left out)."""
    if isinstance(weights, Tensor):
        return [weights]
    if isinstance(weights, Module):
        chosen = [p for name, p in weights.named_parameters() if not name.rsplit(".", 1)[-1].startswith("bias")]
    else:
        chosen = list(weights)
    wrong = [type(w).__name__ for w in chosen if not isinstance(w, Tensor)]
    if wrong or not chosen:
        raise TypeError(
            f"{owner}: expected a weight Tensor, a list of them or a Module with weights; "
            + (f"got {', '.join(wrong)}" if wrong else "got nothing to penalise")
        )
    return chosen


class _Penalty:
    """``lambda_reg`` times a sum over the weights, as a differentiable scalar Tensor."""

    def __init__(self, lambda_reg: float = 0.01):
        if isinstance(lambda_reg, bool) or not isinstance(lambda_reg, (int, float)) or not math.isfinite(lambda_reg) or lambda_reg < 0:
            raise ValueError(f"{type(self).__name__}: lambda_reg must be a finite number >= 0, got {lambda_reg!r}")
        self.lambda_reg = float(lambda_reg)

    def term(self, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, weights: Tensor | Module | Iterable[Tensor]) -> Tensor:
        chosen = _weights(type(self).__name__, weights)
        total = self.term(chosen[0])
        for weight in chosen[1:]:
            total = total + self.term(weight)
        return total * self.lambda_reg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lambda_reg={self.lambda_reg})"


class L1Regularization(_Penalty):
    """``lambda_reg * sum(|w|)``: its gradient ``lambda_reg * sign(w)`` drives small weights to zero (0 at w = 0)."""

    def term(self, weight: Tensor) -> Tensor:
        return weight.abs().sum()


class L2Regularization(_Penalty):
    """``lambda_reg * sum(w**2)``: its gradient ``2 * lambda_reg * w`` shrinks each weight in proportion to its size."""

    def term(self, weight: Tensor) -> Tensor:
        return (weight * weight).sum()
