"""The seed course's README example runs as written, on a few CIFAR-shaped images.

The seed promised this program; its model (two 3x3 convolutions, then a 50,176 -> 128 dense layer)
is the one its README shows, trained here on 16 synthetic 3x32x32 images so the test stays fast.
"""

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.activations import ReLU
from tinytorch.core.dataloader import DataLoader
from tinytorch.core.layers import Dense
from tinytorch.core.networks import Sequential
from tinytorch.core.optimizers import Adam
from tinytorch.core.spatial import Conv2D
from tinytorch.core.training import (
    Accuracy,
    CrossEntropyLoss,
    Trainer,
    evaluate_model,
    load_state,
    plot_training_history,
)


def _cifar_shaped(n, seed):
    """uint8 images as CIFAR-10 stores them, scaled to [0, 1]; the class shows in the mean brightness of one channel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.float32) / 255
    images[np.arange(n), labels % 3] *= 0.5 + labels[:, None, None] / 20
    return images, labels


def test_seed_readme_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes best_model.pkl and the plot into the working directory
    x, y = _cifar_shaped(16, seed=0)
    vx, vy = _cifar_shaped(8, seed=1)
    train_loader = DataLoader(x, y, batch_size=8, shuffle=True)
    val_loader = DataLoader(vx, vy, batch_size=8)
    test_loader = DataLoader(*_cifar_shaped(8, seed=2), batch_size=8)

    # -- the seed course's README, as written ------------------------------------------------------
    model = Sequential(
        [
            Conv2D(3, 32, kernel_size=3),
            ReLU(),
            Conv2D(32, 64, kernel_size=3),
            ReLU(),
            Dense(64 * 28 * 28, 128),
            ReLU(),
            Dense(128, 10),
        ]
    )
    trainer = Trainer(model, CrossEntropyLoss(), Adam(lr=0.001), [Accuracy()])
    history = trainer.fit(train_loader, val_loader, epochs=2, save_best=True, checkpoint_path="best_model.pkl")
    results = evaluate_model(model, test_loader)
    # ---------------------------------------------------------------------------------------------

    assert history["epoch"] == [1, 2] and history["train_loss"][1] < history["train_loss"][0]
    assert set(results) == {"loss", "accuracy", "num_samples"} and results["num_samples"] == 8
    assert 0.0 <= results["accuracy"] <= 1.0 and np.isfinite(results["loss"])
    saved = load_state(tmp_path / "best_model.pkl")  # a .npz under the seed's name, not a pickle
    assert saved["model"]["4.weight"].shape == (128, 64 * 28 * 28)
    assert saved["extra"]["trainer"]["epoch"] == int(np.argmin(history["val_loss"])) + 1

    pytest.importorskip("matplotlib", reason="plotting is the optional extra tinytorch[plot]")
    assert plot_training_history(history).read_bytes()[:4] == b"\x89PNG"


def test_the_names_are_also_at_the_top_level():
    for name in (
        "Sequential",
        "Conv2D",
        "ReLU",
        "Dense",
        "Trainer",
        "CrossEntropyLoss",
        "Adam",
        "Accuracy",
        "evaluate_model",
        "plot_training_history",
    ):
        assert hasattr(tt, name), name
