"""tinytorch.distributed in one process: a world of one, SyncBatchNorm, the wrapper, the ring, the launcher.

Without mpiexec the same program runs as a world of one, where every collective leaves its input
as it is and mpi4py is not imported; the 2-rank behaviour is tested in test_distributed.py.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.distributed as dist
from tinytorch.core.optimizers import SGD
from tinytorch.distributed import launch


def test_without_a_launcher_the_world_has_one_rank_and_collectives_keep_their_input():
    world = dist.init()
    assert (dist.rank(), dist.world_size(), world.comm) == (0, 1, None) and dist.is_initialized()
    a = np.arange(4.0)
    assert dist.all_reduce(a, op="mean") is a and a.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert dist.broadcast(a).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert dist.all_gather(a[::2]).tolist() == [[0.0, 2.0]]
    assert world.sum_state({"n": 3}) == {"n": 3}
    dist.barrier()
    assert "rank 0 of 1, single process" in repr(world)


def test_importing_and_a_world_of_one_do_not_load_mpi():
    code = "import sys, tinytorch.distributed as d; d.init(); d.all_reduce(__import__('numpy').ones(2)); print('mpi4py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: dist.all_reduce([1.0, 2.0]), TypeError, "all_reduce: expected a NumPy array or a Tensor, got list"),
        (lambda: dist.all_reduce(np.ones((4, 4))[:, 0]), ValueError, "all_reduce: got a non-contiguous array"),
        (lambda: dist.all_reduce(np.arange(3), op="mean"), TypeError, "op='mean' needs a float array"),
        (lambda: dist.all_reduce(np.ones(3), op="avg"), ValueError, "op must be one of sum, mean, max, min, prod"),
        (lambda: dist.broadcast(np.ones(2), root=1), ValueError, r"root must be a rank in \[0, 1\), got 1"),
        (lambda: dist.all_reduce(np.array(["a"])), TypeError, "collectives move numbers"),
        (lambda: dist.init(backend="nccl"), ValueError, "backend must be 'auto', 'mpi' or 'single'"),
        (lambda: dist.ProcessGroup(timeout=0), ValueError, "timeout must be a positive number of seconds"),
    ],
)
def test_bad_collective_arguments_name_the_operation(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _cnn():
    return tt.Sequential(tt.Conv2D(2, 3, 3, padding=1), tt.BatchNorm2D(3), tt.ReLU(), tt.Flatten(),
                         tt.Dense(3 * 4 * 4, 5), tt.BatchNorm1D(5), tt.Dense(5, 2))


def test_convert_sync_batchnorm_swaps_every_batch_norm_in_place_keeping_order_and_tensors():
    model = _cnn()
    params, buffers = model.parameters(), [b.data for b in model.buffers()]
    optimizer = SGD(model.parameters(), lr=0.1)
    converted = dist.SyncBatchNorm.convert_sync_batchnorm(model.eval())
    assert converted is model and [type(m).__name__ for m in model][:3] == ["Conv2D", "SyncBatchNorm", "ReLU"]
    assert isinstance(model[5], dist.SyncBatchNorm) and not model[1].training
    assert all(a is b for a, b in zip(model.parameters(), params))  # the optimizer's parameters, still
    assert all(np.shares_memory(a, b.data) for a, b in zip(buffers, model.buffers()))
    assert any(p is model[1].weight for p in optimizer.param_groups[0]["params"])
    assert "world_size=1" in repr(model[1])
    single = dist.SyncBatchNorm.convert_sync_batchnorm(tt.BatchNorm1D(4))
    assert isinstance(single, dist.SyncBatchNorm) and single.num_features == 4


@given(shape=st.sampled_from([(6, 3), (4, 3, 5), (2, 3, 4, 4)]), training=st.booleans())
def test_sync_batch_norm_alone_is_batch_norm(shape, training):
    x = np.random.default_rng(sum(shape)).normal(2.0, 3.0, shape).astype(np.float32)
    plain = tt.BatchNorm1D(3) if len(shape) < 4 else tt.BatchNorm2D(3)
    sync = dist.SyncBatchNorm(3)
    for layer in (plain, sync):
        layer.train(training)
    a, b = tt.tensor(x, requires_grad=True), tt.tensor(x, requires_grad=True)
    ya, yb = plain(a), sync(b)
    np.testing.assert_allclose(yb.data, ya.data, rtol=1e-5, atol=1e-5)
    cotangent = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    ya.backward(cotangent)
    yb.backward(cotangent)
    np.testing.assert_allclose(b.grad.data, a.grad.data, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sync.running_var.data, plain.running_var.data, rtol=1e-6)


def test_sync_batch_norm_function_matches_batch_norm_over_the_same_values():
    """The sync function with a world of one: the statistics and gradient sums of a whole batch."""
    from tinytorch.distributed.sync_batchnorm import SyncBatchNormFunction

    x = np.random.default_rng(0).normal(1.0, 2.0, (8, 3, 2, 2))
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
    rm, rv = np.zeros(3), np.ones(3)
    xs, gs, bs = (tt.tensor(v, dtype=tt.float64, requires_grad=True) for v in (x, gamma, beta))
    y = SyncBatchNormFunction.apply(xs, gs, bs, running_mean=rm, running_var=rv, momentum=0.1, eps=1e-5,
                                    group=dist.ProcessGroup())
    ref = tt.BatchNorm2D(3).double()
    ref.weight.data[:], ref.bias.data[:] = gamma, beta
    xr = tt.tensor(x, dtype=tt.float64, requires_grad=True)
    yr = ref(xr)
    np.testing.assert_allclose(y.data, yr.data, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rv, ref.running_var.data, rtol=1e-10)
    cotangent = np.random.default_rng(2).normal(size=x.shape)
    y.backward(cotangent)
    yr.backward(cotangent)
    for ours, theirs in ((xs, xr), (gs, ref.weight), (bs, ref.bias)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.data, rtol=1e-9, atol=1e-10)


def test_in_a_world_of_one_the_wrapper_changes_nothing_but_keeps_plain_names():
    tt.manual_seed(0)
    model = _cnn()
    tt.manual_seed(0)
    wrapped = dist.DistributedDataParallel(_cnn(), bucket_cap_mb=0.001)
    x, y = tt.randn(4, 2, 4, 4), tt.tensor([0, 1, 1, 0])
    for net in (model, wrapped):
        tt.CrossEntropyLoss()(net(x), y).backward()
    for a, b in zip(model.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(a.grad.data, b.grad.data)
    assert list(wrapped.state_dict()) == list(model.state_dict())
    model.load_state_dict(wrapped.state_dict())
    assert wrapped.process_group.world_size == 1 and len(wrapped.buckets) > 1
    assert sum(map(len, wrapped.buckets)) == len(model.parameters())
    assert wrapped.buckets[0][:2] == ["6.bias", "6.weight"]  # the last layer's first: backward reaches it first
    with wrapped.no_sync():
        assert not wrapped.require_backward_grad_sync
    assert wrapped.require_backward_grad_sync
    with pytest.raises(TypeError, match="module must be a Module, got builtin_function_or_method"):
        dist.DistributedDataParallel(print)


@given(p=st.integers(1, 7), shape=st.sampled_from([(1,), (5,), (3, 4), (2, 3, 5)]))
def test_the_ring_sums_for_every_rank_and_each_sends_2_p_minus_1_over_p_of_the_data(p, shape):
    arrays = [np.random.default_rng(r).normal(size=shape) for r in range(p)]
    results, sent = dist.ring_all_reduce(arrays)
    for result in results:
        np.testing.assert_allclose(result, np.sum(arrays, axis=0))
    n = int(np.prod(shape))
    chunks = [len(c) for c in np.array_split(np.zeros(n), p)]
    assert sum(sent) == 2 * (p - 1) * n  # every chunk passed on p - 1 times in each phase
    assert max(sent) <= 2 * (p - 1) * max(chunks)
    assert all(a.tolist() == b.tolist() for a, b in zip(arrays, [np.random.default_rng(r).normal(size=shape) for r in range(p)]))


def test_the_launcher_is_found_beside_python_and_a_job_past_its_deadline_is_killed(tmp_path):
    pytest.importorskip("mpi4py", reason='the distributed extra is not installed: pip install "tinytorch[distributed]"')
    try:
        mpiexec = launch.mpiexec_path()
    except FileNotFoundError as error:
        pytest.skip(f"no mpiexec: {error}")
    command = launch.mpiexec_command(3, ["train.py", "--x"], hostfile="hosts")
    assert command == [str(mpiexec), "-n", "3", "-f", "hosts", sys.executable, "train.py", "--x"]
    assert launch.thread_environment(1, {"A": "b"}) == {"A": "b", **{v: "1" for v in launch.THREAD_VARIABLES}}
    marker = tmp_path / "still-running"
    script = tmp_path / "sleep.py"
    script.write_text(f"import time, pathlib\ntime.sleep(4)\npathlib.Path({str(marker)!r}).touch()\n")
    with pytest.raises(subprocess.TimeoutExpired):
        launch.run(1, [str(script)], timeout=1.5)
    import time

    time.sleep(3.5)
    assert not marker.exists()  # the rank was killed with its launcher, not left behind
    with pytest.raises(ValueError, match="ranks must be a positive integer, got 0"):
        launch.mpiexec_command(0, [])
