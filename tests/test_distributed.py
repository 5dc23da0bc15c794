"""Data parallelism under ``mpiexec -n 2``: the same result as one process, and failures end the job.

Each test starts real MPI jobs (the ``distributed`` extra: mpi4py and the mpich wheel's mpiexec)
with a deadline, so a hang fails the test instead of stalling the suite.
"""

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason='the distributed extra is not installed: pip install "tinytorch[distributed]"')

from tinytorch.core.checkpoint import load_state  # noqa: E402
from tinytorch.distributed import launch  # noqa: E402

from . import distributed_worker as worker  # noqa: E402

HERE = Path(__file__).resolve().parent
DEADLINE = 60  # seconds; a healthy job takes a few


def _mpiexec_or_skip():
    try:
        launch.mpiexec_path()
    except FileNotFoundError as error:
        pytest.skip(f"no mpiexec: {error}")


def _run(script, *args, timeout=DEADLINE):
    _mpiexec_or_skip()
    started = time.monotonic()
    done = launch.run(2, [str(HERE / script), *map(str, args)], timeout=timeout, env=launch.thread_environment(1))
    return done, time.monotonic() - started


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    """The 2-rank run, trained to the end: per-rank batch 8, checkpoints every 4 steps."""
    out = tmp_path_factory.mktemp("unbroken")
    done, _ = _run("distributed_worker.py", "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done


def test_two_ranks_with_batch_b_train_like_one_process_with_batch_2b(unbroken, tmp_path):
    out, _ = unbroken
    two = load_state(out / "final.npz")
    worker.train(tmp_path, batch_size=16, distributed=False)  # one process, plain BatchNorm
    one = load_state(tmp_path / "final.npz")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert set(two["weights"]) == set(one["weights"])  # the plain model's names: no "module." prefix
    for name, weight in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], weight, rtol=1e-4, atol=1e-5, err_msg=name)
    # the epoch's numbers are the whole data set's: summed over both ranks' samples
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-4, err_msg=key)


def test_the_sampler_deals_out_every_sample_exactly_once_per_epoch(unbroken):
    out, _ = unbroken
    coverage = load_state(out / "final.npz")["coverage"]
    assert len(coverage) == 2
    for epoch, shards in enumerate(coverage):
        assert shards.shape == (2, worker.TRAIN_SAMPLES // 2)
        assert sorted(shards.ravel().tolist()) == list(range(worker.TRAIN_SAMPLES)), epoch
    assert not np.array_equal(coverage[0], coverage[1])  # set_epoch: a new order each epoch


def test_only_rank_0_prints_and_all_gradients_were_averaged_during_backward(unbroken):
    out, done = unbroken
    assert done.stdout.count("Epoch 1/2") == 1 and done.stdout.count("Epoch 2/2") == 1, done.stdout
    assert load_state(out / "final.npz")["overlapped_buckets"] > 1


def test_a_killed_rank_ends_the_job_and_the_resumed_run_matches_the_unbroken_one(unbroken, tmp_path):
    out, _ = unbroken
    killed, seconds = _run("distributed_worker.py", "--out", tmp_path, "--kill-at", 6)
    assert killed.returncode != 0 and seconds < DEADLINE, killed.stderr
    assert not (tmp_path / "final.npz").exists()
    saved = load_state(tmp_path / "run.ckpt")["extra"]["trainer"]
    assert saved["global_step"] == 4 and saved["epoch_progress"]["batches"] == 4  # mid-epoch: 6 steps per epoch
    resumed, _ = _run("distributed_worker.py", "--out", tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    got, want = load_state(tmp_path / "final.npz"), load_state(out / "final.npz")
    for name, weight in want["weights"].items():
        np.testing.assert_array_equal(got["weights"][name], weight, err_msg=name)
    for key in ("val_loss", "val_accuracy", "train_accuracy", "lr"):
        np.testing.assert_array_equal(got["history"][key], want["history"][key], err_msg=key)
    np.testing.assert_allclose(got["history"]["train_loss"], want["history"]["train_loss"], rtol=1e-12)


def test_a_rank_that_raises_brings_the_job_down_with_its_error(tmp_path):
    done, seconds = _run("distributed_worker.py", "--out", tmp_path, "--raise-at", 3)
    assert done.returncode != 0 and seconds < DEADLINE
    assert "ValueError: injected failure at step 3 on rank 1" in done.stderr
    assert "aborting the job" in done.stderr and not (tmp_path / "final.npz").exists()


def test_a_rank_that_leaves_without_an_error_makes_the_others_time_out(tmp_path):
    record = tmp_path / "error.txt"  # what rank 0 raised (its stderr through mpiexec can be cut off as the job dies)
    done, seconds = _run("distributed_checks.py", "timeout", record)
    assert done.returncode != 0 and seconds < 20, done.stderr  # rank 0 would otherwise wait forever
    assert record.read_text().startswith("CollectiveTimeout: barrier: rank 0 of 2 waited"), done.stderr


def test_collectives_accumulation_unused_and_late_gradients_on_two_ranks():
    done, _ = _run("distributed_checks.py", "checks")
    assert done.returncode == 0 and "all checks passed" in done.stdout, done.stderr


def test_the_cifar10_example_trains_data_parallel_and_rank_0_records_the_whole_test_set(tmp_path):
    data = tmp_path / "data" / "cifar10"
    data.mkdir(parents=True)
    shutil.copy(HERE.parent / "data" / "cifar10" / "cifar-10-binary.tar.gz", data)
    env = {**launch.thread_environment(1), "TINYTORCH_DATA": str(tmp_path / "data"),
           "TINYTORCH_CACHE": str(tmp_path / "cache"), "TINYTORCH_TRUST_LOCAL": "1"}
    _mpiexec_or_skip()
    out, saved = tmp_path / "results", tmp_path / "model.npz"
    done = launch.run(2, [str(HERE.parent / "examples" / "train_cifar10.py"), "--distributed", "--epochs=2",
                          "--batch-size=4", f"--out={out}", f"--save={saved}", "--checkpoint-every=3"],
                      timeout=DEADLINE, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Epoch 2/2") == 1 and done.stdout.count("report in") == 1  # rank 0 only
    recorded = json.loads((out / "history.json").read_text())
    report = (out / "README.md").read_text()
    assert "Data parallel: 2 ranks under mpiexec, OMP_NUM_THREADS=1 each" in report
    # the test set was sharded for evaluation, and its counts summed: every test image once
    assert recorded["test"]["num_samples"] == sum(map(sum, recorded["confusion_matrix"]))
    state = load_state(saved)  # the plain model's weights, as the one-process program saves them
    assert state["extra"]["test_accuracy"] == recorded["test"]["accuracy"] and "0.weight" in state["model"]
    # 8 steps (4 per epoch: 15 images dealt to 2 ranks, 2 per rank and step); the last periodic save at step 6
    assert load_state(saved.with_suffix(".run.npz"))["extra"]["trainer"]["global_step"] == 6
