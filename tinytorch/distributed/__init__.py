"""Data-parallel training over MPI: the same program on p processes, the same result as one process.

``mpiexec -n 4 python train.py`` starts four copies of a training program, the *ranks*. Each
trains the same model on its own quarter of every batch; after each backward pass the ranks
average their gradients (an *all-reduce*), so every copy takes the same step and the copies stay
identical. Four ranks with batch b train like one process with batch 4b, up to float rounding::

    import tinytorch.distributed as dist

    dist.init()                                            # rank, world size; a world of one without mpiexec
    model = dist.SyncBatchNorm.convert_sync_batchnorm(build_model())
    model = dist.DistributedDataParallel(model)            # rank 0's weights everywhere; gradients averaged
    sampler = dist.DistributedSampler(train_set, seed=0)   # each rank its shard of every epoch
    loader = DataLoader(train_set, batch_size=64, sampler=sampler, drop_last=True)
    trainer = Trainer(model, loss_fn, optimizer, [Accuracy()],
                      callbacks=[PeriodicCheckpoint("run.ckpt", every_n_steps=200)])
    trainer.fit(loader, val_loader, epochs=10, resume_from="run.ckpt" if resuming else None)

The Trainer runs unchanged: only rank 0 prints and writes checkpoints, and the epoch's numbers are
summed over the ranks.

The pieces, one file each:

- :mod:`.comm`: the world (:func:`init`, :func:`rank`, :func:`world_size`) and the collectives
  on NumPy arrays through MPI's buffer interface (:func:`all_reduce`, :func:`broadcast`,
  :func:`all_gather`, :func:`barrier`), with timeouts, and a job that aborts when a rank fails;
- :mod:`.ddp`: :class:`DistributedDataParallel`, bucketed gradient averaging during backward;
- :mod:`.sampler`: :class:`DistributedSampler` and :func:`shard_indices`;
- :mod:`.sync_batchnorm`: :class:`SyncBatchNorm`, batch statistics over every rank's batch;
- :mod:`.launch`: finding ``mpiexec`` and running a job with a deadline (host files for several machines);
- :mod:`.ring`: the ring all-reduce in NumPy, the algorithm behind ``all_reduce`` (lesson 17).

**When a rank dies.** A rank that raises an uncaught exception prints its traceback and aborts
the job (``MPI_Abort``); a rank killed outright (SIGKILL, out of memory, a lost machine) is seen
by ``mpiexec``, which stops the others; a rank that hangs makes the others' next collective time
out (``init(timeout=...)``, 10 minutes by default) and abort. In every case the whole job ends
with a non-zero exit status, never a hang, and no rank trains on alone. Restart it with the same
command resuming from the last checkpoint: with :class:`~tinytorch.core.callbacks.PeriodicCheckpoint`
(written by rank 0, atomically, recording where in the epoch the job was) at most
``every_n_steps`` steps are lost, and on the same number of ranks the run reaches exactly the
parameters of an unbroken run.

**Restarting on a different number of ranks.** The checkpoint is the plain model's (no
``module.`` prefix), with the optimizer, scheduler, random state and position, so it loads on
any number of ranks (one included). What changes: each step's batch is now b*p' samples instead
of b*p (keep it by choosing the per-rank batch size, and the learning rate with it); the rest of
an interrupted epoch is the samples the job had not yet trained on, dealt out to the p' ranks;
the steps per epoch, so a per-step schedule built from them ends at a different step; and the
random augmentation and dropout draws. The result is a correct continuation of the run, not the
bit-identical one that the same number of ranks gives.
"""

from .comm import (
    CollectiveTimeout,
    ProcessGroup,
    Work,
    all_gather,
    all_reduce,
    barrier,
    broadcast,
    default_group,
    init,
    is_initialized,
    launched_by_mpi,
    rank,
    world_size,
)
from .ddp import DistributedDataParallel
from .launch import mpiexec_command, mpiexec_path
from .ring import ring_all_reduce
from .sampler import DistributedSampler, shard_indices
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "CollectiveTimeout", "DistributedDataParallel", "DistributedSampler", "ProcessGroup", "SyncBatchNorm", "Work",
    "all_gather", "all_reduce", "barrier", "broadcast", "default_group", "init", "is_initialized",
    "launched_by_mpi", "mpiexec_command", "mpiexec_path", "rank", "ring_all_reduce", "shard_indices", "world_size",
]
