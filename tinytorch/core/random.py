"""One random generator for the whole framework, so ``manual_seed`` makes every draw reproducible.

Initialisation, dropout, shuffling and augmentation all draw from :func:`generator`. Its state is
a plain dictionary (:func:`get_rng_state`), which a checkpoint stores as JSON so that a resumed
run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the framework's generator; returns it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    """The framework's generator (replaced by each ``manual_seed``)."""
    return _generator


def get_rng_state() -> dict:
    """The generator's state, a JSON-serialisable dictionary."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from :func:`get_rng_state`."""
    _generator.bit_generator.state = state
