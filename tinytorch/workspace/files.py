"""What a student's workspace file holds: for each exercise of its lesson, whose function it is.

A workspace file (``workspace/NN_slug.py``, written by ``tito module start NN``) defines the
lesson's exercises. Each one is in one of four states:

- ``"yours"``: defined there, callable, and written (not a stub): it can stand in for the framework's;
- ``"stub"``: its body still only raises ``NotImplementedError`` (or is ``pass`` / ``...``);
- ``"framework"``: it *is* the framework's function (``from tinytorch.core.tensor import broadcast_shape``);
- ``"missing"``: the file does not define it (or defines something that is not callable).

Stubs are found by reading the file's source (its syntax tree), not by calling anything.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from tinytorch.core import exercises
from tinytorch.lesson import Lesson, load_workspace

STATES = ("yours", "stub", "framework", "missing")


class WorkspaceError(RuntimeError):
    """A workspace file that cannot be used: it does not import, or it is not where it should be."""


@dataclass
class Exercise:
    """One exercise of a lesson and the function a workspace holds for it."""

    name: str
    key: str  # the framework function's registry key (``tinytorch.core.spatial.im2col``)
    state: str  # one of STATES
    framework: Callable
    function: Callable | None = None  # the workspace's function when ``state == "yours"``


@dataclass
class ExerciseFile:
    """A lesson's workspace file, loaded: its module, its hash, and each exercise's state."""

    lesson: Lesson
    path: Path
    sha256: str
    module: ModuleType
    exercises: dict[str, Exercise] = field(default_factory=dict)

    def names(self, state: str) -> list[str]:
        """The exercises in ``state``, in the lesson's order."""
        return [e.name for e in self.exercises.values() if e.state == state]

    @property
    def complete(self) -> bool:
        """True when every exercise of the lesson is the student's own."""
        return all(e.state == "yours" for e in self.exercises.values())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_stub_body(body: list[ast.stmt]) -> bool:
    statements = body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str) else body  # a docstring does not count
    if not statements:
        return True
    if len(statements) != 1:
        return False
    statement = statements[0]
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and statement.value.value is Ellipsis:
        return True
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        raised = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
    return False


def stub_names(source: str) -> set[str]:
    """The top-level functions of ``source`` whose body only raises NotImplementedError (or is empty).

    >>> sorted(stub_names("def a():\\n    '''Doc.'''\\n    raise NotImplementedError('write a')\\ndef b():\\n    return 1\\n"))
    ['a']
    """
    tree = ast.parse(source)
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and _is_stub_body(node.body)}


def load_exercise_file(lesson: Lesson, path: Path) -> ExerciseFile:
    """Import the workspace file ``path`` of ``lesson`` and sort its exercises into :data:`STATES`.

    Raises :class:`WorkspaceError` naming the file when it does not parse or import.
    """
    try:
        source = path.read_text(encoding="utf-8")
        stubs = stub_names(source)
        module = load_workspace(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # a student's file may fail in any way at import; say which file and how
        raise WorkspaceError(f"workspace file {path} does not import: {type(error).__name__}: {error}") from error
    framework_module = importlib.import_module(lesson.module)
    loaded = ExerciseFile(lesson, path, sha256_of(path), module)
    for name in lesson.exercises:
        framework = getattr(framework_module, name)
        candidate = getattr(module, name, None)
        if not callable(candidate):
            state = "missing"
        elif exercises.is_framework_function(candidate, framework):
            state = "framework"
        elif name in stubs and getattr(candidate, "__module__", None) == module.__name__:
            state = "stub"
        else:
            state = "yours"
        loaded.exercises[name] = Exercise(
            name, exercises.key_of(framework), state, framework, candidate if state == "yours" else None
        )
    return loaded
