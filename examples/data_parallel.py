"""What an example program changes to train data-parallel under ``mpiexec`` (``--distributed``).

Each rank reads its shard of every epoch (a DistributedSampler), takes ``batch_size / p`` images
per step so that a step still covers ``batch_size`` images, and trains a copy of the model whose
batch norms are SyncBatchNorm and whose gradients DistributedDataParallel averages. The test set is
sharded too, and the Trainer sums the ranks' counts, so the reported accuracy is the whole test
set's. :class:`AllReduceCost` profiles a window of steps to measure what the gradient averaging
costs per step.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import tinytorch as tt
import tinytorch.distributed as dist
from tinytorch.core.callbacks import Callback
from tinytorch.core.dataloader import DataLoader
from tinytorch.core.op_profiler import Profiler
from tinytorch.distributed.ddp import PROFILE_NAME


def per_rank_batch(batch_size: int, world: dist.ProcessGroup) -> int:
    """The images each rank takes per step, so that the ranks together take ``batch_size``."""
    if batch_size % world.world_size:
        raise ValueError(
            f"--distributed: the batch size {batch_size} must be a multiple of the number of ranks ({world.world_size})"
        )
    return batch_size // world.world_size


def sharded_loaders(train: tuple, test: tuple, batch_size: int, seed: int, augment, standardise,
                    world: dist.ProcessGroup) -> tuple[DataLoader, DataLoader]:
    """This rank's training loader (a new shuffled shard each epoch) and its shard of the test set (each image once)."""
    train_sampler = dist.DistributedSampler(len(train[1]), seed=seed)
    test_sampler = dist.DistributedSampler(len(test[1]), shuffle=False, pad=False)
    train_loader = DataLoader(*train, batch_size=per_rank_batch(batch_size, world), sampler=train_sampler,
                              drop_last=True, transform=augment)
    test_loader = DataLoader(*test, batch_size=1000, sampler=test_sampler, transform=standardise)
    return train_loader, test_loader


def wrap(model: tt.Module) -> dist.DistributedDataParallel:
    """SyncBatchNorm for every batch norm, then gradient averaging (rank 0's initial weights everywhere)."""
    # 1 MB buckets: the CIFAR CNN's 2.4 MB of gradients go in three all-reduces, the first ones started while
    # backward still runs (PyTorch's default, 25 MB, would make one, started when backward ends)
    return dist.DistributedDataParallel(dist.SyncBatchNorm.convert_sync_batchnorm(model), bucket_cap_mb=1.0)


class AllReduceCost(Callback):
    """Profile steps ``first + 1 .. first + steps`` of the run: the time per step and the share spent averaging gradients.

    The averaging is what the profiler records as ``DistributedDataParallel.all_reduce``: copying
    the gradients into the buckets, starting their all-reduces, and, after backward, waiting for
    the ones not yet done (which includes waiting for a slower rank).
    """

    def __init__(self, first: int = 10, steps: int = 30):
        self.first, self.steps = first, steps
        self.profiler: Profiler | None = None
        self.result: dict | None = None

    def on_batch_end(self, trainer, step, logs):
        if step == self.first:
            self.profiler, self.started = Profiler(with_flops=False).start(), time.perf_counter()
        elif step == self.first + self.steps and self.profiler is not None:
            self.profiler.stop()
            wall = time.perf_counter() - self.started
            reducing = sum(e.end_ns - e.start_ns for e in self.profiler.events() if e.name == PROFILE_NAME) / 1e9
            self.result = {"steps": self.steps, "step_ms": 1e3 * wall / self.steps,
                           "all_reduce_ms_per_step": 1e3 * reducing / self.steps, "all_reduce_share": reducing / wall}
            self.profiler = None


def report_lines(world: dist.ProcessGroup, cost: AllReduceCost, model: dist.DistributedDataParallel,
                 history: dict, baseline: Path) -> list[str]:
    """What the record says about the data parallelism: ranks, threads, the all-reduce's cost per step,
    and the training throughput against the one-process record at ``baseline`` (a history.json), if there is one."""
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [f"- Data parallel: {world.world_size} ranks under mpiexec, OMP_NUM_THREADS={threads} each; "
             f"{len(model.buckets)} gradient buckets, {model.overlapped_buckets} of them started during backward"]
    if cost.result is not None:
        r = cost.result
        lines.append(f"- Gradient averaging (profiled on rank 0, steps {cost.first + 1}-{cost.first + cost.steps}): "
                     f"{r['all_reduce_ms_per_step']:.1f} ms per step of {r['step_ms']:.0f} ms "
                     f"({100 * r['all_reduce_share']:.1f} %)")
    if baseline.exists():
        one = json.loads(baseline.read_text())["history"]["images_per_second"]
        here = history["images_per_second"]
        lines.append(f"- Against one process (`{baseline.parent.name}/`, its own record: threads as it says): "
                     f"{statistics.median(here):.0f} training images/s here, {statistics.median(one):.0f} there "
                     f"(medians over epochs): {statistics.median(here) / statistics.median(one):.2f}x")
    return lines

