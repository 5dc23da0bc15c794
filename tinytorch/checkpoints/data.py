"""Real data for the checkpoints that learn: slices of MNIST (digits), Fashion-MNIST (clothing) and
CIFAR-10 (photographs), and the text of Tiny Shakespeare.

The checkpoints train on real data, never on synthetic stand-ins, and never download: the files
are read from the data folder (``TINYTORCH_DATA``, else the pooch cache; see
:mod:`tinytorch.core.data.files`). Only a data set's test split is read (one small file, checked
against its official hash), in a fixed shuffled order (the files are sorted by writer group):
the first images of that order train, the last ones are held out, so the two parts never share
an image. Without the files the checkpoint fails and says where to get them.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import CheckpointFailed

TITLES = {
    "mnist": "MNIST handwritten digits",
    "fashion-mnist": "Fashion-MNIST images of clothing",
    "cifar10": "CIFAR-10 photographs",
    "tinyshakespeare": "Tiny Shakespeare text",
}


def unreadable(name: str, error: Exception) -> CheckpointFailed:
    """The failure of a checkpoint that could not read data set ``name``, saying where to get it."""
    return CheckpointFailed(
        f"this checkpoint learns from real {TITLES[name]}, which it could not read: {error} To get them: point "
        f"TINYTORCH_DATA at a folder holding {name}/ (on the course machines: export TINYTORCH_DATA=../shared/data), "
        f"or download them: tito data fetch {name}"
    )


def real_images(
    name: str, train: int, held_out: int, flatten: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``train`` images of data set ``name`` (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``) to learn
    from and ``held_out`` others to score on.

    Returns (x_train, y_train, x_test, y_test): float32 images in [0, 1], (N, C, H, W) or (N, C*H*W)
    with ``flatten``, and int64 labels. Raises :class:`CheckpointFailed` when the files are not on disk.
    CIFAR-10's records are read with ``parse_cifar10_records`` (lesson 08), the student's when a
    workspace is in use; the offline machines' JPEG-derived copy of it is accepted without a warning
    (the checkpoint's accuracy bound allows for it).
    """
    import warnings

    from tinytorch.core.data.files import DataIntegrityError, DataUnavailableError, DerivedCopyWarning
    from tinytorch.core.dataloader import MNIST, CIFAR10Dataset, FashionMNIST

    datasets = {"mnist": MNIST, "fashion-mnist": FashionMNIST, "cifar10": CIFAR10Dataset}
    if name not in datasets:
        raise ValueError(f"real_images: unknown data set {name!r}; expected one of {', '.join(datasets)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DerivedCopyWarning)
            split = datasets[name](train=False, download=False, flatten=flatten)
    except (DataUnavailableError, DataIntegrityError) as error:
        raise unreadable(name, error) from error
    if train + held_out > len(split.data):
        raise ValueError(f"real_images: asked for {train} + {held_out} images; the test split of {name} has {len(split.data)}")
    order = np.random.default_rng(0).permutation(len(split.data))
    learn, score = order[:train], order[len(order) - held_out :]
    return split.data[learn], split.labels[learn], split.data[score], split.labels[score]


def shakespeare() -> str:
    """The whole of Tiny Shakespeare (1,115,394 characters); :class:`CheckpointFailed` when it is not on disk."""
    from tinytorch.core.data.files import DataIntegrityError, DataUnavailableError
    from tinytorch.core.dataloader import TinyShakespeare

    try:
        return TinyShakespeare(download=False).text
    except (DataUnavailableError, DataIntegrityError) as error:
        raise unreadable("tinyshakespeare", error) from error
