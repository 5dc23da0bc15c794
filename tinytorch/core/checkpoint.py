"""Checkpoints: a training run's whole state in one file, without pickle (used by lesson 11's Trainer).

A checkpoint is a NumPy ``.npz`` archive. Every array (weights, optimizer moments) is one entry;
everything else (numbers, strings, lists: the epoch, the history, the random generator's state,
the scheduler's settings) is JSON, stored as bytes in one more entry, ``__tinytorch__``, with a
format tag and version. Loading uses ``np.load(..., allow_pickle=False)`` and ``json``: nothing in
the file can run code. The content is ``.npz`` whatever the file's name, so the seed course's
``checkpoint_path='best_model.pkl'`` works, and the file is *not* a pickle.

Files are written to a temporary file beside the target (``.NAME.PID.tmp``) and renamed, so a crash
never leaves a half-written checkpoint. A process killed in the middle of a save (SIGKILL, a lost
machine) leaves the old checkpoint intact and its temporary file behind; the next save to the same
path, or a resume from it, removes such files of processes that no longer run.

>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
>>> save_state(path, {"epoch": 3, "weights": {"w": np.arange(4.0)}})
>>> state = load_state(path)
>>> state["epoch"], state["weights"]["w"]
(3, array([0., 1., 2., 3.]))
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .tensor import Tensor

__all__ = [
    "CheckpointError", "save_state", "load_state", "save_checkpoint", "load_checkpoint", "restore_state",
    "remove_stale_temporaries",
]

FORMAT = "tinytorch-checkpoint"
VERSION = 1
META_KEY = "__tinytorch__"
ARRAY_REF = "__array__"  # a JSON object {"__array__": "entry name"} stands for an array entry


class CheckpointError(ValueError):
    """A file is not a TinyTorch checkpoint, is damaged, or does not fit what it is loaded into."""


def _encode(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-able form of ``value``; arrays are moved into ``arrays`` under their path and referenced."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(
                f"save_state: {path or 'state'} is an array of dtype {value.dtype}; only numbers can be saved"
            )
        arrays[path] = value
        return {ARRAY_REF: path}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int, np.integer)):
                raise TypeError(f"save_state: {path or 'state'} has a key {key!r}; keys must be strings or integers")
            if key == ARRAY_REF:
                raise ValueError(f"save_state: {path or 'state'} uses the reserved key {ARRAY_REF!r}")
            out[str(key)] = _encode(item, f"{path}/{key}" if path else str(key), arrays)
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{path}/{i}", arrays) for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"save_state: {path or 'state'} is a {type(value).__name__}; a checkpoint holds arrays, numbers, strings, "
        "lists and dicts only"
    )


def _decode(value: Any, arrays: Mapping[str, np.ndarray], source: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {ARRAY_REF}:
            name = value[ARRAY_REF]
            if name not in arrays:
                raise CheckpointError(
                    f"load_state: {source} is damaged: its metadata names array {name!r}, which is missing"
                )
            return arrays[name]
        return {k: _decode(v, arrays, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays, source) for v in value]
    return value


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed saves to ``path`` left behind; returns what was removed.

    A temporary file ``.NAME.PID.tmp`` is stale when no process with that PID runs on this machine
    (a save in progress in another live process is left alone).
    """
    path = Path(path)
    prefix, removed = f".{path.name}.", []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(prefix): -len(".tmp")]
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp") and pid.isdigit()):
            continue
        if int(pid) != os.getpid() and not _process_exists(int(pid)):
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:  # another process cleaned it up first
                pass
    return removed


def save_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write a nested dict of arrays, numbers, strings, lists and dicts to ``path`` (atomically).

    Temporary files left by earlier saves to ``path`` that were killed are removed first.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "", arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "state": tree}).encode("utf-8")
    if META_KEY in arrays:
        raise ValueError(f"save_state: the name {META_KEY!r} is reserved")
    arrays[META_KEY] = np.frombuffer(meta, dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append ".npz" to the name
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a TinyTorch checkpoint: {why}")


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_state` wrote. A foreign or damaged file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_state: no checkpoint file at {path}")
    with open(path, "rb") as f:  # opened here so that the file is closed even when NumPy fails on it
        head = f.read(4)
        if head[:1] == b"\x80":
            raise _not_a_checkpoint(
                path, "it looks like a Python pickle, which TinyTorch never loads (it could run code)"
            )
        if head != b"PK\x03\x04":
            raise _not_a_checkpoint(path, "it is not an .npz archive")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as archive:
                if META_KEY not in archive.files:
                    raise _not_a_checkpoint(
                        path, f"the .npz archive has no {META_KEY!r} entry (saved by something else?)"
                    )
                arrays = {name: archive[name] for name in archive.files}
        except CheckpointError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise CheckpointError(f"{path} is damaged or not a TinyTorch checkpoint: {error}") from None
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is damaged: its metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _not_a_checkpoint(path, f"its format tag is {meta.get('format') if isinstance(meta, dict) else None!r}")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('version')!r}; "
            f"this TinyTorch reads versions up to {VERSION}"
        )
    return _decode(meta["state"], arrays, path)


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    **extra: Any,
) -> None:
    """Save a model (and optionally its optimizer, scheduler and any extra JSON-able values) to ``path``.

    Each object is saved through its ``state_dict()``. Load it back with :func:`load_checkpoint`.
    """
    state: dict[str, Any] = {"model": model.state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    state["extra"] = extra
    save_state(path, state)


def load_checkpoint(path: str | os.PathLike, model: Any = None, optimizer: Any = None, scheduler: Any = None) -> dict:
    """Load ``path`` into the given objects (each through ``load_state_dict``); returns the whole saved state.

    Asking to restore an optimizer or scheduler the file does not hold is an error.
    """
    return restore_state(load_state(path), path, model, optimizer, scheduler)


def restore_state(
    state: dict, path: str | os.PathLike, model: Any = None, optimizer: Any = None, scheduler: Any = None
) -> dict:
    """Load a :func:`load_state` result (read from ``path``) into the given objects; returns ``state``."""
    for name, target in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if name not in state:
            raise CheckpointError(f"load_checkpoint: {path} holds no {name} state")
        try:
            target.load_state_dict(state[name])
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"load_checkpoint: {path} does not fit this {name}: {error}") from None
    return state
