"""A student's workspace, running inside the framework: ``tinytorch.use_workspace(path)``.

A workspace is the folder of ``NN_slug.py`` files a student writes (``tito module start NN``).
``use_workspace(folder)`` puts every exercise the student has written in place of the framework's
function of the same name, so that any program (the CIFAR-10 example, a checkpoint, a notebook)
runs on the student's ``im2col``, optimizer step or kernels:

- exercises the framework calls directly (``leaky_relu``, ``batch_slices``, ``clip_grad_norm_``,
  ``softmax_cross_entropy`` ...) go to the exercise registry, :mod:`tinytorch.core.exercises`;
- exercises the framework computes in a kernel (``im2col`` in the convolution, ``adam_update`` in
  Adam) also register kernels built on them (:mod:`tinytorch.workspace.adapters`);
- a kernel lesson's exercises (lesson 13: ``maxpool2d_forward`` ...) are kernels themselves and
  go to the kernel registry, :func:`tinytorch.core.kernels.register`.

Only functions the student has written count: stubs and functions imported from the framework
are left alone (:mod:`tinytorch.workspace.files`). Nothing in the framework is reassigned; the
returned :class:`Workspace` removes every registration when closed (or at the end of ``with``).
The environment variable ``TINYTORCH_USE_WORKSPACE=<folder>`` does the same for a whole process,
from ``import tinytorch`` on; ``tito run script.py --workspace <folder>`` for one program.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

ENV_VAR = "TINYTORCH_USE_WORKSPACE"


class Workspace:
    """The registrations of one :func:`use_workspace` call; ``close()`` (or ``with``) undoes them.

    Attributes
    ----------
    path : Path
        The workspace folder.
    files : list of ExerciseFile
        Each lesson file found, loaded, with the state of every exercise.
    """

    def __init__(self, path: Path, files: list, closers: list[Callable[[], None]], kernel_calls: dict[str, int]):
        self.path = path
        self.files = files
        self._closers = closers
        self._kernel_calls = kernel_calls

    def functions(self) -> dict[str, str]:
        """The student's functions now running in the framework: registry key -> workspace file name."""
        return {e.key: f.path.name for f in self.files for e in f.exercises.values() if e.state == "yours"}

    def calls(self) -> dict[str, int]:
        """How many times each of the student's functions has run since the workspace was put in use."""
        from tinytorch.core import exercises

        mine = self.functions()
        return {**{k: n for k, n in exercises.calls().items() if k in mine}, **self._kernel_calls}

    def close(self) -> None:
        """Remove this workspace's registrations, newest first. Closing twice does nothing."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}, {len(self.functions())} function(s) of yours)"


def lesson_files(path: Path, lessons: Iterable | None = None) -> list:
    """Load each lesson's workspace file under folder ``path`` (lessons with exercises, those given or all)."""
    from tinytorch import lesson as runner

    from .files import load_exercise_file

    if not path.is_dir():
        raise NotADirectoryError(f"use_workspace: {path} is not a workspace folder (one holding NN_slug.py files)")
    chosen = runner.find_lessons() if lessons is None else list(lessons)
    return [
        load_exercise_file(lesson, path / f"{lesson.name}.py")
        for lesson in chosen
        if lesson.exercises and (path / f"{lesson.name}.py").is_file()
    ]


def use_workspace(path: str | os.PathLike, lessons: Iterable | None = None) -> Workspace:
    """Run the student's written exercises in the workspace folder ``path`` in place of the framework's.

    ``lessons`` limits which lessons' files are used (default: every lesson). Works as a plain call
    (the substitution stays until ``close()``) and as a context manager. Raises ``WorkspaceError``
    naming the file when a workspace file does not import.

    >>> import tinytorch as tt
    >>> from pathlib import Path
    >>> Path("ws").mkdir()
    >>> _ = Path("ws/05_dense.py").write_text("def mlp_parameter_count(input_size, hidden_sizes, output_size):\\n    return 42\\n")
    >>> with tt.use_workspace("ws") as ws:
    ...     tt.core.networks.mlp_parameter_count(4, [8], 2)
    42
    >>> ws.functions()
    {'tinytorch.core.networks.mlp_parameter_count': '05_dense.py'}
    >>> tt.core.networks.mlp_parameter_count(4, [8], 2)
    58
    """
    from tinytorch.core import exercises, kernels
    from tinytorch._kernels import reference

    from .adapters import kernel_module

    folder = Path(path)
    files = lesson_files(folder, lessons)
    closers: list[Callable[[], None]] = []
    kernel_calls: dict[str, int] = {}
    workspace = Workspace(folder, files, closers, kernel_calls)
    try:
        for loaded in files:
            mine = {name: e for name, e in loaded.exercises.items() if e.state == "yours"}
            if not mine:
                continue
            origin = str(loaded.path)
            if loaded.lesson.module == reference.__name__:  # a kernel lesson: its exercises are kernels
                closers.append(kernels.register(_counted_kernels(mine.values(), origin, kernel_calls)).__exit__)
                continue
            closers.append(exercises.register({e.key: e.function for e in mine.values()}, origin).close)
            for e in mine.values():
                module = kernel_module(e.key, origin)
                if module is not None:
                    closers.append(kernels.register(module).__exit__)
    except BaseException:
        workspace.close()
        raise
    return workspace


def _counted_kernels(mine: Iterable, origin: str, counts: dict[str, int]) -> ModuleType:
    """A module of the student's kernels, each counting its calls into ``counts`` (for ``kernels.register``)."""
    module = ModuleType(f"kernels from {origin}")
    module.__file__ = origin

    def counting(key: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def call(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)

        return call

    for exercise in mine:
        counts[exercise.key] = 0
        setattr(module, exercise.name, counting(exercise.key, exercise.function))
    return module


def apply_environment() -> Workspace | None:
    """``use_workspace($TINYTORCH_USE_WORKSPACE)`` when that variable is set (``import tinytorch`` calls this)."""
    folder = os.environ.get(ENV_VAR, "").strip()
    return use_workspace(folder) if folder else None
