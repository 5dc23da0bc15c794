"""What the grader learns from a submission without running it: the grader's own process only parses.

- whole-file problems: not UTF-8, or not valid Python (the line and the reason), so no child is
  started for a file that cannot import;
- the reflection answers, read from the ``REFLECTIONS`` dictionary literal (never executed);
- flags for review: an exercise that reaches for the framework's own function (``from
  tinytorch.core.spatial import im2col``, ``tt.im2col``, ``getattr(..., "im2col")``), or whose
  definition is the framework's own, copied.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field

from tinytorch.lesson import Lesson

from .checks import framework_function
from .workspace import count_words

_LOOKUP_CALLS = {"getattr", "implementation", "import_module", "__import__", "attrgetter"}


@dataclass
class StaticReport:
    """A problem that stops grading (None if none), flags per exercise, and the reflection answers."""

    problem: str | None
    flags: dict[str, list[str]] = field(default_factory=dict)
    reflections: dict[int, str] = field(default_factory=dict)
    reflections_problem: str | None = None


def analyse(source: bytes, lesson: Lesson) -> StaticReport:
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as error:
        return StaticReport(f"the file is not UTF-8 text (byte {error.start} is {source[error.start]:#04x})")
    try:
        tree = ast.parse(text, filename=f"{lesson.name}.py")
    except SyntaxError as error:
        return StaticReport(f"SyntaxError on line {error.lineno}: {error.msg}")
    except (ValueError, RecursionError, MemoryError) as error:
        return StaticReport(f"the file cannot be parsed: {type(error).__name__}: {error}")
    flags = {name: [] for name in lesson.exercises}
    for name, reason in _delegations(tree, lesson.exercises):
        flags[name].append(reason)
    for name in lesson.exercises:
        if _is_copy(tree, lesson, name):
            flags[name].append(f"{name} is the framework's own definition, copied")
    reflections, problem = _reflections(tree)
    return StaticReport(None, {k: v for k, v in flags.items() if v}, reflections, problem)


def _delegations(tree: ast.AST, exercises: list[str]) -> list[tuple[str, str]]:
    """(exercise, reason) for each place the file reaches for the framework's function of an exercise."""
    found = []
    framework_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            framework_names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "tinytorch"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tinytorch":
            for alias in node.names:
                if alias.name in exercises:
                    found.append((alias.name, f"imports the framework's {alias.name} from {node.module} (line {node.lineno})"))
                elif alias.name == "*":
                    found += [(name, f"imports * from {node.module} (line {node.lineno})") for name in exercises]
                else:
                    framework_names.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in exercises and _root_name(node) in framework_names:
            found.append((node.attr, f"uses the framework's {ast.unparse(node)} (line {node.lineno})"))
        elif isinstance(node, ast.Call) and _call_name(node) in _LOOKUP_CALLS:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in exercises:
                    found.append((arg.value, f"looks up {arg.value!r} by name: {ast.unparse(node)[:80]} (line {node.lineno})"))
    return found


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _without_docstring(node: ast.FunctionDef) -> str:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def _is_copy(tree: ast.Module, lesson: Lesson, name: str) -> bool:
    mine = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if mine is None:
        return False
    try:
        source = inspect.getsource(framework_function(lesson, name))
        theirs = ast.parse(textwrap.dedent(source)).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return False
    return isinstance(theirs, ast.FunctionDef) and _without_docstring(mine) == _without_docstring(theirs)


def _reflections(tree: ast.Module) -> tuple[dict[int, str], str | None]:
    """The answers in ``REFLECTIONS = {1: "...", ...}``, read as a literal; a problem note when it is not one."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "REFLECTIONS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return {}, "REFLECTIONS is not a plain dictionary of numbers to strings"
            if not isinstance(value, dict):
                return {}, "REFLECTIONS is not a dictionary"
            answers = {k: v for k, v in value.items() if isinstance(k, int) and isinstance(v, str)}
            skipped = len(value) - len(answers)
            return answers, (f"{skipped} REFLECTIONS entries are not number: text" if skipped else None)
    return {}, None  # no answers written: nothing to report beyond the empty answers


def reflection_rows(report: StaticReport, lesson: Lesson) -> list[tuple[int, str, str, int]]:
    """One row per reflection question: (number, question, answer, words)."""
    return [
        (i, question, report.reflections.get(i, "").strip(), count_words(report.reflections.get(i, "")))
        for i, question in enumerate(lesson.reflection_questions(), 1)
    ]
