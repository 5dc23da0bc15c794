"""Which samples each rank trains on: one epoch's order, dealt out to the ranks like cards.

Every rank draws the same permutation (from the seed and the epoch, never from a rank's own
generator), pads it so that it divides evenly, and takes every p-th index starting at its rank::

    order (epoch 0, seed 0)   4 6 2 7 3 5 9 0 8 1 + 4 6   (padded to 12 for 4 ranks)
    rank 0                    4       3       8
    rank 1                      6       5       1
    rank 2                        2       9       4
    rank 3                          7       0       6

The shards are disjoint and together hold the whole data set (the padding repeats the first few
indices), every rank takes the same number of steps, and step i of the p ranks together sees the
samples ``order[i*b*p : (i+1)*b*p]``: exactly the batch of size ``b*p`` that one process would see
at step i. That is what makes p ranks with batch b train like one process with batch b*p.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np


def shard_indices(
    num_samples: int,
    rank: int,
    world_size: int,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    start: int = 0,
    pad: bool = True,
) -> np.ndarray:
    """The indices rank ``rank`` of ``world_size`` reads in one epoch, in order (int64).

    1. The epoch's order: ``np.random.default_rng((seed, epoch)).permutation(num_samples)`` when
       ``shuffle``, else ``0 .. num_samples - 1``. Every rank computes the same one.
    2. ``start`` drops the first ``start`` indices of that order (an epoch resumed mid-way).
    3. The rest is made a multiple of ``world_size``: cut down to one with ``drop_last``, else
       padded by repeating the order from its beginning (as often as needed). With
       ``pad=False`` (and no ``drop_last``) it is left as it is: the shards may differ in length
       by one, and every sample is counted exactly once (for evaluation).
    4. Rank ``rank`` takes every ``world_size``-th index, starting at position ``rank``.

    >>> shard_indices(10, rank=1, world_size=4, shuffle=False)
    array([1, 5, 9])
    >>> shard_indices(10, rank=3, world_size=4, shuffle=False)   # padded with index 0
    array([3, 7, 1])
    """
    for name, value in (("num_samples", num_samples), ("epoch", epoch), ("start", start)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"shard_indices: {name} must be an integer >= 0, got {value!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
        raise ValueError(f"shard_indices: world_size must be a positive integer, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
        raise ValueError(f"shard_indices: rank must be in [0, {world_size}), got {rank!r}")
    if shuffle:
        order = np.random.default_rng((seed, epoch)).permutation(num_samples)
    else:
        order = np.arange(num_samples, dtype=np.int64)
    order = order[start:].astype(np.int64, copy=False)
    if drop_last:
        order = order[: len(order) - len(order) % world_size]
    elif pad and len(order) % world_size:
        order = np.concatenate([order, np.resize(order, world_size - len(order) % world_size)])
    return order[rank::world_size].copy()  # one block of memory: ready for MPI


class DistributedSampler:
    """The indices of this rank's shard of ``dataset`` for each epoch: ``DataLoader(..., sampler=...)``.

    As PyTorch's: each epoch a new order shared by every rank (call ``set_epoch(epoch)`` before
    each one, which :class:`~tinytorch.core.training.Trainer` does), padded so that every rank has
    the same number of samples (or cut with ``drop_last``). See :func:`shard_indices`.

    Parameters
    ----------
    dataset : sized or int
        The data set (anything with ``len()``) or its number of samples.
    num_replicas, rank : int, optional
        The world size and this process's rank; default: the world of ``tinytorch.distributed.init()``.
    shuffle : bool
        A new random order every epoch (False: the data set's order, for evaluation).
    seed : int
        The same on every rank; the order of epoch e is drawn from ``(seed, e)``.
    drop_last : bool
        Leave out the last ``len % num_replicas`` samples instead of repeating some.
    pad : bool
        Repeat a few samples so that every rank has as many (training must: every rank takes the
        same number of steps). ``pad=False`` counts every sample once, the shards differing by at
        most one: for evaluating on the ranks' shards, where each sample must count once.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pad: bool = True,
    ):
        if num_replicas is None or rank is None:
            from .comm import default_group

            world = default_group()
            num_replicas = world.world_size if num_replicas is None else num_replicas
            rank = world.rank if rank is None else rank
        self.num_samples_total = int(dataset) if isinstance(dataset, (int, np.integer)) else len(dataset)
        shard_indices(self.num_samples_total, rank, num_replicas)  # checks the arguments
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.pad = bool(shuffle), int(seed), bool(drop_last), bool(pad)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order from now on, skipping its first ``start`` samples (a resumed epoch)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: epoch must be an integer >= 0, got {epoch!r}")
        if not isinstance(start, (int, np.integer)) or not 0 <= start <= self.num_samples_total:
            raise ValueError(
                f"DistributedSampler.set_epoch: start must be in [0, {self.num_samples_total}], got {start!r}"
            )
        self.epoch, self.start = int(epoch), int(start)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        return shard_indices(
            self.num_samples_total, self.rank, self.num_replicas, self.epoch, self.seed, self.shuffle,
            self.drop_last, self.start, self.pad,
        )  # fmt: skip

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        remaining = self.num_samples_total - self.start
        if self.drop_last:
            return remaining // self.num_replicas
        if self.pad:
            return math.ceil(remaining / self.num_replicas)
        return remaining // self.num_replicas + (self.rank < remaining % self.num_replicas)

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(rank {self.rank} of {self.num_replicas}, {self.num_samples_total} samples, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, pad={self.pad}, epoch={self.epoch})"
        )
