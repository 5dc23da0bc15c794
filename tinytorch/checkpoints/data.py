"""Real data for the checkpoints that learn: slices of MNIST (digits) and Fashion-MNIST (clothing).

The checkpoints train on real images, never on synthetic stand-ins, and never download: the files
are read from the data folder (``TINYTORCH_DATA``, else the pooch cache; see
:mod:`tinytorch.core.data.files`). Only a data set's test split is read (one small file, checked
against its official hash), in a fixed shuffled order (the files are sorted by writer group):
the first images of that order train, the last ones are held out, so the two parts never share
an image. Without the files the checkpoint fails and says where to get them.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.probe import CheckpointFailed

TITLES = {"mnist": "MNIST handwritten digits", "fashion-mnist": "Fashion-MNIST images of clothing"}


def real_images(
    name: str, train: int, held_out: int, flatten: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``train`` images of data set ``name`` (``"mnist"``, ``"fashion-mnist"``) to learn from and
    ``held_out`` others to score on.

    Returns (x_train, y_train, x_test, y_test): float32 images in [0, 1], (N, 1, 28, 28) or (N, 784)
    with ``flatten``, and int64 labels. Raises :class:`CheckpointFailed` when the files are not on disk.
    """
    from tinytorch.core.data.files import DataIntegrityError, DataUnavailableError
    from tinytorch.core.dataloader import MNIST, FashionMNIST

    if name not in TITLES:
        raise ValueError(f"real_images: unknown data set {name!r}; expected one of {', '.join(TITLES)}")
    try:
        split = (MNIST if name == "mnist" else FashionMNIST)(train=False, download=False, flatten=flatten)
    except (DataUnavailableError, DataIntegrityError) as error:
        raise CheckpointFailed(
            f"this checkpoint learns from real {TITLES[name]}, which it could not read: {error} To get them: point "
            f"TINYTORCH_DATA at a folder holding {name}/ (on the course machines: export TINYTORCH_DATA=../shared/data), "
            f"or download them: tito data fetch {name}"
        ) from error
    if train + held_out > len(split.data):
        raise ValueError(f"real_images: asked for {train} + {held_out} images; the test split of {name} has {len(split.data)}")
    order = np.random.default_rng(0).permutation(len(split.data))
    learn, score = order[:train], order[len(order) - held_out :]
    return split.data[learn], split.labels[learn], split.data[score], split.labels[score]
