"""Learning-rate schedules (taught in lesson 10 with the optimizers, re-exported by ``optimizers.py``).

A scheduler rewrites ``group["lr"]`` in each of an optimizer's param groups every time its
``step()`` is called. The semantics are PyTorch's: making a scheduler records each group's
starting rate as ``initial_lr`` and sets the rate for step 0; every ``step()`` moves one step on.
``interval`` says how often the :class:`~tinytorch.core.training.Trainer` steps it: once per
``"epoch"`` or once per optimizer ``"step"`` (batch).

>>> from tinytorch.core.optimizers import SGD
>>> opt = SGD(lr=0.1)                     # unbound is fine: the schedule is set on its empty group
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for epoch in range(5):
...     rates.append(sched.get_last_lr()[0])
...     sched.step()
>>> rates
[0.1, 0.1, 0.05, 0.05, 0.025]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from .exercises import exercise

if TYPE_CHECKING:
    from .optimizers import Optimizer


@exercise
def cosine_lr(step: int, total_steps: int, base_lr: float, min_lr: float = 0.0, warmup_steps: int = 0) -> float:
    """The learning rate at ``step`` (counted from 0) of a linear warm-up followed by a cosine decay.

    During the first ``warmup_steps`` steps the rate climbs linearly,
    ``base_lr * (step + 1) / (warmup_steps + 1)``. Then it follows half a cosine from ``base_lr``
    down to ``min_lr``, reached at ``step == total_steps``::

        progress = (step - warmup_steps) / (total_steps - warmup_steps)
        lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2

    After ``total_steps`` the rate stays at ``min_lr``.
    """
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"cosine_lr: total_steps must be a positive integer, got {total_steps!r}")
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"cosine_lr: warmup_steps must be an integer in [0, total_steps), got {warmup_steps!r}")
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRScheduler:
    """The base of every scheduler.

    A subclass defines ``lr_at(step, base_lr, group)``: the rate of a group whose starting rate
    is ``base_lr`` at ``step`` (0 right after construction). Its state (``state_dict``) is every
    attribute but the optimizer: plain numbers and lists, so a checkpoint stores it as JSON.
    """

    interval = "epoch"

    def __init__(self, optimizer: "Optimizer", last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        elif any("initial_lr" not in group for group in optimizer.param_groups):
            raise KeyError(
                f"{type(self).__name__}: last_epoch={last_epoch} needs 'initial_lr' in every param group (resume)"
            )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, step: int, base_lr: float, group: dict[str, Any]) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at()")

    def step(self) -> None:
        """Advance one step (or epoch) and write the new rate into every param group."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise RuntimeError(
                f"{type(self).__name__}: the optimizer now has {len(groups)} param group(s) but the scheduler was "
                f"made for {len(self.base_lrs)}; make the scheduler after binding the optimizer"
            )
        self.last_epoch += 1
        for group, base_lr in zip(groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base_lr, group)
        self._last_lr = [group["lr"] for group in groups]

    def get_last_lr(self) -> list[float]:
        """The rate of each group as last set by this scheduler."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (numbers, strings and lists only)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s result; the keys must be this scheduler's own."""
        own = set(vars(self)) - {"optimizer"}
        if set(state) != own:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected keys {sorted(own)}, got {sorted(state)} "
                "(a state saved from a different scheduler?)"
            )
        self.__dict__.update(state)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: "Optimizer", step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr, group):
        return base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the starting rate down to ``eta_min`` over ``T_max`` epochs.

    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``: PyTorch's schedule
    (past ``T_max`` the cosine climbs back up; :class:`WarmupCosineLR` stays at its minimum).
    """

    def __init__(self, optimizer: "Optimizer", T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr, group):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class WarmupCosineLR(LRScheduler):
    """Linear warm-up for ``warmup_steps`` steps, then a cosine down to ``min_lr`` at ``total_steps``
    (see :func:`cosine_lr`). Stepped once per batch (``interval = "step"``)."""

    interval = "step"

    def __init__(
        self, optimizer: "Optimizer", warmup_steps: int, total_steps: int, min_lr: float = 0.0, last_epoch: int = -1
    ) -> None:
        cosine_lr(0, total_steps, 1.0, warmup_steps=warmup_steps)  # validates the two step counts
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr, group):
        return cosine_lr(step, self.total_steps, base_lr, self.min_lr, self.warmup_steps)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018), with PyTorch's ``OneCycleLR`` semantics.

    The rate climbs from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (or ``epochs * steps_per_epoch``) steps, then anneals to
    ``initial_lr / final_div_factor``. With ``cycle_momentum`` the momentum (SGD's ``momentum``, or
    Adam's ``beta1``) moves the opposite way, between ``max_momentum`` and ``base_momentum``.
    ``three_phase`` adds a symmetric descent back to the initial rate before the final annealing.
    Stepped once per batch; stepping more than ``total_steps`` times is an error.
    """

    interval = "step"

    def __init__(
        self,
        optimizer: "Optimizer",
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None:
            if not (
                isinstance(epochs, int) and epochs > 0 and isinstance(steps_per_epoch, int) and steps_per_epoch > 0
            ):
                raise ValueError(
                    "OneCycleLR: give total_steps, or both epochs and steps_per_epoch (positive integers); "
                    f"got total_steps={total_steps}, epochs={epochs}, steps_per_epoch={steps_per_epoch}"
                )
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"OneCycleLR: total_steps must be a positive integer, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"OneCycleLR: {len(max_lrs)} max_lr values for {len(groups)} param groups")
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum and not (self.use_beta1 or "momentum" in optimizer.defaults):
            raise ValueError(
                f"OneCycleLR: cycle_momentum needs an optimizer with momentum or betas, got {type(optimizer).__name__}"
            )
        # (end step, lr from, lr to, momentum from, momentum to); the names are keys of each group
        up = float(pct_start * total_steps) - 1
        if three_phase:
            self.phases = [
                [up, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                [float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"],
                [total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"],
            ]
        else:
            self.phases = [
                [up, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                [total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"],
            ]
        if last_epoch == -1:
            for group, peak in zip(groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if cycle_momentum:
                    self._set_momentum(group, max_momentum)
                    group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def lr_at(self, step, base_lr, group):
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, but total_steps is {self.total_steps}")
        start = 0.0
        for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self.phases):
            if step <= end or i == len(self.phases) - 1:
                pct = (step - start) / (end - start)
                if self.cycle_momentum:
                    self._set_momentum(group, self._anneal(group[m_from], group[m_to], pct))
                return self._anneal(group[lr_from], group[lr_to], pct)
            start = end
        raise AssertionError("unreachable: the last phase always matches")
