"""The inputs of every benchmark case, in NumPy only, so that each framework's side builds the same ones.

Side modules (``tinytorch_side.py``, ``torch_side.py``, ``numpy_side.py``) import this and their own
framework; this module imports no framework. Every array comes from a seeded generator, so two
processes that ask for the same case get bit-identical inputs.
"""

from __future__ import annotations

import numpy as np

BATCH = 64

# -- the reference CNN: three blocks of conv 3x3 (padding 1) -> batch norm -> ReLU -> max-pool 2x2,
# channels 3 -> 32 -> 64 -> 128 and images 32 -> 16 -> 8 -> 4, then dense 2048 -> 256, ReLU, 256 -> 10.
CNN_BLOCKS = ((3, 32), (32, 64), (64, 128))
CNN_HIDDEN, CNN_CLASSES = 256, 10
TRAIN_BATCH, INFER_BATCH = 64, 256
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def normal(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> np.ndarray:
    return rng(seed).standard_normal(shape, dtype=np.float32) * np.float32(scale)


def conv_inputs(c_in: int, c_out: int, side: int, batch: int = BATCH) -> dict[str, np.ndarray]:
    """A 3x3 convolution's x (N, C, S, S), weight, bias and an output gradient (padding 1, stride 1)."""
    return {
        "x": normal((batch, c_in, side, side), 0),
        "weight": normal((c_out, c_in, 3, 3), 1, 0.1),
        "bias": normal((c_out,), 2),
        "grad": normal((batch, c_out, side, side), 3),
    }


def cnn_state(seed: int = 0) -> dict[str, np.ndarray]:
    """Initial weights of the reference CNN under PyTorch's ``nn.Sequential`` names (TinyTorch uses the same).

    Uniform in +-1/sqrt(fan_in) like both frameworks' default initialisation; batch norm starts at
    gamma 1, beta 0, running mean 0, running variance 1.
    """
    generator = rng(seed)
    state: dict[str, np.ndarray] = {}

    def uniform(shape, fan_in):
        bound = 1 / np.sqrt(fan_in)
        return generator.uniform(-bound, bound, shape).astype(np.float32)

    index = 0
    for c_in, c_out in CNN_BLOCKS:
        state[f"{index}.weight"] = uniform((c_out, c_in, 3, 3), c_in * 9)
        state[f"{index}.bias"] = uniform((c_out,), c_in * 9)
        bn = index + 1
        state[f"{bn}.weight"] = np.ones(c_out, np.float32)
        state[f"{bn}.bias"] = np.zeros(c_out, np.float32)
        state[f"{bn}.running_mean"] = np.zeros(c_out, np.float32)
        state[f"{bn}.running_var"] = np.ones(c_out, np.float32)
        state[f"{bn}.num_batches_tracked"] = np.array(0, np.int64)
        index += 4  # conv, batch norm, ReLU, max-pool
    flat = CNN_BLOCKS[-1][1] * 4 * 4
    dense = index + 1  # after Flatten
    state[f"{dense}.weight"] = uniform((CNN_HIDDEN, flat), flat)
    state[f"{dense}.bias"] = uniform((CNN_HIDDEN,), flat)
    state[f"{dense + 2}.weight"] = uniform((CNN_CLASSES, CNN_HIDDEN), CNN_HIDDEN)
    state[f"{dense + 2}.bias"] = uniform((CNN_CLASSES,), CNN_HIDDEN)
    return state


def cnn_batch(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-shaped float32 batch (N, 3, 32, 32) and its int64 labels."""
    generator = rng(seed)
    return generator.standard_normal((size, 3, 32, 32), dtype=np.float32), generator.integers(0, CNN_CLASSES, size)
