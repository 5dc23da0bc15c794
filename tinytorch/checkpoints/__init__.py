"""The sixteen capability checkpoints: what a student can do after each lesson, tested for real.

Each checkpoint asks one question ("Can I process spatial data like images with convolutional
operations?") and answers it with a capability test: a module of this package whose
``run(probe)`` trains a small network on real digits, checks gradients numerically, resumes a
training run from a checkpoint file, and so on (see :mod:`tinytorch.checkpoints.probe`). A
checkpoint is led to by the lesson whose ``:checkpoint:`` field names it; until that lesson
exists its checkpoint is *lesson not available*, never passed.

:mod:`tinytorch.checkpoints.runner` runs a checkpoint, on the framework's code or with a
student's workspace substituted (``tito module complete``, ``tito checkpoint test``), and
records the result in the workspace; :mod:`tinytorch.checkpoints.status` reads the records back.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from tinytorch.lesson import Lesson, find_lessons


@dataclass(frozen=True)
class Checkpoint:
    """One capability: its number, name and question, and the module of this package that tests it."""

    number: str
    name: str
    question: str
    module: str | None  # None while the capability test is not written (its lesson does not exist yet)

    @property
    def title(self) -> str:
        return f"{self.number} {self.name}"

    def test(self) -> ModuleType:
        """The module holding this checkpoint's ``run(probe)``."""
        if self.module is None:
            raise LookupError(f"checkpoint {self.title} has no capability test yet")
        return importlib.import_module(f"{__name__}.{self.module}")


# The seed course's names and questions. A test module is named here once its lesson has landed.
CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("00", "Environment", "Can I configure my TinyTorch development environment?", "environment"),
    Checkpoint("01", "Foundation", "Can I create and manipulate the building blocks of ML?", "foundation"),
    Checkpoint("02", "Intelligence", "Can I add nonlinearity — the key to neural network intelligence?", "intelligence"),
    Checkpoint("03", "Components", "Can I build the fundamental building blocks of neural networks?", "components"),
    Checkpoint("04", "Networks", "Can I build complete multi-layer neural networks?", "networks"),
    Checkpoint("05", "Learning", "Can I process spatial data like images with convolutional operations?", "learning"),
    Checkpoint("06", "Attention", "Can I build attention mechanisms for sequence understanding?", "attention"),
    Checkpoint("07", "Stability", "Can I stabilize training with normalization techniques?", "stability"),
    Checkpoint("08", "Differentiation", "Can I automatically compute gradients for learning?", "differentiation"),
    Checkpoint("09", "Optimization", "Can I optimize neural networks with sophisticated algorithms?", "optimization"),
    Checkpoint("10", "Training", "Can I build complete training loops for end-to-end learning?", "training"),
    Checkpoint("11", "Regularization", "Can I prevent overfitting and build robust models?", "regularization"),
    Checkpoint("12", "Kernels", "Can I implement high-performance computational kernels?", "kernels"),
    Checkpoint("13", "Benchmarking", "Can I analyze performance and identify bottlenecks?", "benchmarking"),
    Checkpoint("14", "Deployment", "Can I deploy and monitor ML systems in production?", "deployment"),
    Checkpoint("15", "Capstone", "Can I build complete end-to-end ML systems from scratch?", "capstone"),
)


def get(key: str) -> Checkpoint:
    """A checkpoint by number (``5``, ``05``) or name (``learning``)."""
    for checkpoint in CHECKPOINTS:
        if key.lower() == checkpoint.name.lower() or (key.isdigit() and int(key) == int(checkpoint.number)):
            return checkpoint
    raise LookupError(f"no checkpoint {key!r}; the checkpoints are {', '.join(c.title for c in CHECKPOINTS)}")


def leading_lessons(lessons: list[Lesson] | None = None) -> dict[str, Lesson]:
    """Checkpoint number -> the lesson whose ``:checkpoint:`` field names it (only those that exist)."""
    found: dict[str, Lesson] = {}
    for lesson in find_lessons() if lessons is None else lessons:
        if lesson.checkpoint.isdigit():
            found.setdefault(f"{int(lesson.checkpoint):02d}", lesson)
    return found
