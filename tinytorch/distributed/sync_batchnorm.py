"""Batch normalisation over the whole batch of every rank: SyncBatchNorm and its converter.

Under data parallelism each rank sees only its part of the batch, b of the b*p samples of a step.
Plain batch norm would normalise with the statistics of those b samples: a different function of
the data than one process with batch b*p computes, and noisier when b is small. SyncBatchNorm
reduces the per-channel statistics over the ranks first, so every rank normalises with the mean
and variance of the whole b*p batch, and the backward pass reduces the two per-channel sums its
input gradient needs, so the gradients are those of the big batch too.

One all-reduce per layer and direction: forward ``[n, sum of x, sum of (x - local mean)^2 +
n * local mean^2]`` per channel (float64, so the variance does not lose digits), backward ``[sum of
dy, sum of dy * xhat]``. In evaluation, or in a world of one, it is plain batch norm.
"""

from __future__ import annotations

import numpy as np

from ..core import kernels
from ..core.autograd import Function
from ..core.module import Module
from ..core.normalization import BatchNorm
from ..core.tensor import Tensor
from .comm import ProcessGroup, default_group


def _per_channel(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(C,) values shaped to broadcast against x of shape (N, C, ...)."""
    return values.reshape((1, -1) + (1,) * (x.ndim - 2))


class SyncBatchNormFunction(Function):
    """Batch norm whose statistics (forward) and gradient sums (backward) cover every rank's batch.

    With xhat = (x - mean) * invstd over all M = sum of n_r values per channel, and dy the
    gradient of *this rank's* loss: dx = gamma * invstd / M * (M dy - sum dy - xhat * sum dy*xhat),
    the two sums taken over every rank. The returned dgamma and dbeta are this rank's own sums:
    DistributedDataParallel averages them over the ranks like every other gradient, and the
    average of the ranks' mean losses is the mean loss of the whole batch.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, momentum, eps, group):
        axes = (0,) + tuple(range(2, x.ndim))
        channels = x.shape[1]
        n = x.size // channels
        local_mean = x.mean(axis=axes, dtype=np.float64)
        centred = x - _per_channel(local_mean.astype(x.dtype), x)
        local_m2 = np.square(centred).sum(axis=axes, dtype=np.float64)
        # Every rank's count, sum and sum of squares (about its own mean, then shifted): Chan's merge.
        stats = np.concatenate([[n], n * local_mean, local_m2 + n * np.square(local_mean)])
        group.all_reduce(stats)
        count = int(round(stats[0]))
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: the ranks' batches hold {count} value per channel; training needs more")
        mean = stats[1: channels + 1] / count
        var = np.maximum(stats[channels + 1:] / count - np.square(mean), 0.0)  # biased, as normalisation uses
        g = gamma if gamma is not None else np.ones(channels, dtype=x.dtype)
        b = beta if beta is not None else np.zeros(channels, dtype=x.dtype)
        x4 = x[..., None] if x.ndim == 3 else x  # the kernels take (N, C) or (N, C, H, W)
        y = kernels.batchnorm_forward_eval(x4, mean.astype(x.dtype), var.astype(x.dtype), g, b, eps)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
        invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
        ctx.save_for_backward(x, mean.astype(x.dtype), invstd, g)
        ctx.group, ctx.count = group, count
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, mean, invstd, g = ctx.saved
        axes = (0,) + tuple(range(2, x.ndim))
        xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
        dbeta = grad.sum(axis=axes, dtype=np.float64)
        dgamma = (grad * xhat).sum(axis=axes, dtype=np.float64)
        total = ctx.group.all_reduce(np.concatenate([dbeta, dgamma]))  # every rank's, for dx
        channels = len(dbeta)
        sum_dy, sum_dy_xhat = (total[:channels].astype(x.dtype), total[channels:].astype(x.dtype))
        m = ctx.count
        dx = _per_channel(g * invstd / m, x) * (m * grad - _per_channel(sum_dy, x) - xhat * _per_channel(sum_dy_xhat, x))
        _, need_g, need_b = ctx.needs_input_grad
        return dx, (dgamma.astype(x.dtype) if need_g else None), (dbeta.astype(x.dtype) if need_b else None)


class SyncBatchNorm(BatchNorm):
    """Batch normalisation of (N, C), (N, C, L) or (N, C, H, W) input with the statistics of every rank's batch.

    The arguments are BatchNorm's (``num_features``, ``eps``, ``momentum``, ``affine``,
    ``track_running_stats``) and ``process_group`` (default: the world of
    ``tinytorch.distributed.init()``). In training with more than one rank, the batch statistics
    are those of all the ranks' batches together, and so are the running statistics it keeps, which
    are therefore the same on every rank. In evaluation, or alone, it is plain batch norm.
    ``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps it in for every BatchNorm of a model.
    """

    ranks = (2, 3, 4)
    layout = "(N, C), (N, C, L) or (N, C, H, W)"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: ProcessGroup | None = None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group if process_group is not None else default_group()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.process_group.world_size == 1:
            return super().forward(x)
        x = self._check(x)
        momentum = self._count_batch()
        keep = self.track_running_stats
        return SyncBatchNormFunction.apply(
            x, self.weight, self.bias,
            running_mean=self.running_mean.data if keep else None, running_var=self.running_var.data if keep else None,
            momentum=momentum, eps=self.eps, group=self.process_group,
        )  # fmt: skip

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: ProcessGroup | None = None) -> Module:
        """``module`` with every BatchNorm layer in it replaced by a SyncBatchNorm (returns the module).

        The new layers take over the old ones' parameters and buffers themselves (the same
        Parameter objects, so an optimizer already bound to them keeps working) and their training mode.
        """
        if isinstance(module, BatchNorm) and not isinstance(module, SyncBatchNorm):
            return cls._from_batchnorm(module, process_group)
        for name, child in list(module._modules.items()):
            if child is not None:
                converted = cls.convert_sync_batchnorm(child, process_group)
                if converted is not child:
                    module.add_module(name, converted)
        return module

    @classmethod
    def _from_batchnorm(cls, bn: BatchNorm, process_group: ProcessGroup | None) -> SyncBatchNorm:
        sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, process_group)
        for name in ("weight", "bias"):
            if getattr(bn, name) is not None:
                setattr(sync, name, getattr(bn, name))
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            if bn._buffers.get(name) is not None:
                sync.register_buffer(name, bn._buffers[name])  # the same memory, not a copy
        sync.train(bn.training)
        return sync

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, world_size={self.process_group.world_size}"
