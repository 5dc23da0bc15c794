"""Train a CNN on CIFAR-10 with TinyTorch: 80 %+ test accuracy in under 15 minutes on two CPU cores.

Usage:
  train_cifar10.py [--epochs=<n>] [--batch-size=<n>] [--lr=<x>] [--seed=<n>] [--limit=<n>]
                   [--out=<dir>] [--save=<file>] [--quiet] [--distributed]
                   [--checkpoint-every=<n>] [--resume]
  train_cifar10.py (-h | --help)

Options:
  --epochs=<n>      Passes over the 50,000 training images [default: 9].
  --batch-size=<n>  Images per step [default: 128].
  --lr=<x>          Peak learning rate of the one-cycle schedule [default: 0.1].
  --seed=<n>        Seed of every random draw (initialisation, shuffling, augmentation) [default: 0].
  --limit=<n>       Train on the first n images only (a quick smoke run) [default: 50000].
  --out=<dir>       Where the report, history, curve and confusion matrix go [default: examples/results/cifar10].
  --save=<file>     Where the trained model goes, as a safe checkpoint (.npz + JSON, no pickle) that
                    load_checkpoint(path, build_model()) reads back; the compression and deployment
                    examples start from it [default: examples/checkpoints/cifar10_cnn.npz].
  --quiet           Print nothing while training (default: progress bars, or a line per epoch
                    when the output is not a terminal).
  --distributed     Train data-parallel on the ranks of `mpiexec -n P` (the batch size is the
                    whole step's, split over the P ranks; SyncBatchNorm; only rank 0 prints and
                    writes). Default --out then: examples/results/cifar10_distributed.
  --checkpoint-every=<n>  Every n steps, write everything the run needs to continue (weights,
                    optimizer, schedule, random state, where in the epoch it is) to the --save
                    file's name with .run.npz; 0: never [default: 0].
  --resume          Continue from that checkpoint, exactly where it was taken (after a crash, or a
                    rank killed: the same command with --resume).

The data come from TINYTORCH_DATA (on the course machines: TINYTORCH_DATA=../shared/data, whose
CIFAR-10 is a JPEG-derived copy; see its README). Every piece is the framework's own: the
Conv2D/BatchNorm2D/ReLU/MaxPool2D layers run on the compiled kernels, SGD with Nesterov momentum
and a one-cycle schedule, label smoothing, random crops and flips, the Trainer's loop.

Data-parallel on two processes of one thread each (the record also gives the all-reduce's cost
per step, from the profiler):

  OMP_NUM_THREADS=1 mpiexec -n 2 python examples/train_cifar10.py --distributed
"""

from __future__ import annotations

import time
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np
from docopt import docopt

import tinytorch.distributed as dist
from tinytorch import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tinytorch.core.data.datasets import CIFAR10_MEAN, CIFAR10_STD
from tinytorch.core.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat
from tinytorch.core.dataloader import CIFAR10Dataset, DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import SGD, OneCycleLR
from tinytorch.core.callbacks import PeriodicCheckpoint
from tinytorch.core.checkpoint import save_checkpoint
from tinytorch.core.training import Trainer

import data_parallel
from reporting import train_and_record

DEFAULT_OUT = "examples/results/cifar10"


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


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    epochs, batch_size, lr = int(args["--epochs"]), int(args["--batch-size"]), float(args["--lr"])
    limit, out = int(args["--limit"]), Path(args["--out"])
    world = dist.init() if args["--distributed"] else None
    if world is not None and args["--out"] == DEFAULT_OUT:
        out = out.with_name("cifar10_distributed")  # not the one-process record
    started = time.perf_counter()
    tt.manual_seed(int(args["--seed"]))

    # The pixels stay uint8 (150 MB for the training set instead of 600 MB as float32); each batch is
    # standardised on its way in, which costs a few milliseconds per batch.
    data = CIFAR10Dataset(train=True, dtype=np.uint8)
    train_x, train_y = data.train_data[:limit], data.train_labels[:limit]
    test_x, test_y = data.test_data, data.test_labels
    loaded = time.perf_counter()

    standardise = [ToFloat(), Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    augment = Compose([*standardise, RandomCrop(32, padding=4), RandomHorizontalFlip()])
    test_loader = DataLoader(test_x, test_y, batch_size=1000, transform=Compose(standardise))
    if world is None:
        train_loader = DataLoader(train_x, train_y, batch_size=batch_size, shuffle=True, drop_last=True, transform=augment)
    else:
        train_loader, shard_loader = data_parallel.sharded_loaders((train_x, train_y), (test_x, test_y), batch_size,
                                                                   int(args["--seed"]), augment, Compose(standardise), world)

    model = build_model() if world is None else data_parallel.wrap(build_model())
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=len(train_loader), pct_start=0.25)
    cost = data_parallel.AllReduceCost() if world is not None else None
    run_checkpoint = Path(args["--save"]).with_suffix(".run.npz")
    every = int(args["--checkpoint-every"])
    callbacks = ([cost] if cost else []) + ([PeriodicCheckpoint(str(run_checkpoint), every)] if every else [])
    trainer = Trainer(model, CrossEntropyLoss(label_smoothing=0.1), optimizer, [Accuracy()], scheduler=schedule,
                      callbacks=callbacks)
    resume = run_checkpoint if args["--resume"] else None
    setup = f"{epochs} epochs of {len(train_x):,} images, batch {batch_size}, SGD + one-cycle peak lr {lr}"
    if world is None:
        test = train_and_record(trainer, train_loader, test_loader, epochs, args["--quiet"], out,
                                "CIFAR-10 with TinyTorch", setup, test_y, data.classes, started, loaded, resume_from=resume)
    else:
        test = train_and_record(trainer, train_loader, shard_loader, epochs, args["--quiet"], out,
                                "CIFAR-10 with TinyTorch, data-parallel", setup, test_y, data.classes, started, loaded,
                                main_process=world.rank == 0, record_loader=test_loader, resume_from=resume,
                                notes=lambda: data_parallel.report_lines(world, cost, model, trainer.history,
                                                                            out.parent / "cifar10" / "history.json"))
        model = model.module
    if world is None or world.rank == 0:
        save = Path(args["--save"])
        save.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(save, model, test_accuracy=test["accuracy"], classes=list(data.classes))
    return test


if __name__ == "__main__":
    main()
