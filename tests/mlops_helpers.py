"""Models, packages and servers the MLOps tests share, and the torch.nn twin of a described architecture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

import tinytorch as tt

CLASSES = [f"class{i}" for i in range(10)]


def small_cnn() -> tt.Sequential:
    """The CIFAR example's architecture, shrunk: conv-BN-ReLU-pool twice, then a Dense head."""
    model = tt.Sequential(
        tt.Conv2D(3, 8, kernel_size=3, padding=1, bias=False), tt.BatchNorm2D(8), tt.ReLU(), tt.MaxPool2D(2),
        tt.Conv2D(8, 16, kernel_size=3, padding=1, bias=False), tt.BatchNorm2D(16), tt.ReLU(), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(16 * 2 * 2, 32), tt.ReLU(), tt.Dropout(0.1), tt.Dense(32, 10),
    )
    randomize_batch_norm(model)
    return model


def randomize_batch_norm(model: tt.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine weights, so that BatchNorm's evaluation path is really tested."""
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, (tt.BatchNorm2D, tt.BatchNorm1D)) and module.track_running_stats:
            c = module.num_features
            module.running_mean.data[...] = rng.normal(0, 0.5, c)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            if module.affine:
                module.weight.data[...] = rng.uniform(0.5, 1.5, c)
                module.bias.data[...] = rng.normal(0, 0.2, c)
            module.num_batches_tracked.data[...] = 7


def mlp() -> tt.Sequential:
    return tt.Sequential(tt.Dense(12, 16), tt.ReLU(), tt.Dense(16, 10))


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, 8, 8)).astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def make_package(folder: Path, model: tt.Module | None = None, example: np.ndarray | None = None, **kwargs) -> Path:
    from tinytorch.core.mlops import package

    model = model if model is not None else mlp()
    example = example if example is not None else np.zeros((1, 12), np.float32)
    kwargs.setdefault("classes", CLASSES)
    return package(model, folder, signature=example, **kwargs)


def torch_twin(config: dict):
    """The torch.nn model that :func:`tinytorch.core.mlops.architecture_config` describes (same names and layouts)."""
    import torch.nn as nn

    def build(c: dict):
        kind = c["type"]
        if kind == "Sequential":
            return nn.Sequential(*(build(layer) for layer in c["layers"]))
        if kind == "Dense":
            return nn.Linear(c["in_features"], c["out_features"], bias=c["bias"])
        if kind == "Conv2D":
            return nn.Conv2d(c["in_channels"], c["out_channels"], tuple(c["kernel_size"]), tuple(c["stride"]),
                             tuple(c["padding"]), bias=c["bias"])
        if kind in ("BatchNorm1D", "BatchNorm2D"):
            cls = nn.BatchNorm1d if kind == "BatchNorm1D" else nn.BatchNorm2d
            return cls(c["num_features"], eps=c["eps"], momentum=c["momentum"], affine=c["affine"],
                       track_running_stats=c["track_running_stats"])
        if kind in ("MaxPool2D", "AvgPool2D"):
            cls = nn.MaxPool2d if kind == "MaxPool2D" else nn.AvgPool2d
            return cls(tuple(c["kernel_size"]), tuple(c["stride"]), tuple(c["padding"]))
        simple = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "Identity": nn.Identity}
        if kind in simple:
            return simple[kind]()
        if kind == "Flatten":
            return nn.Flatten(c["start_axis"], c["end_axis"])
        if kind == "Dropout":
            return nn.Dropout(c["p"])
        if kind == "GELU":
            return nn.GELU(approximate=c["approximate"])
        if kind == "LayerNorm":
            return nn.LayerNorm(c["normalized_shape"], eps=c["eps"], elementwise_affine=c["elementwise_affine"],
                                bias=c.get("bias", True))
        raise NotImplementedError(kind)

    return build(config)
