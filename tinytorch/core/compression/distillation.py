"""Knowledge distillation: a small student learns from a large teacher's soft predictions (lesson 12).

Hinton, Vinyals and Dean (2015): soften both models' class probabilities with a temperature T,
``p = softmax(logits / T)``, and train the student to match the teacher's soft probabilities as
well as the true labels:

    loss = alpha * T**2 * KL(p_teacher || p_student) + (1 - alpha) * cross_entropy(student_logits, labels)

The soft targets say which wrong classes the teacher finds plausible (a cat that looks a little
like a dog), which one-hot labels cannot. The gradient of the KL term with respect to the student's
logits is ``(p_student - p_teacher) / T`` per sample, and for large T the difference of the two
softened distributions itself shrinks as ``1 / T`` (about ``(student - teacher) / (C * T)``), so
the soft gradients fall as ``1 / T**2``. Multiplying the term by ``T**2`` keeps them the same size
whatever T is ("it is important to multiply them by T**2", the paper).

>>> import tinytorch as tt
>>> student = tt.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
>>> teacher = tt.tensor([[3.0, 1.0, -2.0]])
>>> loss = DistillationLoss(temperature=2.0, alpha=0.7)(student, teacher, tt.tensor([0]))
>>> round(loss.item(), 4)                          # torch.nn.functional's kl_div and cross_entropy give the same
0.1743
>>> loss.backward()
>>> student.grad.numpy().round(4)
array([[-0.2041,  0.0874,  0.1167]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from ..autograd import no_grad
from ..exercises import exercise
from ..losses import cross_entropy
from ..module import Module
from ..tensor import Tensor

__all__ = ["distillation_loss", "DistillationLoss", "Distiller"]


def _check(temperature: Any, alpha: Any) -> tuple[float, float]:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) or not temperature > 0:
        raise ValueError(f"distillation: temperature must be a positive number, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 <= alpha <= 1:
        raise ValueError(f"distillation: alpha must be a number in [0, 1], got {alpha!r}")
    return float(temperature), float(alpha)


@exercise
def distillation_loss(student_logits: Tensor, teacher_logits: Any, labels: Any,
                      temperature: float = 3.0, alpha: float = 0.5) -> Tensor:
    """Hinton's distillation loss, averaged over the batch.

    ``alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)``,
    with the KL divergence summed over classes and averaged over samples (PyTorch's
    ``kl_div(..., reduction="batchmean")``) and the cross-entropy averaged over samples.

    Parameters
    ----------
    student_logits : Tensor
        (N, C) scores of the model being trained; the gradient flows into them.
    teacher_logits : Tensor or numpy.ndarray
        (N, C) scores of the teacher, treated as constants (no gradient).
    labels : Tensor or numpy.ndarray
        (N,) integer classes.
    temperature : float
        T > 0; T = 1 is the plain softmax, larger T softer probabilities.
    alpha : float
        Weight of the soft (teacher) term in [0, 1]; ``1 - alpha`` weighs the hard labels.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    t, a = _check(temperature, alpha)
    student = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    teacher = np.asarray(teacher_logits.data if isinstance(teacher_logits, Tensor) else teacher_logits)
    if teacher.shape != student.shape or student.ndim != 2:
        raise ValueError(f"distillation_loss: student logits {student.shape} and teacher logits {teacher.shape} "
                         "must both be (N, C)")
    teacher_log_probs = kernels.log_softmax_forward(np.ascontiguousarray(teacher / t, dtype=student.dtype))
    soft = (np.exp(teacher_log_probs) * (teacher_log_probs - (student / t).log_softmax(axis=-1))).sum(axis=-1).mean()
    return a * t * t * soft + (1 - a) * cross_entropy(student, labels)


class DistillationLoss:
    """:func:`distillation_loss` with its temperature and alpha fixed: ``loss(student, teacher, labels)``.

    The original course's name and arguments (``DistillationLoss(temperature, alpha)``); ``alpha``
    weighs the teacher's soft targets, as in Hinton et al.
    """

    def __init__(self, temperature: float = 3.0, alpha: float = 0.5):
        self.temperature, self.alpha = _check(temperature, alpha)

    def __call__(self, student_logits: Tensor, teacher_logits: Any, labels: Any) -> Tensor:
        return distillation_loss(student_logits, teacher_logits, labels, self.temperature, self.alpha)

    def __repr__(self) -> str:
        return f"DistillationLoss(temperature={self.temperature}, alpha={self.alpha})"


class Distiller(Module):
    """Student and teacher as one model for the :class:`~tinytorch.core.training.Trainer`.

    In training mode ``forward(x)`` runs the teacher on the same (augmented) batch without a
    graph, keeps its logits, and returns the student's; :meth:`loss` then combines them with the
    labels. In evaluation mode it is the student alone and :meth:`loss` is plain cross-entropy. Only
    the student is registered: its parameters are the ones optimized and saved.

    Use it as ``Trainer(distiller, distiller.loss, SGD(distiller.parameters(), ...))``.
    """

    def __init__(self, student: Module, teacher: Module, temperature: float = 3.0, alpha: float = 0.5):
        super().__init__()
        self.student = student
        object.__setattr__(self, "teacher", teacher)  # not a child: neither trained, saved nor switched to train()
        self.distillation = DistillationLoss(temperature, alpha)
        self._teacher_logits: np.ndarray | None = None

    def forward(self, x: Any) -> Tensor:
        if self.training:
            self.teacher.eval()
            with no_grad():
                self._teacher_logits = self.teacher(x).data
        return self.student(x)

    def loss(self, outputs: Tensor, labels: Any) -> Tensor:
        """The distillation loss for the batch just run in training mode; cross-entropy otherwise."""
        teacher, self._teacher_logits = self._teacher_logits, None
        if not self.training or teacher is None:
            return cross_entropy(outputs, labels)
        return self.distillation(outputs, teacher, labels)

    def extra_repr(self) -> str:
        return f"temperature={self.distillation.temperature}, alpha={self.distillation.alpha}"
