"""Processes and collectives: the MPI world through mpi4py, or a world of one without a launcher.

Data parallelism runs one program as p processes, the *ranks* 0 .. p-1, that exchange arrays with
*collectives*: every rank calls the same operation, in the same order, and each gets the result.

- ``all_reduce(array, op)``: every rank ends with the element-wise sum (``"mean"``, ``"max"``,
  ``"min"``, ``"prod"``) of every rank's array.
- ``broadcast(array, root)``: every rank ends with ``root``'s array.
- ``all_gather(array)``: every rank gets all the arrays, stacked in rank order.
- ``barrier()``: no rank leaves before every rank has arrived.

Arrays travel through MPI's buffer interface (mpi4py's upper-case methods): MPI reads and writes
the NumPy array's own memory, nothing is pickled or copied on the way, and the reductions happen in
place, in the array given (as in PyTorch).

Started by ``mpiexec -n 4 python train.py``, :func:`init` joins the MPI world (MPICH from the
``mpich`` wheel, or any MPI that mpi4py was built against). Started as plain ``python train.py``
it makes a world of one in which every collective leaves its input as it is, and mpi4py is not
even imported: the same program runs both ways.

When a rank fails, the job must not hang with the other ranks waiting for it in a collective.
:func:`init` therefore makes an uncaught exception on any rank print its traceback and then abort
the whole job (``MPI_Abort``: ``mpiexec`` stops every rank and exits non-zero). A rank killed
outright (SIGKILL, a lost machine) is noticed by ``mpiexec``, which stops the others. And every
collective waits at most ``timeout`` seconds (default 10 minutes) before raising
:class:`CollectiveTimeout`, which aborts the job the same way: a rank stuck in an endless loop,
or one that left the job without an error, cannot keep the others waiting forever.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from typing import Any, Literal

import numpy as np

from ..core.tensor import Tensor

INSTALL = 'pip install "tinytorch[distributed]"'
DEFAULT_TIMEOUT = 600.0
#: Set by MPI launchers in every process they start: MPICH's Hydra (PMI_*), Open MPI, PMIx (Slurm).
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
REDUCE_OPS = ("sum", "mean", "max", "min", "prod")
#: Waiting longer than this, a rank offers its core to others between polls (ranks may share cores).
_SPIN_S = 0.005

ReduceOp = Literal["sum", "mean", "max", "min", "prod"]


class CollectiveTimeout(TimeoutError):
    """A collective waited longer than its process group's timeout for the other ranks."""


def launched_by_mpi() -> bool:
    """True when an MPI launcher (``mpiexec``, ``srun``) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def import_mpi() -> Any:
    """mpi4py's ``MPI`` module (importing it joins the MPI world), or an error naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            f"tinytorch.distributed runs on MPI through mpi4py, which is not installed ({error}): {INSTALL}"
        ) from None
    return MPI


def _array(what: str, array: Any, writable: bool = True) -> np.ndarray:
    """The NumPy array behind ``array`` (a Tensor's own), checked for what MPI reads and writes in place."""
    data = array._data if isinstance(array, Tensor) else array
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{what}: expected a NumPy array or a Tensor, got {type(array).__name__}")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{what}: got an array of dtype {data.dtype}; collectives move numbers (bool, int, float)")
    if not writable:  # only read: any layout will do, MPI gets a contiguous copy when needed
        return np.ascontiguousarray(data)
    if not data.flags.c_contiguous:
        raise ValueError(
            f"{what}: got a non-contiguous array of shape {data.shape}; MPI works on one block of memory in "
            "place, so pass a contiguous one (np.ascontiguousarray(a), then use the result)"
        )
    if not data.flags.writeable:
        raise ValueError(f"{what}: the array of shape {data.shape} is read-only; the result is written into it")
    return data


def _seconds(what: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{what}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class Work:
    """A collective in flight (see :meth:`ProcessGroup.all_reduce_async`): ``wait()`` finishes it."""

    def __init__(self, group: ProcessGroup, request: Any, array: np.ndarray, divisor: int, what: str):
        self._group, self._request, self.array, self._divisor, self._what = group, request, array, divisor, what

    def is_completed(self) -> bool:
        """True once the collective has finished (asking also moves MPI's work forward)."""
        return self._request is None or self._request.Test()

    def wait(self) -> np.ndarray:
        """Block until the collective is done (at most the group's timeout); returns the result array."""
        if self._request is not None:
            self._group.wait([self._request], self._what)
            self._request = None
            if self._divisor > 1:
                self.array /= self._divisor
                self._divisor = 1
        return self.array


class ProcessGroup:
    """The ranks that run collectives together: MPI's ``COMM_WORLD``, or a world of one (``comm=None``).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
        The MPI communicator; None for a single process without MPI.
    timeout : float
        Seconds a collective waits for the other ranks before raising :class:`CollectiveTimeout`.
    """

    def __init__(self, comm: Any = None, timeout: float = DEFAULT_TIMEOUT):
        self.comm = comm
        self.timeout = _seconds("ProcessGroup", timeout)
        self.rank = 0 if comm is None else comm.Get_rank()
        self.world_size = 1 if comm is None else comm.Get_size()
        self._mpi = None if comm is None else import_mpi()

    def __repr__(self) -> str:
        kind = "MPI" if self.comm is not None else "single process"
        return f"ProcessGroup(rank {self.rank} of {self.world_size}, {kind}, timeout {self.timeout:g} s)"

    # -- waiting --------------------------------------------------------------------------------------
    def wait(self, requests: list, what: str) -> None:
        """Poll MPI ``requests`` until all are done; :class:`CollectiveTimeout` after ``timeout`` seconds.

        Polling (rather than MPI's blocking wait) is what makes a deadline possible. It spins at
        first, as MPI's own wait does, and after a few milliseconds yields the core between polls,
        so a rank that waits does not slow down a late rank sharing its core.
        """
        test_all = self._mpi.Request.Testall
        if test_all(requests):
            return
        started = time.monotonic()
        while not test_all(requests):
            waited = time.monotonic() - started
            if waited > _SPIN_S:
                if waited > self.timeout:
                    raise CollectiveTimeout(
                        f"{what}: rank {self.rank} of {self.world_size} waited {waited:.0f} s for the other ranks "
                        f"(timeout {self.timeout:g} s). Every rank must call the same collectives in the same "
                        "order; a rank that is stuck, or that left the job early, never arrives"
                    )
                os.sched_yield()

    # -- collectives ----------------------------------------------------------------------------------
    def all_reduce_async(self, array: Any, op: ReduceOp = "sum") -> Work:
        """Start an all-reduce of ``array`` in place and return at once; ``.wait()`` on the result finishes it."""
        what = "all_reduce"
        data = _array(what, array)
        if op not in REDUCE_OPS:
            raise ValueError(f"{what}: op must be one of {', '.join(REDUCE_OPS)}; got {op!r}")
        if op == "mean" and data.dtype.kind != "f":
            raise TypeError(f"{what}: op='mean' needs a float array, got {data.dtype}; use op='sum' and divide")
        if self.comm is None:
            return Work(self, None, data, 1, what)
        mpi_op = getattr(self._mpi, "SUM" if op == "mean" else op.upper())
        request = self.comm.Iallreduce(self._mpi.IN_PLACE, data, op=mpi_op)
        return Work(self, request, data, self.world_size if op == "mean" else 1, what)

    def all_reduce(self, array: Any, op: ReduceOp = "sum") -> np.ndarray:
        """Replace ``array`` (a NumPy array or a Tensor, in place) by the reduction of every rank's; returns it."""
        return self.all_reduce_async(array, op).wait()

    def broadcast(self, array: Any, root: int = 0) -> np.ndarray:
        """Overwrite ``array`` (in place) with rank ``root``'s; returns it."""
        data = _array("broadcast", array)
        if not (isinstance(root, (int, np.integer)) and 0 <= root < self.world_size):
            raise ValueError(f"broadcast: root must be a rank in [0, {self.world_size}), got {root!r}")
        if self.comm is not None:
            self.wait([self.comm.Ibcast(data, root=int(root))], "broadcast")
        return data

    def all_gather(self, array: Any) -> np.ndarray:
        """Every rank's ``array`` stacked in rank order: shape ``(world_size, *array.shape)``.

        The ranks first compare shapes and dtypes, so arrays that differ are an error on every rank
        rather than a garbled result.
        """
        data = _array("all_gather", array, writable=False)
        if self.comm is None:
            return data[None].copy()
        header = np.array([data.dtype.num, data.ndim, zlib.crc32(repr(data.shape).encode())], dtype=np.int64)
        headers = np.empty((self.world_size, 3), dtype=np.int64)
        self.wait([self.comm.Iallgather(header, headers)], "all_gather")
        if not (headers == header).all():
            raise ValueError(
                f"all_gather: every rank must give an array of the same shape and dtype; rank {self.rank} has "
                f"{data.dtype} {data.shape}, and some rank differs"
            )
        out = np.empty((self.world_size, *data.shape), dtype=data.dtype)
        self.wait([self.comm.Iallgather(data, out)], "all_gather")
        return out

    def barrier(self) -> None:
        """Return once every rank has called ``barrier()``."""
        if self.comm is not None:
            self.wait([self.comm.Ibarrier()], "barrier")

    def sum_state(self, state: Any) -> Any:
        """Sum a nested dict/list of numbers and arrays over the ranks (a metric's counts, a loss sum).

        Arrays of different shapes on different ranks (a confusion matrix that has seen more classes
        on one rank) are padded with zeros to the largest before adding. Every rank must give the
        same structure; when one does not, every rank raises the same error.
        """
        if self.comm is None:
            return state
        leaves: list[np.ndarray] = []
        skeleton = _flatten(state, leaves)
        signature = zlib.crc32(repr((skeleton, [leaf.ndim for leaf in leaves])).encode())
        signatures = self.all_gather(np.array([signature], dtype=np.int64))
        if not (signatures == signature).all():
            raise ValueError(
                f"sum_state: the ranks hold differently structured states (rank {self.rank}: {skeleton}); "
                "every rank must sum the same names, e.g. the same metrics"
            )
        shapes = np.array([n for leaf in leaves for n in leaf.shape], dtype=np.int64)
        if shapes.size:
            self.all_reduce(shapes, op="max")
        padded_leaves, at = [], 0
        for leaf in leaves:
            shape = tuple(int(n) for n in shapes[at: at + leaf.ndim])
            at += leaf.ndim
            padded = np.zeros(shape, dtype=np.float64)
            padded[tuple(slice(0, n) for n in leaf.shape)] = leaf
            padded_leaves.append(padded)
        total = self.all_reduce(np.concatenate([a.ravel() for a in padded_leaves]) if leaves else np.zeros(0))
        sums, at = [], 0
        for leaf, padded in zip(leaves, padded_leaves):
            value = total[at: at + padded.size].reshape(padded.shape)
            at += padded.size
            if leaf.dtype.kind != "f":  # counts stay whole numbers
                value = np.rint(value).astype(np.int64)
            sums.append(value.item() if leaf.ndim == 0 else value)
        return _rebuild(skeleton, sums)

    def abort(self, code: int = 1) -> None:
        """Stop every rank of the job now (``MPI_Abort``); in a world of one, exit this process."""
        if self.comm is None:
            os._exit(code)
        self.comm.Abort(code)


def _flatten(value: Any, leaves: list[np.ndarray]) -> Any:
    """The structure of ``value`` with each number or array replaced by its leaf's index in ``leaves``."""
    if isinstance(value, dict):
        return {key: _flatten(item, leaves) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_flatten(item, leaves) for item in value]
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"sum_state: can only sum numbers and numeric arrays, got {type(value).__name__}")
    leaves.append(array)
    return len(leaves) - 1


def _rebuild(skeleton: Any, values: list) -> Any:
    if isinstance(skeleton, dict):
        return {key: _rebuild(item, values) for key, item in skeleton.items()}
    if isinstance(skeleton, list):
        return [_rebuild(item, values) for item in skeleton]
    return values[skeleton]


# -- the world this process belongs to ----------------------------------------------------------------
_world: ProcessGroup | None = None


def init(timeout: float = DEFAULT_TIMEOUT, backend: Literal["auto", "mpi", "single"] = "auto") -> ProcessGroup:
    """Join the world of ranks this process was started in, and return it (the default process group).

    Parameters
    ----------
    timeout : float
        Seconds any collective waits for the other ranks before raising :class:`CollectiveTimeout`.
    backend : {"auto", "mpi", "single"}
        ``"auto"``: MPI when an MPI launcher started this process (it sets ``PMI_SIZE``,
        ``OMPI_COMM_WORLD_SIZE`` or ``PMIX_RANK``), else a world of one without importing MPI.
        ``"mpi"``: MPI in any case (a singleton MPI world when run without ``mpiexec``).
        ``"single"``: a world of one.

    In a world of more than one rank, an uncaught exception on any rank prints its traceback and
    then aborts the whole job, so no rank waits for it forever. Calling ``init`` again returns the
    same world (with the new timeout).
    """
    global _world
    if backend not in ("auto", "mpi", "single"):
        raise ValueError(f"init: backend must be 'auto', 'mpi' or 'single', got {backend!r}")
    if _world is not None:
        _world.timeout = _seconds("init", timeout)
        return _world
    if backend == "mpi" or (backend == "auto" and launched_by_mpi()):
        world = ProcessGroup(import_mpi().COMM_WORLD, timeout)
        if world.world_size > 1:
            _abort_on_uncaught_exception(world)
    else:
        world = ProcessGroup(None, timeout)
    _world = world
    return world


def _abort_on_uncaught_exception(world: ProcessGroup) -> None:
    """After the usual traceback, stop every rank: the others would otherwise wait for this one forever."""
    report = sys.excepthook

    def abort(kind: type, error: BaseException, traceback: Any) -> None:
        report(kind, error, traceback)
        print(
            f"tinytorch.distributed: rank {world.rank} of {world.world_size} stopped with {kind.__name__}; "
            "aborting the job (MPI_Abort) so that no rank waits for it",
            file=sys.stderr,
            flush=True,
        )
        world.abort(1)

    sys.excepthook = abort


def is_initialized() -> bool:
    """True once :func:`init` has run in this process."""
    return _world is not None


def default_group() -> ProcessGroup:
    """The world :func:`init` joined (joining it with the defaults on first use)."""
    return _world if _world is not None else init()


def rank() -> int:
    """This process's rank in the world: 0 .. world_size() - 1."""
    return default_group().rank


def world_size() -> int:
    """How many processes the world has (1 without a launcher)."""
    return default_group().world_size


def barrier() -> None:
    """Wait until every rank of the world has called ``barrier()``."""
    default_group().barrier()


def all_reduce(array: Any, op: ReduceOp = "sum") -> np.ndarray:
    """:meth:`ProcessGroup.all_reduce` on the world: ``array`` becomes the sum (mean, ...) over every rank, in place."""
    return default_group().all_reduce(array, op)


def broadcast(array: Any, root: int = 0) -> np.ndarray:
    """:meth:`ProcessGroup.broadcast` on the world: ``array`` becomes rank ``root``'s, in place."""
    return default_group().broadcast(array, root)


def all_gather(array: Any) -> np.ndarray:
    """:meth:`ProcessGroup.all_gather` on the world: every rank's ``array``, stacked in rank order."""
    return default_group().all_gather(array)
