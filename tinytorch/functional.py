"""Every functional op in one namespace: ``import tinytorch.functional as F``.

Nothing is defined here; each name comes from the lesson module that teaches it.
"""

from .core.autograd import checkpoint
from .core.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from .core.tensor import (
    clip,
    concatenate,
    exp,
    log,
    logsumexp,
    matmul,
    maximum,
    minimum,
    pad,
    split,
    sqrt,
    stack,
    where,
)
from .core.attention import scaled_dot_product_attention
from .core.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .core.layers import batch_norm, dropout, embedding, layer_norm, linear
from .core.spatial import avg_pool2d, conv2d, global_avg_pool2d, max_pool2d
