"""The real data sets: CIFAR-10, MNIST, Fashion-MNIST and Tiny Shakespeare, plus the back end of ``tito data``.

Files are found, checked, downloaded and unpacked by :mod:`.files` (see there for ``root``,
``TINYTORCH_DATA``, ``TINYTORCH_CACHE`` and ``trust_local``); the formats are read by
:mod:`.formats`.

Pixels are uint8 on disk and float32 here: divided by 255 into [0, 1], or, for CIFAR-10 with
``normalize=True``, standardised per channel with the training set's mean and std
(:data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`). Labels are int64 class indices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import ArrayDataset
from .files import DataFormatError, data_root, identify, require, unpacked
from .formats import CIFAR10_RECORD_BYTES, parse_cifar10_records, read_idx
from .registry import DATASETS, dataset_info
from .transforms import normalize_channels, to_unit_float

PathLike = str | os.PathLike

#: per-channel mean and std (red, green, blue) of the 50,000 CIFAR-10 training images, pixels in [0, 1]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_SPLITS = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}


CIFAR10_MEMBERS = tuple(f"{CIFAR10_FOLDER}/{name}" for names in CIFAR10_SPLITS.values() for name in names)


def download_cifar10(root: PathLike | None = None, trust_local: bool = False, download: bool = True) -> Path:
    """Make sure the CIFAR-10 archive is here (downloading it if not) and unpacked; returns the
    folder that holds ``data_batch_1.bin`` ... ``test_batch.bin``."""
    info = dataset_info("cifar10")
    archive = require(info, root, download, trust_local)[info.files[0].name]
    return unpacked(archive, CIFAR10_MEMBERS) / CIFAR10_FOLDER


def _read_cifar10_split(files: list[Path], dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N,) int64 from CIFAR-10 binary batch files; the images are
    float32 in [0, 1], or the uint8 pixels as stored when ``dtype`` is uint8.

    Each file is one ``read_bytes`` and one ``np.frombuffer``; its pixels are converted straight
    into their slice of the preallocated result, so no uint8 copy of the whole split is made.
    """
    sizes = [path.stat().st_size // CIFAR10_RECORD_BYTES for path in files]
    images = np.empty((sum(sizes), 3, 32, 32), dtype=dtype)
    labels = np.empty(sum(sizes), dtype=np.int64)
    start = 0
    for path, size in zip(files, sizes):
        pixels, classes = parse_cifar10_records(path.read_bytes(), source=str(path))
        if len(pixels) != size:
            raise DataFormatError(f"{path} changed size while it was read")
        if images.dtype == np.uint8:
            images[start : start + size] = pixels
        else:
            to_unit_float(pixels, out=images[start : start + size])
        labels[start : start + size] = classes
        start += size
    return images, labels


class _ImageSplit(ArrayDataset):
    """A labelled image set of which one split (``train``) is seen through ``data`` and ``labels``."""

    train: bool
    data: np.ndarray
    labels: np.ndarray

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data, self.labels

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}: {len(self)} images of shape {self.data.shape[1:]})"


class CIFAR10Dataset(_ImageSplit):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 for training, 10,000 for testing).

    Parameters
    ----------
    root : path, optional
        The data root (holding ``cifar10/cifar-10-binary.tar.gz``); default ``$TINYTORCH_DATA``,
        else pooch's cache folder. The known JPEG-derived copy ``cifar10/cifar-10-binary.tar.xz``
        of the offline machines is used, with a warning, when the official archive is not there.
    train : bool
        Which split ``len``, indexing and a DataLoader see (both stay available as attributes).
    download : bool
        Download the archive when it is missing (else a missing archive is an error).
    flatten : bool
        Images as (N, 3072) rows, for MLPs, instead of (N, 3, 32, 32).
    normalize : bool
        Standardise each channel with :data:`CIFAR10_MEAN` and :data:`CIFAR10_STD` instead of
        leaving pixels in [0, 1].
    trust_local : bool
        Use a local archive whose hash is unknown (see :mod:`tinytorch.core.data.files`).
    dtype : float32 or uint8
        ``np.uint8`` keeps the pixels as stored (0..255), in a quarter of the memory (150 MB for
        the training split instead of 600 MB); convert each batch instead, with the ``ToFloat``
        and ``Normalize`` transforms. It cannot be combined with ``normalize``.

    Attributes
    ----------
    train_data, test_data : ndarray of float32 (or uint8), (N, 3, 32, 32) or (N, 3072)
        Read from the binary batch files the first time they are used (the chosen split at once).
    train_labels, test_labels : ndarray of int64, (N,)
    classes : tuple of str
    """

    def __init__(
        self,
        root: PathLike | None = None,
        train: bool = True,
        download: bool = True,
        flatten: bool = False,
        normalize: bool = False,
        trust_local: bool = False,
        dtype: Any = np.float32,
    ):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
            raise ValueError(f"CIFAR10Dataset: dtype must be float32 or uint8, got {self.dtype}")
        if normalize and self.dtype == np.uint8:
            raise ValueError("CIFAR10Dataset: normalize=True needs float32 pixels; with dtype=uint8 normalise "
                             "each batch (transforms ToFloat and Normalize)")
        self.folder = download_cifar10(root, trust_local, download)
        self.classes = dataset_info("cifar10").classes
        self.train, self.flatten, self.normalize = train, flatten, normalize
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._split("train" if train else "test")  # read now, so a bad file fails here

    def _split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        if which not in self._splits:
            images, labels = _read_cifar10_split([self.folder / name for name in CIFAR10_SPLITS[which]], self.dtype)
            _check_labels(labels, len(self.classes), self.folder)
            if self.normalize:
                normalize_channels(images, CIFAR10_MEAN, CIFAR10_STD, out=images)
            self._splits[which] = (images.reshape(len(images), -1) if self.flatten else images, labels)
        return self._splits[which]

    train_data = property(lambda self: self._split("train")[0], doc="The 50,000 training images.")
    train_labels = property(lambda self: self._split("train")[1], doc="The training labels.")
    test_data = property(lambda self: self._split("test")[0], doc="The 10,000 test images.")
    test_labels = property(lambda self: self._split("test")[1], doc="The test labels.")
    data = property(lambda self: self._split("train" if self.train else "test")[0], doc="The chosen split's images.")
    labels = property(lambda self: self._split("train" if self.train else "test")[1], doc="The chosen split's labels.")



def _check_labels(labels: np.ndarray, num_classes: int, source: Any) -> None:
    if labels.size and labels.max() >= num_classes:
        raise DataFormatError(f"{source} holds label {labels.max()}, but there are only {num_classes} classes")


class _IDXDataset(_ImageSplit):
    """An MNIST-style set: 28x28 grey images and labels in IDX files, one pair per split."""

    dataset_name = ""

    def __init__(
        self,
        root: PathLike | None = None,
        train: bool = True,
        download: bool = True,
        flatten: bool = False,
        trust_local: bool = False,
    ):
        info = dataset_info(self.dataset_name)
        prefix = "train" if train else "t10k"
        image_file, label_file = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
        files = require(info, root, download, trust_local, only=(image_file, label_file))
        images = read_idx(files[image_file].path, ndim=3)
        labels = read_idx(files[label_file].path, ndim=1)
        if images.dtype != np.uint8 or labels.dtype != np.uint8 or len(images) != len(labels):
            raise DataFormatError(
                f"{info.title}: {image_file} holds {images.dtype} {images.shape} and {label_file} {labels.dtype} "
                f"{labels.shape}; expected uint8 images (N, H, W) and N uint8 labels"
            )
        _check_labels(labels, len(info.classes), files[label_file].path)
        self.train, self.classes = train, info.classes
        pixels = to_unit_float(images)
        self.data = pixels.reshape(len(pixels), -1) if flatten else pixels[:, None]
        self.labels = labels.astype(np.int64)



class MNIST(_IDXDataset):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grey, 10 classes.

    ``data`` is float32 in [0, 1], (N, 1, 28, 28) or (N, 784) with ``flatten=True``; ``labels``
    int64. Only the chosen split's two files are read (and downloaded when missing). The other
    arguments are those of :class:`CIFAR10Dataset`.
    """

    dataset_name = "mnist"


class FashionMNIST(_IDXDataset):
    """Fashion-MNIST (Zalando): MNIST's format and sizes, 10 classes of clothing. See :class:`MNIST`."""

    dataset_name = "fashion-mnist"


class TinyShakespeare:
    """The 1,115,394-character Shakespeare corpus of char-rnn, as one string ``text``.

    >>> corpus = TinyShakespeare()                                # doctest: +SKIP
    >>> train_text, val_text = corpus.split(0.1)                  # doctest: +SKIP
    """

    def __init__(self, root: PathLike | None = None, download: bool = True, trust_local: bool = False):
        info = dataset_info("tinyshakespeare")
        local = require(info, root, download, trust_local)[info.files[0].name]
        self.path = local.path
        try:
            self.text = local.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{local.path} is not UTF-8 text ({error})") from None

    def __len__(self) -> int:
        return len(self.text)

    def split(self, val_fraction: float = 0.1) -> tuple[str, str]:
        """The text cut in two: the first ``1 - val_fraction`` for training, the rest for validation."""
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"TinyShakespeare.split: val_fraction must be in [0, 1), got {val_fraction!r}")
        cut = round(len(self.text) * (1.0 - val_fraction))
        return self.text[:cut], self.text[cut:]

    def __repr__(self) -> str:
        return f"TinyShakespeare({len(self)} characters, {len(set(self.text))} distinct)"


def dataset_status(root: PathLike | None = None) -> list[dict[str, Any]]:
    """What ``tito data`` shows: for every registered file, whether it is here and verified.

    Each dict has ``dataset``, ``title``, ``file`` (the official name), ``path`` (the file found,
    else where it belongs), ``present``, ``verified`` (its hash is the official one or that of a
    known copy), ``status`` (``"official"``, ``"known copy"``, ``"hash mismatch"`` or
    ``"missing"``) and ``url``. Every present file is hashed (CIFAR-10 takes a few tenths of a second).
    """
    rows = []
    for info in DATASETS.values():
        folder = data_root(root) / info.folder
        for remote in info.files:
            path, status = identify(remote, folder)
            rows.append({
                "dataset": info.name,
                "title": info.title,
                "file": remote.name,
                "path": str(path if path is not None else folder / remote.name),
                "present": path is not None,
                "verified": status in ("official", "known copy"),
                "status": status,
                "url": remote.url,
            })
    return rows


def fetch(name: str, root: PathLike | None = None, trust_local: bool = False) -> dict[str, Path]:
    """Make sure every file of data set ``name`` is here and verified, downloading what is missing;
    returns {file name: path} (``tito data fetch NAME``)."""
    return {file: local.path for file, local in require(dataset_info(name), root, trust_local=trust_local).items()}
