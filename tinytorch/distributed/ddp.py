"""DistributedDataParallel: one model per rank, kept identical by averaging the gradients.

Every rank holds a full copy of the model and runs forward and backward on its own part of the
batch. If all copies start equal and every rank then applies the same update, they stay equal;
the update is the same when every rank steps with the *average* of the ranks' gradients, which
is the gradient of the mean loss over the whole batch (each rank's loss is a mean over its b
samples, the whole batch's over b*p: the average of p such means). So:

1. at construction, rank 0's parameters and buffers are broadcast to every rank;
2. after backward, every gradient is all-reduced and divided by p.

The all-reduces do not wait for the end of backward. Parameters are grouped into *buckets*
(about ``bucket_cap_mb`` megabytes each, in reverse order of registration, which is roughly the
order backward produces their gradients). A hook on each parameter counts the gradients it
receives; when every parameter of a bucket has all of its gradients (the count is read from the
graph at the end of forward), the bucket is copied into one flat array and its all-reduce starts
(non-blocking, buckets always in the same order on every rank), while backward goes on with the
layers below. When backward has finished, the remaining buckets are started, all are waited for,
and the averages are written back into ``.grad``. A parameter that no rank gave a gradient keeps
``grad=None``; one that some ranks did not use counts as zero there.

``with ddp.no_sync():`` skips the averaging (gradient accumulation: the local gradients add up
over several backward passes, and the first forward-backward after the block averages the sum).
The time spent in the all-reduces shows in the op profiler as ``DistributedDataParallel.all_reduce``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np

from ..core.autograd import Context, is_grad_enabled, queue_callback
from ..core.module import Module, Parameter
from ..core.op_profiler import record_function
from ..core.tensor import Tensor
from .comm import ProcessGroup, Work, default_group

PROFILE_NAME = "DistributedDataParallel.all_reduce"


class _Bucket:
    """Parameters whose gradients are averaged together, through one flat array.

    The array holds every gradient, then one slot per parameter that counts the ranks that had a
    gradient for it (1 or 0 from each rank, summed by the same all-reduce).
    """

    def __init__(self, params: list[Parameter]):
        self.params = params
        self.offsets = np.cumsum([0] + [p.size for p in params])
        self.flat = np.empty(int(self.offsets[-1]) + len(params), dtype=params[0].dtype)
        self.waiting = 0  # parameters still expecting a gradient in this backward pass
        self.work: Work | None = None

    def start(self, group: ProcessGroup) -> None:
        size = int(self.offsets[-1])
        for i, p in enumerate(self.params):
            view = self.flat[self.offsets[i]: self.offsets[i + 1]]
            if p.grad is None:
                view[:] = 0
            else:
                view[:] = p.grad.data.ravel()
            self.flat[size + i] = p.grad is not None
        self.work = group.all_reduce_async(self.flat, op="sum")

    def finish(self, world_size: int) -> None:
        self.work.wait()
        self.work = None
        size = int(self.offsets[-1])
        self.flat[:size] /= world_size
        for i, p in enumerate(self.params):
            if self.flat[size + i] == 0:  # no rank had a gradient for it
                continue
            average = self.flat[self.offsets[i]: self.offsets[i + 1]].reshape(p.shape)
            if p.grad is None:
                p.grad = Tensor(average.copy(), dtype=p.dtype)
            else:
                np.copyto(p.grad.data, average)


def _buckets(params: list[Parameter], cap_bytes: float) -> list[_Bucket]:
    """Consecutive parameters, last registered first, of one dtype, about ``cap_bytes`` per bucket."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        if current and (size + p.data.nbytes > cap_bytes or p.dtype != current[0].dtype):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(p)
        size += p.data.nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


def _tensors(output: Any) -> Iterator[Tensor]:
    """The tensors in a forward's output: a Tensor, or tuples, lists and dicts of them."""
    if isinstance(output, Tensor):
        yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, Mapping):
        for item in output.values():
            yield from _tensors(item)


class DistributedDataParallel(Module):
    """Train ``module`` data-parallel: same parameters on every rank, gradients averaged after backward.

    Parameters
    ----------
    module : Module
        The model. Its parameters and buffers are overwritten with rank 0's here.
    process_group : ProcessGroup, optional
        Default: the world of ``tinytorch.distributed.init()``.
    bucket_cap_mb : float
        About how many megabytes of gradients one all-reduce carries (PyTorch's default, 25).
        Smaller buckets start earlier during backward; each costs one more message's latency.
    broadcast_buffers : bool
        Before each forward in training mode, overwrite every buffer (BatchNorm's running
        statistics) with rank 0's, so that the ranks evaluate with the same ones. SyncBatchNorm
        keeps them equal by itself.

    ``model(x)`` runs the module. ``state_dict()`` and ``load_state_dict()`` are the module's own
    (no ``module.`` prefix), so a checkpoint loads into the plain model, on any number of ranks.
    After each averaged backward, ``overlapped_buckets`` says how many of the ``len(buckets)``
    all-reduces had started before backward ended.
    """

    def __init__(
        self,
        module: Module,
        process_group: ProcessGroup | None = None,
        bucket_cap_mb: float = 25.0,
        broadcast_buffers: bool = True,
    ):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        self.module = module
        self.process_group = process_group if process_group is not None else default_group()
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.broadcast_buffers = bool(broadcast_buffers)
        self.require_backward_grad_sync = True
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._bucket_of: dict[int, _Bucket] = {}
        self._buckets = _buckets(self._params, self.bucket_cap_mb * 2**20)
        for bucket in self._buckets:
            for p in bucket.params:
                self._bucket_of[id(p)] = bucket
        self.overlapped_buckets = 0
        self._reset()
        self._sync_module_states()
        if self.process_group.world_size > 1:
            for p in self._params:
                p.register_post_accumulate_grad_hook(self._on_gradient)

    # -- the model ------------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        multi = self.process_group.world_size > 1
        if multi and self.module.training and self.broadcast_buffers:
            self._broadcast(self.module.buffers())
        output = self.module(*args, **kwargs)
        if multi and self.require_backward_grad_sync and is_grad_enabled():
            self._expect_gradients(output)
        return output

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forward passes inside the block are not averaged in their backward: the gradients accumulate locally."""
        before, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = before

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any:
        return self.module.load_state_dict(state, strict)

    def extra_repr(self) -> str:
        return f"world_size={self.process_group.world_size}, buckets={len(self._buckets)}"

    # -- keeping the copies equal ----------------------------------------------------------------------
    def _broadcast(self, tensors: list[Tensor]) -> None:
        for t in tensors:
            data = t.data
            if data.flags.c_contiguous:
                self.process_group.broadcast(data, root=0)
            else:
                data[...] = self.process_group.broadcast(np.ascontiguousarray(data), root=0)

    def _sync_module_states(self) -> None:
        if self.process_group.world_size > 1:
            self._broadcast([*self.module.parameters(), *self.module.buffers()])

    # -- averaging the gradients ------------------------------------------------------------------------
    def _reset(self) -> None:
        self._expected: dict[int, int] = {}  # gradients each parameter will receive in this backward
        self._received: dict[int, int] = {}
        self._next_bucket = 0  # buckets start in order, the same on every rank
        self._pending = False  # a forward's gradients are to be averaged
        self._finish_queued = False
        self._late: list[str] = []  # parameters that received a gradient after their bucket had started

    def _expect_gradients(self, output: Any) -> None:
        """Count, from the graph of ``output``, how many gradients backward will add into each parameter."""
        expected = self._expected
        for p in self._params:
            expected.setdefault(id(p), 0)
        seen: set[int] = set()
        stack: list[Any] = []
        for t in _tensors(output):
            if t._node is not None:
                stack.append(t._node)
            elif id(t) in expected:  # the output is a parameter itself
                expected[id(t)] += 1
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for parent in node.parents:
                if type(parent) is Context:
                    stack.append(parent)
                elif parent is not None and id(parent) in expected:
                    expected[id(parent)] += 1
        for bucket in self._buckets:
            bucket.waiting = sum(1 for p in bucket.params if expected[id(p)] > 0)
        self._pending = True

    def _on_gradient(self, param: Tensor) -> None:
        """A gradient was added into ``param.grad``: when its bucket is complete, start averaging it."""
        if not self._pending:
            return  # a forward under no_sync(), or without grad: nothing to average
        if not self._finish_queued:
            queue_callback(self._finish)
            self._finish_queued = True
        key = id(param)
        received = self._received[key] = self._received.get(key, 0) + 1
        bucket = self._bucket_of[key]
        if received == self._expected[key]:
            bucket.waiting -= 1
            if bucket.waiting == 0:
                self._start_ready_buckets()
        elif received > self._expected[key] and bucket.work is not None:
            self._late.append(self._name_of(param))
        for b in self._buckets[: self._next_bucket]:
            if b.work is not None:
                b.work.is_completed()  # MPI moves a non-blocking collective forward only when asked

    def _start_ready_buckets(self) -> None:
        with record_function(PROFILE_NAME):
            while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].waiting == 0:
                self._buckets[self._next_bucket].start(self.process_group)
                self._next_bucket += 1

    @property
    def buckets(self) -> list[list[str]]:
        """The parameters' names in each bucket, in the order the buckets are averaged."""
        names = {id(p): name for name, p in self.module.named_parameters()}
        return [[names[id(p)] for p in bucket.params] for bucket in self._buckets]

    def _finish(self) -> None:
        """After backward: start the buckets still waiting, wait for all, write the averages into ``.grad``."""
        late = self._late
        self.overlapped_buckets = self._next_bucket
        try:
            with record_function(PROFILE_NAME):
                for bucket in self._buckets[self._next_bucket:]:
                    bucket.start(self.process_group)
                for bucket in self._buckets:
                    bucket.finish(self.process_group.world_size)
        finally:
            self._reset()
        if late:
            raise RuntimeError(
                f"DistributedDataParallel: {', '.join(sorted(set(late)))} received gradient after its bucket was "
                "averaged: something outside the model's forward uses it (a penalty on the weights?); "
                "compute that inside the model's forward"
            )

    def _name_of(self, param: Tensor) -> str:
        return next((name for name, p in self.module.named_parameters() if p is param), "a parameter")
