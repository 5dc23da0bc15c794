"""Every functional op in one namespace: ``import tinytorch.functional as F``.

Nothing is defined here; each name comes from the lesson module that teaches it.
"""

from .core.autograd import checkpoint
from .core.tensor import (
    clip,
    concatenate,
    exp,
    log,
    log_softmax,
    logsumexp,
    matmul,
    maximum,
    minimum,
    pad,
    relu,
    sigmoid,
    softmax,
    split,
    sqrt,
    stack,
    tanh,
    where,
)
