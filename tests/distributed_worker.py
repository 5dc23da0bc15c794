"""The training program the distributed tests start under ``mpiexec`` (and run in one process as the reference).

A small CNN with batch norm after a convolution and after a dense layer, trained by the Trainer
with SGD (momentum, weight decay) and a one-cycle schedule on 96 synthetic images, validated on 50.
Under mpiexec: SyncBatchNorm, DistributedDataParallel (tiny buckets: one all-reduce per
parameter), a DistributedSampler per rank. Rank 0 writes ``final.npz`` (the trained weights and
what the test checks) into ``--out``. ``--kill-at`` and ``--raise-at`` make one rank die at a step.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np

import tinytorch as tt
import tinytorch.distributed as dist
from tinytorch.core.callbacks import Callback, PeriodicCheckpoint
from tinytorch.core.checkpoint import save_state
from tinytorch.core.dataloader import DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import SGD, OneCycleLR
from tinytorch.core.training import Trainer

TRAIN_SAMPLES, VAL_SAMPLES, SEED = 96, 50, 3


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2, 6, 6) images whose class (0, 1, 2) is where their brightest quadrant is, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 2, 6, 6)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, :, (label % 2) * 3:(label % 2) * 3 + 3, (label // 2) * 3:(label // 2) * 3 + 3] += 1.5
    return x, y


def build_model() -> tt.Sequential:
    return tt.Sequential(
        tt.Conv2D(2, 4, kernel_size=3, padding=1, bias=False), tt.BatchNorm2D(4), tt.ReLU(), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(4 * 3 * 3, 16), tt.BatchNorm1D(16), tt.ReLU(), tt.Dense(16, 3),
    )  # fmt: skip


class Fail(Callback):
    """Makes rank ``rank`` die after optimizer step ``step``: SIGKILL, or an uncaught exception."""

    def __init__(self, rank: int, step: int, how: str):
        self.rank, self.step, self.how = rank, step, how

    def on_batch_end(self, trainer, step, logs):
        if step == self.step and dist.rank() == self.rank:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ValueError(f"injected failure at step {step} on rank {self.rank}")


def train(out: Path, batch_size: int, distributed: bool, epochs: int = 2, every: int = 4,
          fail: Fail | None = None, resume: bool = False, bucket_cap_mb: float = 1e-4) -> Trainer:
    """Train and return the Trainer; ``distributed=False`` is the one-process reference (plain BatchNorm)."""
    world = dist.init(timeout=60) if distributed else dist.ProcessGroup()
    tt.manual_seed(world.rank)  # different weights on each rank: DistributedDataParallel must broadcast rank 0's
    model = build_model()
    if distributed:
        model = dist.DistributedDataParallel(dist.SyncBatchNorm.convert_sync_batchnorm(model), bucket_cap_mb=bucket_cap_mb)
    train_set, val_set = images(TRAIN_SAMPLES, 0), images(VAL_SAMPLES, 1)
    sampler = dist.DistributedSampler(TRAIN_SAMPLES, world.world_size, world.rank, seed=SEED)
    train_loader = DataLoader(*train_set, batch_size=batch_size, sampler=sampler, drop_last=True)
    val_sampler = dist.DistributedSampler(VAL_SAMPLES, world.world_size, world.rank, shuffle=False, pad=False)
    val_loader = DataLoader(*val_set, batch_size=16, sampler=val_sampler)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = OneCycleLR(optimizer, max_lr=0.2, epochs=epochs, steps_per_epoch=len(train_loader))
    callbacks = [PeriodicCheckpoint(str(out / "run.ckpt"), every_n_steps=every)] + ([fail] if fail else [])
    trainer = Trainer(model, CrossEntropyLoss(), optimizer, [Accuracy()], scheduler=schedule, callbacks=callbacks)
    trainer.fit(train_loader, val_loader, epochs=epochs, verbose=2, resume_from=out / "run.ckpt" if resume else None)
    coverage = []
    for epoch in range(epochs):  # what each rank's sampler dealt it, gathered: the test checks the union
        sampler.set_epoch(epoch)
        coverage.append(world.all_gather(sampler.indices()))
    if world.rank == 0:
        history = {k: np.asarray(v, dtype=np.float64) for k, v in trainer.history.items()}
        overlapped = getattr(model, "overlapped_buckets", 0)
        save_state(out / "final.npz", {"weights": model.state_dict(), "history": history, "coverage": coverage,
                                       "world_size": world.world_size, "overlapped_buckets": overlapped})
    return trainer


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--raise-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    fail = None
    if args.kill_at is not None:
        fail = Fail(1, args.kill_at, "kill")
    elif args.raise_at is not None:
        fail = Fail(1, args.raise_at, "raise")
    train(args.out, args.batch_size, distributed=True, fail=fail, resume=args.resume)


if __name__ == "__main__":
    main(sys.argv[1:])
