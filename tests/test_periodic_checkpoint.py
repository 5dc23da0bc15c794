"""Checkpoints taken in the middle of an epoch: a run killed at any step resumes to the same parameters."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.callbacks import Callback, PeriodicCheckpoint
from tinytorch.core.checkpoint import load_state, remove_stale_temporaries, save_state
from tinytorch.core.data.transforms import RandomTransform
from tinytorch.core.dataloader import DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy, F1Score
from tinytorch.core.optimizers import Adam, OneCycleLR
from tinytorch.core.training import Trainer


class _Jitter(RandomTransform):
    """Noise on each point, drawn from the loader's transform generator: a resume must replay its draws."""

    def apply(self, batch, rng):
        return batch + self._generator(rng).normal(0, 0.05, batch.shape).astype(batch.dtype)


class _Killed(Exception):
    pass


class _KillAt(Callback):
    """Stands for SIGKILL: the run stops dead after optimizer step ``step`` (no epoch end, no save)."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step, logs):
        if step == self.step:
            raise _Killed(step)


def _data(n=200, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0)


def _run(tmp_path, epochs=3, kill_at=None, resume=False, every=4, prefetch=0):
    """Dropout, shuffling from the framework's generator, a random augmentation, Adam, a per-step schedule."""
    tt.manual_seed(5)
    model = tt.Sequential(tt.Dense(2, 16), tt.ReLU(), tt.Dropout(0.2), tt.Dense(16, 4))
    train = DataLoader(*_data(), batch_size=24, shuffle=True, transform=_Jitter(), num_prefetch=prefetch)
    opt = Adam(model.parameters(), lr=0.02)
    schedule = OneCycleLR(opt, max_lr=0.05, epochs=epochs, steps_per_epoch=len(train))
    callbacks = [PeriodicCheckpoint(str(tmp_path / "run.ckpt"), every_n_steps=every)]
    if kill_at is not None:
        callbacks.append(_KillAt(kill_at))
    trainer = Trainer(model, CrossEntropyLoss(), opt, [Accuracy(), F1Score()], scheduler=schedule, callbacks=callbacks)
    val = DataLoader(*_data(64, seed=1), batch_size=32)
    if kill_at is not None:
        with pytest.raises(_Killed):
            trainer.fit(train, val, epochs=epochs, verbose=0)
        return trainer
    trainer.fit(train, val, epochs=epochs, verbose=0, resume_from=tmp_path / "run.ckpt" if resume else None)
    return trainer


@pytest.mark.parametrize(
    "every, kill_at, saved_at, prefetch",
    [(4, 11, 8, 0), (4, 14, 12, 2), (9, 10, 9, 0)],  # 9 steps per epoch
    ids=["mid-epoch", "prefetching", "at-the-epoch's-last-batch"],
)
def test_a_run_killed_mid_epoch_resumes_to_the_parameters_of_an_unbroken_run(tmp_path, every, kill_at, saved_at, prefetch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = _run(tmp_path / "a", every=every, prefetch=prefetch)
    _run(tmp_path / "b", kill_at=kill_at, every=every, prefetch=prefetch)
    assert load_state(tmp_path / "b" / "run.ckpt")["extra"]["trainer"]["global_step"] == saved_at
    tt.manual_seed(999)  # whatever the generator did in between, the checkpoint restores it
    resumed = _run(tmp_path / "b", resume=True, every=every, prefetch=prefetch)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert resumed.global_step == straight.global_step == 27
    for key in ("epoch", "val_loss", "val_accuracy", "val_f1", "lr", "train_accuracy", "train_f1"):
        assert resumed.history[key] == straight.history[key], key
    np.testing.assert_allclose(resumed.history["train_loss"], straight.history["train_loss"], rtol=1e-12)


def test_the_mid_epoch_record_says_where_the_epoch_was(tmp_path):
    _run(tmp_path, kill_at=6, every=5)
    progress = load_state(tmp_path / "run.ckpt")["extra"]["trainer"]["epoch_progress"]
    assert (progress["batches"], progress["samples"], progress["count"], progress["world_size"]) == (5, 120, 120, 1)
    assert progress["metrics"][0]["total"] == 120 and progress["metrics"][1]["confusion"].sum() == 120


def test_periodic_checkpoint_needs_a_positive_step_count():
    with pytest.raises(ValueError, match="every_n_steps must be a positive integer, got 0"):
        PeriodicCheckpoint("x.ckpt", every_n_steps=0)


def test_metric_states_add_up_over_parts_of_the_data():
    scores, labels = np.random.default_rng(0).normal(size=(50, 3)), np.random.default_rng(1).integers(0, 3, 50)
    for make in (Accuracy, F1Score):
        whole, first, second = make(), make(), make()
        whole.update(scores, labels)
        first.update(scores[:20], labels[:20])
        second.update(scores[20:], labels[20:])
        merged = make()
        a, b = first.state_dict(), second.state_dict()
        merged.load_state_dict({k: np.asarray(a[k]) + np.asarray(b[k]) for k in a})
        assert merged.compute() == whole.compute()


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "run.ckpt"
    dead, other = tmp_path / f".run.ckpt.{_dead_pid()}.tmp", tmp_path / f".other.ckpt.{_dead_pid()}.tmp"
    live = tmp_path / f".run.ckpt.{os.getppid()}.tmp"  # our parent runs: a save in progress elsewhere
    for path in (dead, other, live):
        path.write_bytes(b"half a checkpoint")
    save_state(target, {"step": 1})
    assert not dead.exists() and other.exists() and live.exists()
    dead.write_bytes(b"again")
    assert remove_stale_temporaries(target) == [dead] and not dead.exists()


SAVE_FOREVER = """
import os, sys, time
import numpy as np
from tinytorch.core.checkpoint import save_state
path = sys.argv[1]
save_state(path, {"step": 1, "w": np.zeros(1000)})
os.fsync = lambda fd: (print("writing", flush=True), time.sleep(60))   # stop in the middle of the next save
save_state(path, {"step": 2, "w": np.ones(1000)})
"""


def test_a_save_killed_midway_leaves_the_old_checkpoint_and_the_next_resume_cleans_up(tmp_path):
    target = tmp_path / "run.ckpt"
    child = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    stray = tmp_path / f".run.ckpt.{child.pid}.tmp"
    assert stray.exists() and load_state(target)["step"] == 1
    model = tt.Sequential(tt.Dense(2, 4))
    trainer = Trainer(model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.1))
    trainer.save_checkpoint(target)  # its own save, by a new process after the crash
    assert not stray.exists()
    stray.write_bytes(b"left by another killed save")
    trainer.load_checkpoint(target)  # a resume cleans up too
    assert not stray.exists()
