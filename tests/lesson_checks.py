"""A lesson written by a test: its text in a lessons folder of its own, its exercises in a framework module."""

from pathlib import Path
from typing import Callable


def install_lesson(tmp_path: Path, monkeypatch, filename: str, text: str, functions: dict[str, Callable]) -> Path:
    """Make ``text`` the only lesson (``TINYTORCH_LESSONS``), its exercises ``functions`` in
    ``tinytorch.core.profiling`` (the ``:module:`` such lessons name); returns the lessons folder."""
    import tinytorch.core.profiling as module

    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / filename).write_text(text)
    monkeypatch.setenv("TINYTORCH_LESSONS", str(folder))
    for name, fn in functions.items():
        monkeypatch.setattr(module, name, fn, raising=False)
    return folder
