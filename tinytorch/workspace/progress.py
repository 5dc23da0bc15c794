"""The record of a student's progress, kept in the workspace: ``progress.json``.

Two things are recorded, each with the date, the framework version and the hash of every
workspace file it depended on:

- ``lessons``: each lesson completed with ``tito module complete NN`` (every exercise passed);
- ``checkpoints``: each checkpoint run (passed or failed), with everything it measured.

A record is *stale* when a file it depended on has changed since (its hash differs), a file it
would depend on now has appeared, or the framework's version is not the one it ran on: status
views show it as stale instead of trusting it. The file is JSON, written to a temporary file and
renamed, so a crash never leaves half a record.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"
FORMAT = 1


def now() -> str:
    """The current time, ISO 8601 with the UTC offset, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def framework_version() -> str:
    from tinytorch import __version__

    return __version__


def progress_path(workspace: Path) -> Path:
    return Path(workspace) / PROGRESS_FILE


def load(workspace: Path) -> dict[str, Any]:
    """The workspace's record; an empty one when there is none yet. A corrupt file is an error naming it."""
    path = progress_path(workspace)
    if not path.is_file():
        return {"format": FORMAT, "lessons": {}, "checkpoints": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable progress record ({error}); move it away to start a new one") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a TinyTorch progress record of format {FORMAT}")
    data.setdefault("lessons", {})
    data.setdefault("checkpoints", {})
    return data


def _save(workspace: Path, data: dict[str, Any]) -> None:
    path = progress_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def record(workspace: Path, section: str, key: str, entry: dict[str, Any] | None) -> None:
    """Set (or, with ``entry=None``, remove) ``section[key]`` of the record, and save it atomically."""
    data = load(workspace)
    if entry is None:
        data[section].pop(key, None)
    else:
        data[section][key] = entry
    _save(workspace, data)


def stale_reasons(entry: dict[str, Any], files_now: dict[str, str]) -> list[str]:
    """Why a recorded ``entry`` no longer describes the workspace; empty when it still does.

    ``entry["files"]`` maps each workspace file the run depended on to its hash then; ``files_now``
    maps the files it would depend on now to their hashes.
    """
    reasons = []
    then = entry.get("files", {})
    for name, digest in sorted(then.items()):
        if name not in files_now:
            reasons.append(f"{name} is gone")
        elif files_now[name] != digest:
            reasons.append(f"{name} changed after the run")
    reasons += [f"{name} was written after the run" for name in sorted(set(files_now) - set(then))]
    if entry.get("framework_version") != framework_version():
        reasons.append(f"it ran on TinyTorch {entry.get('framework_version')}, this is {framework_version()}")
    return reasons
