"""Feeding a model: datasets, batches, shuffling, augmentation and the data sets themselves (lesson 08).

A :class:`DataLoader` turns a dataset into a stream of batches. On an array-backed dataset
(:class:`TensorDataset`, :class:`CIFAR10Dataset`, :class:`MNIST`, ...) each batch is gathered with
one fancy index per array, ``images[order[start:stop]]``, instead of a Python loop over samples;
other datasets are read sample by sample and combined by a ``collate_fn``.

>>> import numpy as np
>>> import tinytorch as tt
>>> x = np.arange(10, dtype=np.float32).reshape(5, 2)
>>> y = np.array([0, 1, 2, 3, 4])
>>> loader = DataLoader(x, y, batch_size=2)            # the seed course's form
>>> len(loader)
3
>>> [labels.tolist() for _, labels in loader]
[[0, 1], [2, 3], [4]]
>>> loader = DataLoader(TensorDataset(x, y), batch_size=2, shuffle=True, drop_last=True, seed=0)
>>> [labels.tolist() for _, labels in loader]           # PyTorch's form: the same seed, the same order
[[2, 4], [3, 0]]

The data sets and transforms live in :mod:`tinytorch.core.data`; they are re-exported here, the
module the lesson teaches.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .data.dataset import ArrayDataset, Dataset, TensorDataset, to_tensor
from .data.datasets import (
    CIFAR10Dataset,
    FashionMNIST,
    MNIST,
    TinyShakespeare,
    dataset_status,
    download_cifar10,
    fetch,
)
from .data.formats import parse_cifar10_records, parse_idx
from .data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToFloat,
    Transform,
    crop_batch,
    flip_batch,
)
from .exercises import exercise
from .random import generator
from .tensor import Tensor

__all__ = [
    "ArrayDataset", "CIFAR10Dataset", "Compose", "DataLoader", "Dataset", "FashionMNIST", "MNIST", "Normalize",
    "RandomCrop", "RandomHorizontalFlip", "TensorDataset", "TinyShakespeare", "ToFloat", "Transform",
    "batch_slices", "crop_batch", "dataset_status", "default_collate", "download_cifar10", "fetch", "flip_batch",
    "parse_cifar10_records", "parse_idx",
]

PREFETCH_THREAD_NAME = "tinytorch-prefetch"


@exercise
def batch_slices(num_samples: int, batch_size: int, drop_last: bool = False) -> list[slice]:
    """The positions of each batch in an epoch of ``num_samples`` samples, as slices.

    >>> batch_slices(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> batch_slices(5, 2, drop_last=True)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_slices: batch_size must be a positive integer, got {batch_size!r}")
    if num_samples < 0:
        raise ValueError(f"batch_slices: num_samples must be >= 0, got {num_samples}")
    end = num_samples - num_samples % batch_size if drop_last else num_samples
    return [slice(start, min(start + batch_size, num_samples)) for start in range(0, end, batch_size)]


def default_collate(samples: Sequence[Any]) -> Any:
    """Combine a list of samples into a batch, field by field.

    Arrays, Tensors and numbers are stacked into one Tensor (floats float32, integers int64);
    tuples and lists of fields become a tuple of batches; dicts a dict of batches; strings a list.

    >>> default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
    (Tensor([[0., 0.],
            [1., 1.]]), Tensor([1, 0]))
    """
    if not samples:
        raise ValueError("default_collate: got no samples")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        if any(len(sample) != len(first) for sample in samples):
            counts = sorted({len(sample) for sample in samples})
            raise ValueError(f"default_collate: samples have different numbers of fields: {counts}")
        return tuple(default_collate(field) for field in zip(*samples))
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, (Tensor, np.ndarray, np.generic, int, float, bool)):
        return to_tensor(np.stack([s.data if isinstance(s, Tensor) else np.asarray(s) for s in samples]))
    raise TypeError(
        f"default_collate: cannot batch samples of type {type(first).__name__}; "
        "expected arrays, Tensors, numbers, strings, or tuples/dicts of them (or pass collate_fn=)"
    )


class DataLoader:
    """Iterate over a dataset in batches.

    Parameters
    ----------
    dataset : Dataset, array_like or Tensor
        A dataset (anything with ``__len__`` and ``__getitem__``), or the inputs as an array when
        ``labels`` is given (the seed course's ``DataLoader(data, labels, ...)``). A bare array
        without labels yields batches of its rows as plain Tensors.
    labels : array_like or Tensor, optional
        The targets that go with array inputs.
    batch_size : int
    shuffle : bool
        Visit the samples in a new random order every epoch.
    drop_last : bool
        Leave out the last batch when it is smaller than ``batch_size``.
    collate_fn : callable, optional
        Combines a list of samples into a batch; default :func:`default_collate`. Given one, the
        loader reads samples one by one even from an array dataset.
    transform : callable, optional
        Applied to the inputs of each batch (the first field, or the whole batch when it is not a
        tuple) as a NumPy array for array datasets; e.g. ``Compose([RandomCrop(32, padding=4), ...])``.
    seed : int, optional
        Shuffle and augment from this loader's own generator; default: the framework's generator
        (:func:`tinytorch.manual_seed`). Either way an epoch's random numbers are all drawn when
        its iteration starts, so the batches do not depend on prefetching or on other draws.
    prefetch : bool
        Prepare batches in a background thread while the model works on the current one (2 ahead).
    num_prefetch : int, optional
        How many batches the background thread may prepare ahead (0 = no thread); overrides ``prefetch``.
    sampler : iterable of int, optional
        The indices of an epoch, in order (anything with ``__iter__`` and ``__len__``), instead of
        ``shuffle``: a ``tinytorch.distributed.DistributedSampler`` gives each process its shard.

    Batches of array datasets are tuples of Tensors in the order of the dataset's arrays (images
    float32, labels int64).
    """

    def __init__(
        self,
        dataset: Any,
        labels: Any = None,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Callable[[list], Any] | None = None,
        transform: Callable | None = None,
        seed: int | None = None,
        prefetch: bool = False,
        num_prefetch: int | None = None,
        sampler: Any = None,
    ):
        self._single_array = False
        if labels is not None:
            dataset = TensorDataset(dataset, labels)
        elif isinstance(dataset, (np.ndarray, Tensor)):
            dataset, self._single_array = TensorDataset(dataset), True
        elif not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader needs a dataset (with __len__ and __getitem__) or arrays with labels, "
                f"got {type(dataset).__name__}"
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        depth = (2 if prefetch else 0) if num_prefetch is None else num_prefetch
        if not isinstance(depth, (int, np.integer)) or depth < 0:
            raise ValueError(f"DataLoader: num_prefetch must be an integer >= 0, got {num_prefetch!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler= decides the order, so shuffle must be False (the sampler shuffles)")
        if sampler is not None and not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
            raise TypeError(f"DataLoader: sampler must be an iterable of indices with a length, got {type(sampler).__name__}")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.transform = transform
        self.num_prefetch = int(depth)
        self._rng = None if seed is None else np.random.default_rng(seed)

    def state_dict(self) -> dict:
        """The loader's own generator state (empty when it draws from the framework's generator,
        whose state a checkpoint saves separately), so a resumed run shuffles as an unbroken one."""
        return {} if self._rng is None else {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            if self._rng is None:
                raise ValueError("DataLoader.load_state_dict: the state holds a generator, but this loader has no seed=")
            self._rng.bit_generator.state = state["rng"]

    def __len__(self) -> int:
        """The number of batches in an epoch."""
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return len(batch_slices(n, self.batch_size, self.drop_last))

    def __iter__(self) -> Iterator[Any]:
        rng = self._rng if self._rng is not None else generator()
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        else:
            n = len(self.dataset)
            order = rng.permutation(n) if self.shuffle else np.arange(n)
        # the transforms' generator is seeded now, in the caller's thread, so a prefetch thread draws the same numbers
        transform_rng = None if self.transform is None else np.random.default_rng(rng.integers(2**63))
        batches = self._batches(order, transform_rng)
        return _prefetched(batches, self.num_prefetch) if self.num_prefetch else batches

    def _batches(self, order: np.ndarray, rng: np.random.Generator | None) -> Iterator[Any]:
        fast = isinstance(self.dataset, ArrayDataset) and self.collate_fn is None
        arrays = self.dataset.arrays if fast else ()
        collate = self.collate_fn or default_collate
        for positions in batch_slices(len(order), self.batch_size, self.drop_last):
            indices = order[positions]
            if fast:
                fields = [np.take(array, indices, axis=0) for array in arrays]  # one gather per array
                fields[0] = self._transformed(fields[0], rng)
                batch = tuple(to_tensor(field) for field in fields)
                yield batch[0] if self._single_array else batch
            else:
                batch = collate([self.dataset[int(i)] for i in indices])
                if isinstance(batch, tuple):
                    yield (self._transformed(batch[0], rng), *batch[1:])
                else:
                    yield self._transformed(batch, rng)

    def _transformed(self, inputs: Any, rng: np.random.Generator | None) -> Any:
        if self.transform is None:
            return inputs
        if isinstance(self.transform, Transform):
            return self.transform(inputs, rng)
        return self.transform(inputs)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, num_prefetch={self.num_prefetch})"
        )


_END = object()


def _prefetched(batches: Iterator[Any], depth: int) -> Iterator[Any]:
    """Yield what ``batches`` yields, computing up to ``depth`` items ahead in a background thread.

    The thread is started on the first ``next`` and stopped (and joined) when the iteration ends,
    fails, or is abandoned early (the generator is closed when the ``for`` loop breaks).
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():  # poll so that a stopped consumer never leaves this thread blocked
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put((_END, error))
            return
        put((_END, None))

    worker = threading.Thread(target=produce, name=PREFETCH_THREAD_NAME, daemon=True)
    worker.start()
    try:
        while True:
            batch, error = ready.get()
            if batch is _END:
                if error is not None:
                    raise error
                return
            yield batch
    finally:
        stop.set()
        worker.join()
        batches.close()
