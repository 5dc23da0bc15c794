"""Checks of the collectives, DistributedDataParallel and the failure paths, run on 2 ranks by test_distributed.py.

``python distributed_checks.py checks``: every check below; a failed assert aborts the job with its
message and rank 0 prints ``all checks passed`` at the end. ``python distributed_checks.py timeout``:
rank 1 leaves the job without joining a barrier, so rank 0's barrier must time out and abort the job.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import tinytorch as tt
import tinytorch.distributed as dist


def collectives(world: dist.ProcessGroup) -> None:
    r, p = world.rank, world.world_size
    for op, expected in (("sum", 3.0), ("mean", 1.5), ("max", 2.0), ("min", 1.0), ("prod", 2.0)):
        a = np.full(5, r + 1.0)
        assert dist.all_reduce(a, op=op) is a and np.all(a == expected), (op, a)
    t = tt.tensor([1.0, 2.0]) * (r + 1)
    dist.all_reduce(t)  # a Tensor: its own array, in place
    assert t.data.tolist() == [3.0, 6.0], t
    b = np.arange(4, dtype=np.int64) * (r + 1)
    dist.broadcast(b, root=1)
    assert b.tolist() == [0, 2, 4, 6], b
    gathered = dist.all_gather(np.array([[r, r * 10]]))
    assert gathered.shape == (2, 1, 2) and gathered[:, 0, 1].tolist() == [0, 10], gathered
    try:
        dist.all_gather(np.zeros(r + 1))  # the ranks disagree on the shape
        raise AssertionError("all_gather accepted arrays of different shapes")
    except ValueError as error:
        assert "same shape and dtype" in str(error), error
    state = world.sum_state({"n": r + 1, "loss": 0.5, "m": [{"confusion": np.ones((r + 1, r + 1), dtype=np.int64)}]})
    assert state["n"] == 3 and state["loss"] == 1.0, state
    assert state["m"][0]["confusion"].tolist() == [[2, 1], [1, 1]], state
    dist.barrier()
    assert p == 2


def model_and_batch(seed: int) -> tuple[tt.Sequential, tt.Tensor, tt.Tensor]:
    tt.manual_seed(0)
    model = tt.Sequential(tt.Dense(3, 4), tt.ReLU(), tt.Dense(4, 2))
    rng = np.random.default_rng(seed)
    return model, tt.tensor(rng.normal(size=(5, 3))), tt.tensor(rng.integers(0, 2, 5))


def gradients_of(model, batches) -> list[np.ndarray]:
    """This rank's gradients summed over ``batches``, without any averaging."""
    model.zero_grad()
    for x, y in batches:
        tt.CrossEntropyLoss()(model(x), y).backward()
    return [p.grad.data.copy() for p in model.parameters()]


def accumulation_with_no_sync(world: dist.ProcessGroup) -> None:
    plain, x1, y1 = model_and_batch(seed=10 + world.rank)
    _, x2, y2 = model_and_batch(seed=20 + world.rank)
    local = gradients_of(plain, [(x1, y1), (x2, y2)])
    expected = [world.all_reduce(g.copy(), op="mean") for g in local]
    ddp = dist.DistributedDataParallel(model_and_batch(0)[0], bucket_cap_mb=1e-5)
    with ddp.no_sync():  # the first micro-batch's gradients stay local
        tt.CrossEntropyLoss()(ddp(x1), y1).backward()
    first = [p.grad.data.copy() for p in ddp.parameters()]
    assert all(np.allclose(a, b) for a, b in zip(first, gradients_of(plain, [(x1, y1)]))), "no_sync averaged"
    tt.CrossEntropyLoss()(ddp(x2), y2).backward()  # averages the sum of both micro-batches
    for got, want in zip((p.grad.data for p in ddp.parameters()), expected):
        assert np.allclose(got, want, rtol=1e-5, atol=1e-6), (got, want)
    assert ddp.overlapped_buckets == len(ddp.buckets) > 1, (ddp.overlapped_buckets, ddp.buckets)


class TwoHeads(tt.Module):
    """``head`` is used on rank 0 only, ``spare`` never: averaging must cope with both."""

    def __init__(self):
        super().__init__()
        self.body, self.head, self.spare = tt.Dense(3, 2), tt.Dense(2, 2), tt.Dense(2, 2)

    def forward(self, x, use_head):
        h = self.body(x)
        return self.head(h) if use_head else h


def unused_parameters(world: dist.ProcessGroup) -> None:
    tt.manual_seed(0)
    ddp = dist.DistributedDataParallel(TwoHeads())
    x = tt.tensor(np.ones((2, 3)))
    ddp(x, use_head=world.rank == 0).sum().backward()
    module = ddp.module
    assert module.spare.weight.grad is None, "a parameter no rank used got a gradient"
    # rank 0's gradient of the head, averaged with rank 1's zero: half of it
    tt.manual_seed(0)
    reference = TwoHeads()
    reference(x, use_head=True).sum().backward()
    assert np.allclose(module.head.weight.grad.data, reference.head.weight.grad.data / 2), "unused on one rank"


def late_gradient_is_an_error(world: dist.ProcessGroup) -> None:
    tt.manual_seed(0)
    ddp = dist.DistributedDataParallel(tt.Sequential(tt.Dense(3, 3), tt.Dense(3, 1)), bucket_cap_mb=1e-5)
    out = ddp(tt.tensor(np.ones((2, 3))))
    penalty = (ddp.module[0].weight * ddp.module[0].weight).sum()  # outside forward: DDP cannot know of it
    try:
        (out.sum() + penalty * 0.1).backward()
        raise AssertionError("a gradient that arrived after its bucket was averaged went unnoticed")
    except RuntimeError as error:
        assert "0.weight received gradient after its bucket was averaged" in str(error), error


def main(mode: str, *rest: str) -> None:
    world = dist.init(timeout=20)
    if mode == "timeout":
        world.timeout = 1.0
        if world.rank == 1:
            sys.exit(0)  # leaves without an error: only the timeout can end rank 0's wait
        try:
            world.barrier()
        except dist.CollectiveTimeout as error:  # into a file too: mpiexec may cut off a dying rank's stderr
            with open(rest[0], "w", encoding="utf-8") as record:
                record.write(f"{type(error).__name__}: {error}")
            raise
        time.sleep(30)
    collectives(world)
    accumulation_with_no_sync(world)
    unused_parameters(world)
    late_gradient_is_an_error(world)
    dist.barrier()
    if world.rank == 0:
        print("all checks passed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
