"""Summary statistics of images, the features drift detection compares for image models.

Comparing 3,072 raw pixels one by one would test mostly noise; a few statistics per image
capture what actually shifts in deployment: exposure (the mean of each colour channel),
contrast (the standard deviation of each channel) and sharpness or noise (the mean absolute
difference between neighbouring pixels, which blur lowers and sensor noise raises).

>>> import numpy as np
>>> images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
>>> names, table = image_statistics(images)
>>> names
['mean_c0', 'mean_c1', 'mean_c2', 'std_c0', 'std_c1', 'std_c2', 'edge_strength']
>>> table.shape
(4, 7)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["image_statistics"]


def image_statistics(images: Any) -> tuple[list[str], np.ndarray]:
    """Per image: each channel's mean and standard deviation, and the edge strength.

    Parameters
    ----------
    images : array_like
        (N, C, H, W) images (any scale: raw [0, 1] pixels or standardised ones).

    Returns
    -------
    (names, table)
        The feature names and an (N, 2C + 1) float64 table, one row per image.
    """
    x = np.asarray(getattr(images, "data", images), dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"image_statistics: expected (N, C, H, W) images, got shape {x.shape}")
    channels = x.shape[1]
    means = x.mean(axis=(2, 3))
    stds = x.std(axis=(2, 3))
    edges = (np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=3)).mean(axis=(1, 2, 3))) / 2
    names = [f"mean_c{c}" for c in range(channels)] + [f"std_c{c}" for c in range(channels)] + ["edge_strength"]
    return names, np.column_stack([means, stds, edges])
