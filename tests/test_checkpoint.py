"""Checkpoint files: one .npz with JSON metadata, no pickle, atomic writes, clear errors on foreign files."""

import json
import os
import pickle

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.checkpoint import (
    META_KEY,
    CheckpointError,
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_state,
)
from tinytorch.core.optimizers import Adam, StepLR


def _state():
    return {
        "epoch": 7,
        "ratio": float("inf"),
        "name": "run",
        "nothing": None,
        "flags": (True, False),
        "rng": tt.get_rng_state(),  # 128-bit integers
        "weights": {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "count": np.array(3, dtype=np.int64)},
        "masks": [np.array([True, False]), np.arange(3, dtype=np.uint8)],
        "optimizer": {"state": {0: {"step": 2, "exp_avg": np.ones(2)}}},
        "scalar": np.float32(0.5),
    }


def test_round_trip_keeps_arrays_exactly_and_values_as_json(tmp_path):
    path = tmp_path / "best_model.pkl"  # the seed course's name: the content is .npz all the same
    save_state(path, _state())
    loaded = load_state(path)
    w = loaded["weights"]["0.weight"]
    assert w.dtype == np.float32 and w.shape == (2, 3) and np.array_equal(w, np.arange(6).reshape(2, 3))
    assert loaded["weights"]["count"].shape == () and loaded["weights"]["count"] == 3
    assert loaded["masks"][0].dtype == np.bool_ and loaded["masks"][1].dtype == np.uint8
    assert loaded["flags"] == [True, False] and loaded["ratio"] == float("inf") and loaded["nothing"] is None
    assert loaded["rng"] == tt.get_rng_state() and loaded["epoch"] == 7 and loaded["scalar"] == 0.5
    assert loaded["optimizer"]["state"]["0"]["step"] == 2  # JSON keys are strings


def test_the_file_is_an_npz_with_json_metadata_and_no_pickle(tmp_path):
    path = tmp_path / "ckpt.pkl"
    save_state(path, _state())
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive[META_KEY].tobytes())
        assert meta["format"] == "tinytorch-checkpoint" and meta["version"] == 1
        assert archive["weights/0.weight"].shape == (2, 3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pkl"], "a temporary file was left behind"


def test_a_failed_save_leaves_the_old_file_alone(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_state(path, {"epoch": 1})
    with pytest.raises(TypeError, match=r"save_state: model/layer is a object; a checkpoint holds arrays"):
        save_state(path, {"model": {"layer": object()}})
    with pytest.raises(TypeError, match="only numbers can be saved"):
        save_state(path, {"names": np.array(["a", "b"], dtype=object)})
    assert load_state(path) == {"epoch": 1}
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def _write(path, data: bytes):
    path.write_bytes(data)


def _savez(path, **arrays):
    with open(path, "wb") as f:  # a file object, so np.savez keeps the name as it is
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: _write(p, pickle.dumps({"weights": [1, 2]})),
            "looks like a Python pickle, which TinyTorch never loads",
        ),
        (
            lambda p: _write(p, np.random.default_rng(0).bytes(200)),
            "not a TinyTorch checkpoint: it is not an .npz archive",
        ),
        (lambda p: _write(p, b""), "not an .npz archive"),
        (lambda p: _savez(p, w=np.ones(2)), "has no '__tinytorch__' entry"),
        (
            lambda p: _savez(p, __tinytorch__=np.frombuffer(b'{"format": "other", "state": {}}', np.uint8)),
            "its format tag is 'other'",
        ),
        (
            lambda p: _savez(
                p,
                __tinytorch__=np.frombuffer(
                    b'{"format": "tinytorch-checkpoint", "version": 99, "state": {}}', np.uint8
                ),
            ),
            "format version 99; this TinyTorch reads versions up to 1",
        ),
        (lambda p: _savez(p, __tinytorch__=np.frombuffer(b"{not json", np.uint8)), "metadata is not valid JSON"),
        (
            lambda p: _savez(p, __tinytorch__=np.array([{"a": 1}], dtype=object)),
            "damaged or not a TinyTorch checkpoint",
        ),
    ],
)
def test_foreign_or_corrupt_files_are_clear_errors(tmp_path, make, message):
    path = tmp_path / "file.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        load_state(path)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_state(path, {"w": np.ones(1000)})
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(CheckpointError, match="damaged"):
        load_state(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint file at"):
        load_state(tmp_path / "absent.npz")


def test_metadata_naming_a_missing_array_is_damage(tmp_path):
    meta = {"format": "tinytorch-checkpoint", "version": 1, "state": {"w": {"__array__": "w"}}}
    _savez(tmp_path / "c.npz", __tinytorch__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(CheckpointError, match="names array 'w', which is missing"):
        load_state(tmp_path / "c.npz")


def test_save_and_load_checkpoint_restore_model_optimizer_and_scheduler(tmp_path):
    model = tt.Sequential([tt.Dense(3, 4), tt.ReLU(), tt.Dense(4, 2)])
    opt = Adam(model.parameters(), lr=0.1)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    model(tt.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, sched, epoch=4)

    fresh = tt.Sequential([tt.Dense(3, 4), tt.ReLU(), tt.Dense(4, 2)])
    fresh_opt = Adam(fresh.parameters(), lr=0.1)
    fresh_sched = StepLR(fresh_opt, step_size=1, gamma=0.5)
    state = load_checkpoint(tmp_path / "c.npz", fresh, fresh_opt, fresh_sched)
    assert state["extra"] == {"epoch": 4}
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert fresh_opt.param_groups[0]["lr"] == 0.05 and fresh_sched.last_epoch == 1
    np.testing.assert_array_equal(
        fresh_opt.state[fresh.parameters()[0]]["exp_avg"], opt.state[model.parameters()[0]]["exp_avg"]
    )

    wrong = tt.Sequential([tt.Dense(3, 5), tt.ReLU(), tt.Dense(5, 2)])
    with pytest.raises(CheckpointError, match="does not fit this model: .*shape mismatches"):
        load_checkpoint(tmp_path / "c.npz", wrong)
    save_checkpoint(tmp_path / "m.npz", model)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "m.npz", fresh, fresh_opt)
