"""Train a small CNN on Fashion-MNIST with TinyTorch: 90 %+ test accuracy on two CPU cores.

Usage:
  train_fashion_mnist.py [--epochs=<n>] [--batch-size=<n>] [--lr=<x>] [--seed=<n>] [--out=<dir>] [--quiet]
  train_fashion_mnist.py (-h | --help)

Options:
  --epochs=<n>      Passes over the 60,000 training images [default: 8].
  --batch-size=<n>  Images per step [default: 128].
  --lr=<x>          Peak learning rate of Adam's one-cycle schedule [default: 0.003].
  --seed=<n>        Seed of every random draw [default: 0].
  --out=<dir>       Where the report, history and curve go [default: examples/results/fashion_mnist].
  --quiet           Print nothing while training.

The data come from TINYTORCH_DATA (TINYTORCH_DATA=../shared/data on the course machines, which
hold byte-identical copies of the official files).
"""

from __future__ import annotations

import time
from pathlib import Path

from docopt import docopt

import tinytorch as tt
from tinytorch import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from tinytorch.core.data.transforms import RandomHorizontalFlip
from tinytorch.core.dataloader import DataLoader, FashionMNIST
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import Adam, OneCycleLR
from tinytorch.core.training import Trainer

from reporting import train_and_record


def build_model() -> Sequential:
    """Two convolution stages and a small classifier; shapes for a (N, 1, 28, 28) batch."""
    return Sequential(
        Conv2D(1, 32, kernel_size=3, padding=1, bias=False), BatchNorm2D(32), ReLU(),   # (N, 32, 28, 28)
        MaxPool2D(2),                                                                 # (N, 32, 14, 14)
        Conv2D(32, 64, kernel_size=3, padding=1, bias=False), BatchNorm2D(64), ReLU(),  # (N, 64, 14, 14)
        MaxPool2D(2),                                                                 # (N, 64, 7, 7)
        Flatten(),                                                                    # (N, 3136)
        Dense(64 * 7 * 7, 128), ReLU(), Dropout(0.3),                                 # (N, 128)
        Dense(128, 10),                                                               # (N, 10) class scores
    )


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    epochs, batch_size, lr = int(args["--epochs"]), int(args["--batch-size"]), float(args["--lr"])
    started = time.perf_counter()
    tt.manual_seed(int(args["--seed"]))
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    loaded = time.perf_counter()

    train_loader = DataLoader(train.data, train.labels, batch_size=batch_size, shuffle=True, drop_last=True,
                              transform=RandomHorizontalFlip())
    test_loader = DataLoader(test.data, test.labels, batch_size=1000)
    model = build_model()
    optimizer = Adam(model.parameters(), lr=lr)
    schedule = OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=len(train_loader))
    trainer = Trainer(model, CrossEntropyLoss(), optimizer, [Accuracy()], scheduler=schedule)
    setup = f"{epochs} epochs, batch {batch_size}, Adam with one-cycle peak lr {lr}, random flips"
    return train_and_record(trainer, train_loader, test_loader, epochs, args["--quiet"], Path(args["--out"]),
                            "Fashion-MNIST with a small TinyTorch CNN", setup, test.labels, test.classes,
                            started, loaded)


if __name__ == "__main__":
    main()
