"""Batch transforms: augmentation and normalisation applied to a whole batch at once.

Each transform takes a batch of images ``(N, C, H, W)`` (a NumPy array or a Tensor) and returns a
new batch; the random ones draw one crop offset or one coin flip *per image*, all in one call to
the generator, and move the pixels with one vectorised gather. A DataLoader applies its
``transform`` to the inputs of every batch.

Randomness, in order of precedence: a transform built with ``seed=`` has its own generator; else
it uses the generator it is called with (``transform(batch, rng=...)``: the DataLoader passes one
per epoch, drawn from its own seed or the framework's, so prefetching changes nothing); else the
framework's generator (:func:`tinytorch.manual_seed`).

>>> import numpy as np
>>> batch = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
>>> crop_batch(batch, top=np.array([0, 1]), left=np.array([2, 0]), size=2)[1, 0]
array([[20., 21.],
       [24., 25.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..exercises import exercise
from ..random import generator
from ..tensor import Tensor


@exercise
def crop_batch(images: np.ndarray, top: np.ndarray, left: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Cut a window out of every image of a batch, each at its own position, with one gather.

    Parameters
    ----------
    images : ndarray, shape (N, C, H, W)
    top, left : int arrays, shape (N,)
        The row and column of each window's top-left corner.
    size : int or (int, int)
        The window's height and width.

    Returns
    -------
    ndarray, shape (N, C, height, width): ``out[n] == images[n, :, top[n]:top[n]+height, left[n]:left[n]+width]``.
    """
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    n, _, rows, cols = _check_images("crop_batch", images).shape
    top, left = np.asarray(top), np.asarray(left)
    if top.shape != (n,) or left.shape != (n,):
        raise ValueError(f"crop_batch: top and left must have shape ({n},), got {top.shape} and {left.shape}")
    if height > rows or width > cols or top.min(initial=0) < 0 or left.min(initial=0) < 0 \
            or top.max(initial=0) > rows - height or left.max(initial=0) > cols - width:
        raise ValueError(
            f"crop_batch: a {height}x{width} window at rows {top.min(initial=0)}..{top.max(initial=0)}, "
            f"columns {left.min(initial=0)}..{left.max(initial=0)} does not fit in {rows}x{cols} images"
        )
    windows = sliding_window_view(images, (height, width), axis=(2, 3))  # (N, C, rows-h+1, cols-w+1, h, w), no copy
    return windows[np.arange(n), :, top, left]  # the advanced indices pick (N,), then C, h, w follow


@exercise
def flip_batch(images: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Mirror left-right the images whose ``flip`` entry is True; the others are copied as they are.

    ``images`` is (N, ..., W) with the width last; ``flip`` is a boolean array of shape (N,).
    """
    images = np.asarray(images)
    flip = np.asarray(flip, dtype=bool)
    if images.ndim < 2 or flip.shape != images.shape[:1]:
        raise ValueError(f"flip_batch: got images of shape {images.shape} and flip of shape {flip.shape}; "
                         "expected (N, ..., W) and (N,)")
    return np.where(flip.reshape(-1, *[1] * (images.ndim - 1)), images[..., ::-1], images)


def to_unit_float(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 pixels 0..255 as float32 in [0, 1] (into ``out`` when given)."""
    return np.divide(images, np.float32(255), out=out, dtype=np.float32)


def normalize_channels(images: np.ndarray, mean: Any, std: Any, out: np.ndarray | None = None) -> np.ndarray:
    """``(images - mean[c]) / std[c]`` for each channel ``c`` (axis 1); into ``out`` when given."""
    dtype = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    mean, std = np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype)
    channels = max(mean.size, std.size)
    if mean.ndim > 1 or std.ndim > 1 or images.ndim < 2 or (channels > 1 and images.shape[1] != channels):
        raise ValueError(
            f"Normalize with {mean.size} means and {std.size} stds got a batch of shape {images.shape}; "
            f"expected (N, {channels}, ...) with the channels on axis 1"
        )
    if np.any(std == 0):
        raise ValueError(f"Normalize: std must not be zero, got {std.tolist()}")
    per_channel = (1, -1) + (1,) * (images.ndim - 2)
    out = np.subtract(images, mean.reshape(per_channel), out=out, dtype=dtype)
    return np.divide(out, std.reshape(per_channel), out=out)


def _check_images(name: str, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{name} expects a batch of images (N, C, H, W), got shape {images.shape}")
    return images


class Transform:
    """A batch transform. Subclasses define :meth:`apply` on NumPy arrays."""

    def __call__(self, batch: Any, rng: np.random.Generator | None = None) -> Any:
        if isinstance(batch, Tensor):
            return Tensor(self.apply(batch.data, rng))
        return self.apply(np.asarray(batch), rng)

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define apply")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class RandomTransform(Transform):
    """A transform that draws random numbers: from its own seed, the caller's ``rng``, or the framework's."""

    def __init__(self, seed: int | None = None):
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _generator(self, rng: np.random.Generator | None) -> np.random.Generator:
        if self._rng is not None:
            return self._rng
        return rng if rng is not None else generator()


class Compose(Transform):
    """Apply transforms one after another: ``Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        for transform in self.transforms:
            batch = transform(batch, rng) if isinstance(transform, Transform) else np.asarray(transform(batch))
        return batch


class ToFloat(Transform):
    """uint8 images (0..255) to float32 in [0, 1]."""

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if batch.dtype != np.uint8:
            raise ValueError(f"ToFloat expects uint8 pixels, got dtype {batch.dtype}")
        return to_unit_float(batch)


class Normalize(Transform):
    """Standardise each channel: ``(x - mean[c]) / std[c]`` on axis 1 of an (N, C, ...) batch."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        self.mean, self.std = mean, std

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return normalize_channels(batch, self.mean, self.std)


class RandomCrop(RandomTransform):
    """Pad each image with ``padding`` zeros on every side, then cut a ``size`` window at a random place.

    ``RandomCrop(32, padding=4)`` is the classic CIFAR-10 augmentation: shifts of up to 4 pixels.
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, seed: int | None = None):
        super().__init__(seed)
        height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if height <= 0 or width <= 0 or padding < 0:
            raise ValueError(
                f"RandomCrop needs a positive size and padding >= 0, got size={size!r}, padding={padding!r}"
            )
        self.size, self.padding = (int(height), int(width)), int(padding)

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        n, _, rows, cols = _check_images("RandomCrop", batch).shape
        p, (height, width) = self.padding, self.size
        if height > rows + 2 * p or width > cols + 2 * p:
            raise ValueError(f"RandomCrop{self.size} does not fit in {rows}x{cols} images padded by {p}")
        if p:
            batch = np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p)))
        draw = self._generator(rng)
        top = draw.integers(0, rows + 2 * p - height + 1, size=n)
        left = draw.integers(0, cols + 2 * p - width + 1, size=n)
        return crop_batch(batch, top, left, (height, width))


class RandomHorizontalFlip(RandomTransform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        batch = np.asarray(batch)
        return flip_batch(batch, self._generator(rng).random(len(batch)) < self.p)
