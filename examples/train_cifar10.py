"""Train a CNN on CIFAR-10 with TinyTorch: 80 %+ test accuracy in under 15 minutes on two CPU cores.

Usage:
  train_cifar10.py [--epochs=<n>] [--batch-size=<n>] [--lr=<x>] [--seed=<n>] [--limit=<n>]
                   [--out=<dir>] [--quiet]
  train_cifar10.py (-h | --help)

Options:
  --epochs=<n>      Passes over the 50,000 training images [default: 12].
  --batch-size=<n>  Images per step [default: 128].
  --lr=<x>          Peak learning rate of the one-cycle schedule [default: 0.2].
  --seed=<n>        Seed of every random draw (initialisation, shuffling, augmentation) [default: 0].
  --limit=<n>       Train on the first n images only (a quick smoke run) [default: 50000].
  --out=<dir>       Where the report, history, curve and confusion matrix go [default: examples/results/cifar10].
  --quiet           No progress bars.

The data come from TINYTORCH_DATA (on the course machines: TINYTORCH_DATA=../shared/data, whose
CIFAR-10 is a JPEG-derived copy; see its README). Every piece is the framework's own: the
Conv2D/BatchNorm2D/ReLU/MaxPool2D layers run on the compiled kernels, SGD with Nesterov momentum
and a one-cycle schedule, label smoothing, random crops and flips, the Trainer's loop.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from docopt import docopt

import tinytorch as tt
from tinytorch import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tinytorch.core.data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from tinytorch.core.dataloader import CIFAR10Dataset, DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy, compute_confusion_matrix
from tinytorch.core.optimizers import SGD, OneCycleLR
from tinytorch.core.training import Trainer, evaluate_model, plot_training_history


def conv_block(c_in: int, c_out: int) -> list:
    """3x3 convolution (no bias: the batch norm right after it has one), batch norm, ReLU."""
    return [Conv2D(c_in, c_out, kernel_size=3, padding=1, bias=False), BatchNorm2D(c_out), ReLU()]


def build_model() -> Sequential:
    """Three stages that halve the image and double the channels; shapes for a (N, 3, 32, 32) batch."""
    return Sequential(
        *conv_block(3, 32),                    # (N, 32, 32, 32)
        MaxPool2D(2),                          # (N, 32, 16, 16)
        *conv_block(32, 64),                   # (N, 64, 16, 16)
        MaxPool2D(2),                          # (N, 64, 8, 8)
        *conv_block(64, 128),                  # (N, 128, 8, 8)
        MaxPool2D(2),                          # (N, 128, 4, 4)
        Flatten(),                             # (N, 2048)
        Dense(128 * 4 * 4, 256),               # (N, 256)
        ReLU(),
        Dense(256, 10),                        # (N, 10) class scores
    )


def predictions(model: Sequential, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The predicted class of every image, in eval mode and without a graph."""
    model.eval()
    with tt.no_grad():
        return np.concatenate([model(tt.tensor(images[i:i + batch_size])).argmax(axis=1).numpy()
                               for i in range(0, len(images), batch_size)])


def markdown_report(args: dict, history: dict, test: dict, matrix: np.ndarray, classes: tuple, seconds: dict,
                    model: Sequential) -> str:
    from tinytorch.system import run_checks

    lines = [
        "# CIFAR-10 with TinyTorch",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Command: `{' '.join(['python', *sys.argv])}`",
        f"- Machine: {', '.join(f'{c.name}: {c.detail}' for c in run_checks() if c.name in ('Python', 'NumPy', 'OpenMP'))}",
        f"- Model: {model.num_parameters():,} parameters; "
        f"{args['--epochs']} epochs of {args['--limit']} images, batch {args['--batch-size']}, peak lr {args['--lr']}",
        f"- Wall time: training {seconds['train'] / 60:.1f} min (with the per-epoch test evaluation), "
        f"data loading {seconds['data']:.1f} s, whole program {seconds['total'] / 60:.1f} min",
        f"- **Test accuracy: {100 * test['accuracy']:.2f} %** on the 10,000 test images (loss {test['loss']:.4f})",
        "",
        "## Per epoch",
        "",
        "| epoch | train loss | train acc | test loss | test acc | lr | seconds | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, epoch in enumerate(history["epoch"]):
        lines.append(
            f"| {epoch} | {history['train_loss'][i]:.4f} | {100 * history['train_accuracy'][i]:.2f} % "
            f"| {history['val_loss'][i]:.4f} | {100 * history['val_accuracy'][i]:.2f} % | {history['lr'][i]:.4f} "
            f"| {history['epoch_time'][i]:.1f} | {history['images_per_second'][i]:.0f} |"
        )
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", "",
              "| | " + " | ".join(c[:5] for c in classes) + " | recall |",
              "|---" * (len(classes) + 2) + "|"]
    for name, row in zip(classes, matrix):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {100 * row[classes.index(name)] / row.sum():.1f} % |")
    lines += ["", "![training curve](training_curve.png)", ""]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    epochs, batch_size, lr = int(args["--epochs"]), int(args["--batch-size"]), float(args["--lr"])
    limit, out = int(args["--limit"]), Path(args["--out"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tt.manual_seed(int(args["--seed"]))

    data = CIFAR10Dataset(train=True, normalize=True)
    train_x, train_y = data.train_data[:limit], data.train_labels[:limit]
    test_x, test_y = data.test_data, data.test_labels
    loaded = time.perf_counter()

    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    train_loader = DataLoader(train_x, train_y, batch_size=batch_size, shuffle=True, drop_last=True, transform=augment)
    test_loader = DataLoader(test_x, test_y, batch_size=1000)

    model = build_model()
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=len(train_loader), pct_start=0.25)
    trainer = Trainer(model, CrossEntropyLoss(label_smoothing=0.1), optimizer, [Accuracy()], scheduler=schedule)
    history = trainer.fit(train_loader, test_loader, epochs=epochs, verbose=0 if args["--quiet"] else 1)
    trained = time.perf_counter()

    test = evaluate_model(model, test_loader)
    matrix = compute_confusion_matrix(test_y, predictions(model, test_x), num_classes=10)
    seconds = {"data": loaded - started, "train": trained - loaded, "total": time.perf_counter() - started}
    plot_training_history(history, out / "training_curve.png")
    write_atomically(out / "history.json", json.dumps({"history": history, "test": test, "seconds": seconds,
                                                        "confusion_matrix": matrix.tolist()}, indent=2))
    write_atomically(out / "README.md", markdown_report(args, history, test, matrix, data.classes, seconds, model))
    print(f"test accuracy {100 * test['accuracy']:.2f} % after {seconds['total'] / 60:.1f} min; report in {out}")
    return test


if __name__ == "__main__":
    main()
