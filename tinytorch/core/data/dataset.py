"""Datasets: anything with a length whose samples can be read by index (PyTorch's map-style datasets).

:class:`ArrayDataset` is the fast kind: its samples are rows of NumPy arrays that share their first
dimension, so a :class:`~tinytorch.core.dataloader.DataLoader` gathers a whole batch with one
fancy index per array instead of a Python loop over samples.

>>> import numpy as np
>>> data = TensorDataset(np.arange(12.0).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1]))
>>> len(data)
6
>>> x, y = data[4]
>>> x, y
(Tensor([8., 9.]), Tensor(0))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


def to_tensor(array: np.ndarray) -> Tensor:
    """A batch array as a Tensor: floats become float32 (the framework's default), integers int64.

    int64 is what losses and embeddings take as class indices, whatever the labels were stored as.
    """
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        return Tensor(array, dtype=np.int64)
    if array.dtype.kind in "fb":
        return Tensor(array, dtype=np.float32 if array.dtype.kind == "f" else np.bool_)
    raise TypeError(f"to_tensor: cannot make a batch tensor from an array of dtype {array.dtype}; expected numbers")


class Dataset:
    """A map-style dataset: ``len(dataset)`` samples, ``dataset[i]`` returns sample ``i``.

    Subclass it and define ``__len__`` and ``__getitem__``; a sample may be an array, a Tensor, a
    number, or a tuple or dict of those (see :func:`~tinytorch.core.dataloader.default_collate`).
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class ArrayDataset(Dataset):
    """A dataset whose sample ``i`` is row ``i`` of each array in :attr:`arrays`."""

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays, all of the same length (first dimension): inputs first, then targets."""
        raise NotImplementedError(f"{type(self).__name__} must define the property arrays")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(to_tensor(array[index]) for array in self.arrays)


class TensorDataset(ArrayDataset):
    """Samples that are the rows of the given arrays or Tensors, e.g. ``TensorDataset(images, labels)``.

    Parameters
    ----------
    *arrays : array_like or Tensor
        At least one; all with the same length along their first dimension. They are kept as
        NumPy arrays (a Tensor's ``.data``, without a copy).
    """

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array, got none")
        self._arrays = tuple(np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays)
        if any(a.ndim == 0 for a in self._arrays):
            raise ValueError(
                f"TensorDataset got arrays of shapes {[a.shape for a in self._arrays]}; "
                "each needs a first (sample) dimension"
            )
        lengths = [len(a) for a in self._arrays]
        if len(set(lengths)) > 1:
            raise ValueError(
                f"TensorDataset got arrays of shapes {[a.shape for a in self._arrays]}; "
                f"they must have the same length (first dimension), got lengths {lengths}"
            )

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        return self._arrays
