"""Train an MLP on MNIST with TinyTorch: 98 %+ test accuracy in a few minutes on two CPU cores.

Usage:
  train_mnist.py [--epochs=<n>] [--batch-size=<n>] [--lr=<x>] [--seed=<n>] [--out=<dir>] [--quiet]
  train_mnist.py (-h | --help)

Options:
  --epochs=<n>      Passes over the 60,000 training images [default: 12].
  --batch-size=<n>  Images per step [default: 128].
  --lr=<x>          Adam's learning rate, cosine-annealed to zero [default: 0.001].
  --seed=<n>        Seed of every random draw [default: 0].
  --out=<dir>       Where the report, history and curve go [default: examples/results/mnist].
  --quiet           Print nothing while training.

The data come from TINYTORCH_DATA (TINYTORCH_DATA=../shared/data on the course machines, which
hold byte-identical copies of the official files).
"""

from __future__ import annotations

import time
from pathlib import Path

from docopt import docopt

import tinytorch as tt
from tinytorch import Dense, Dropout, ReLU, Sequential
from tinytorch.core.dataloader import MNIST, DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import Adam, CosineAnnealingLR
from tinytorch.core.training import Trainer

from reporting import train_and_record


def build_model() -> Sequential:
    """A three-layer perceptron on flattened (N, 784) images."""
    return Sequential(
        Dense(784, 512), ReLU(), Dropout(0.2),  # (N, 512)
        Dense(512, 256), ReLU(), Dropout(0.2),  # (N, 256)
        Dense(256, 10),                          # (N, 10) class scores
    )


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    epochs, batch_size, lr = int(args["--epochs"]), int(args["--batch-size"]), float(args["--lr"])
    started = time.perf_counter()
    tt.manual_seed(int(args["--seed"]))
    train, test = MNIST(train=True, flatten=True), MNIST(train=False, flatten=True)
    loaded = time.perf_counter()

    train_loader = DataLoader(train.data, train.labels, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test.data, test.labels, batch_size=1000)
    model = build_model()
    optimizer = Adam(model.parameters(), lr=lr)
    trainer = Trainer(model, CrossEntropyLoss(), optimizer, [Accuracy()], scheduler=CosineAnnealingLR(optimizer, T_max=epochs))
    setup = f"{epochs} epochs, batch {batch_size}, Adam lr {lr} with cosine annealing, dropout 0.2"
    return train_and_record(trainer, train_loader, test_loader, epochs, args["--quiet"], Path(args["--out"]),
                            "MNIST with a TinyTorch MLP", setup, test.labels, test.classes, started, loaded)


if __name__ == "__main__":
    main()
