"""The training loops and the held-out score the learning checkpoints share."""

from __future__ import annotations

import numpy as np


def train_epochs(model, optimizer, loss_fn, loader, epochs: int) -> float:
    """Train ``model`` for ``epochs`` passes over ``loader``; return the last batch's loss."""
    loss = None
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
    if loss is None:
        raise ValueError("train_epochs: the loader yielded no batch")
    return float(loss.item())


def held_out_accuracy(model, images: np.ndarray, labels: np.ndarray, batch: int = 250) -> float:
    """The fraction of ``images`` that ``model`` (in eval mode, without a graph) classifies as ``labels``."""
    import tinytorch as tt

    model.eval()
    with tt.no_grad():
        predicted = np.concatenate([model(tt.tensor(images[i : i + batch])).data.argmax(axis=1) for i in range(0, len(images), batch)])
    return float((predicted == labels).mean())


def fit_full_batch(model, optimizer, loss_fn, inputs, targets, steps: int) -> float:
    """``steps`` gradient steps on the whole of a small data set at once; return the last loss."""
    import tinytorch as tt

    inputs = tt.tensor(inputs)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    return float(loss.item())
