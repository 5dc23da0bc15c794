"""The course map, measured: which lesson's code imports which, read from the framework's own source.

Every module of the package is placed in the course:

- the **bottom layer** that ``DESIGN.md`` §1 names (``core/tensor.py``, ``core/autograd.py``,
  ``core/kernels.py`` with ``_kernels/``, ``core/profiling.py``, ``core/module.py``, ``core/ops/``)
  and the helpers only it needs: importable by every lesson, whatever lesson teaches it;
- a **lesson**'s module: the file its ``:module:`` field names, the rest of that file's package
  when it has one of its own (``core/data/`` belongs with ``core/dataloader.py``), and the files
  :data:`TAUGHT_WITH` places beside a lesson's module;
- the **course tools** on top (the package's namespace, the lesson runner, workspaces, checkpoints,
  grading, the command line): they may import anything;
- any other module is a **helper** of the earliest lesson whose code imports it.

An import is read wherever it is written (also inside a function: it runs when that function
does), except under ``if TYPE_CHECKING:``, which never runs. An import *against the course* is
one from a module into a lesson that comes later, or from the bottom layer into anything above
it: ``violations()`` lists them, and the test suite fails on any, so the map cannot lie. (Reading
a name from the package itself, ``from tinytorch import __version__``, is not one: Python runs the
package's ``__init__`` before any of its modules.)

>>> course = CourseMap.measure()
>>> course.violations()
[]
>>> course.place("tinytorch.core.layers"), course.place("tinytorch.core.tensor")
('04', 'bottom')
>>> sorted(course.lesson_imports()["05"])        # networks (05) are built of activations (03) and layers (04)
['02', '03', '04']
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "tinytorch"
ROOT = Path(__file__).resolve().parent

#: DESIGN.md §1, "at the bottom, whatever their lesson number"
BOTTOM_LAYER = (
    "tinytorch.core.tensor",
    "tinytorch.core.autograd",
    "tinytorch.core.kernels",
    "tinytorch._kernels",
    "tinytorch.core.profiling",
    "tinytorch.core.module",
    "tinytorch.core.ops",
    "tinytorch.core.exercises",  # the exercise registry: kernels.py's counterpart for exercises, imports nothing
)
#: DESIGN.md §1, "... checkpoints, grading, lesson.py and the CLI on top", with the package's own
#: namespace (which re-exports every lesson) and the tools that run the course
COURSE_TOOLS = (
    "tinytorch",
    "tinytorch.functional",
    "tinytorch.lesson",
    "tinytorch.grading",
    "tinytorch.checkpoints",
    "tinytorch.workspace",
    "tinytorch.coursemap",
    "tinytorch.book",
    "tinytorch.doctor",
    "tinytorch.cli",
)
#: files (and packages) that are no lesson's ``:module:`` but that DESIGN.md §1 teaches with one
TAUGHT_WITH = {
    "tinytorch.core.data": "08",
    "tinytorch.core.losses": "11",
    "tinytorch.core.metrics": "11",
    "tinytorch.core.callbacks": "11",
    "tinytorch.core.checkpoint": "11",
    "tinytorch.core.regularization": "11",
    "tinytorch.core.schedulers": "10",
}

BOTTOM, TOOLS = "bottom", "tools"


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _import_statements(statements: list[ast.stmt]):
    """The import statements among ``statements`` and the blocks nested in them (function bodies,
    branches, ``try``), except those under ``if TYPE_CHECKING:``. Imports are statements, so the
    expressions in between need not be visited."""
    for statement in statements:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            yield statement
            continue
        if isinstance(statement, ast.If) and getattr(statement.test, "id", getattr(statement.test, "attr", None)) == "TYPE_CHECKING":
            yield from _import_statements(statement.orelse)
            continue
        for block in ("body", "orelse", "finalbody"):
            yield from _import_statements(getattr(statement, block, None) or [])
        for handler in getattr(statement, "handlers", None) or []:
            yield from _import_statements(handler.body)
        for case in getattr(statement, "cases", None) or []:
            yield from _import_statements(case.body)


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` (at ``path``) imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_statements(tree.body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@dataclass
class CourseMap:
    """The package's modules, where each sits in the course, and who imports whom."""

    imports: dict[str, set[str]]  # module -> the package's modules it imports
    lesson_modules: dict[str, str]  # a lesson's :module: -> its number
    titles: dict[str, str]  # lesson number -> title
    checkpoints: dict[str, str]  # lesson number -> the checkpoint it leads to ("--" for none)
    places: dict[str, str] = field(default_factory=dict)  # module -> lesson number, BOTTOM or TOOLS

    @classmethod
    def measure(cls, root: Path = ROOT, lessons: list | None = None) -> "CourseMap":
        """Read every module's imports and every lesson's head (``lessons`` defaults to the course's)."""
        from tinytorch.lesson import find_lessons

        lessons = find_lessons() if lessons is None else lessons
        files = module_files(root)
        known = set(files)
        course = cls(
            {name: imports_of(name, path, known) for name, path in files.items()},
            {lesson.module: lesson.number for lesson in lessons},
            {lesson.number: lesson.title for lesson in lessons},
            {lesson.number: lesson.checkpoint for lesson in lessons},
        )
        course.places = course._place_all()
        return course

    def _place_all(self) -> dict[str, str]:
        places: dict[str, str] = {}
        taught_with = tuple(TAUGHT_WITH)
        for module in self.imports:
            if _within(module, BOTTOM_LAYER):
                places[module] = BOTTOM
            elif _within(module, COURSE_TOOLS[1:]) or module == PACKAGE:
                places[module] = TOOLS
            elif module in self.lesson_modules:
                places[module] = self.lesson_modules[module]
            elif _within(module, taught_with):
                places[module] = next(TAUGHT_WITH[p] for p in taught_with if _within(module, (p,)))
        for module in self.imports:  # the rest of a lesson's own package (core/benchmarking/ with its :module:)
            package = module.rpartition(".")[0]
            if module not in places and package not in (PACKAGE, f"{PACKAGE}.core"):
                owner = next((m for m in self.lesson_modules if package in (m, m.rpartition(".")[0])), None)
                if owner is not None:
                    places[module] = self.lesson_modules[owner]
        # What the bottom layer imports is bottom layer too (whatever else imports it) ...
        frontier = [m for m, place in places.items() if place == BOTTOM]
        while frontier:
            for target in self.imports.get(frontier.pop(), ()):
                if target not in places:
                    places[target] = BOTTOM
                    frontier.append(target)
        # ... and any other module is a helper of the earliest lesson whose code imports it, placed
        # once every module that imports it is.
        changed = True
        while changed:
            changed = False
            for module in self.imports.keys() - places.keys():
                users = [m for m, targets in self.imports.items() if module in targets]
                if all(u in places for u in users):
                    lessons = [places[u] for u in users if places[u] not in (BOTTOM, TOOLS)]
                    places[module], changed = (min(lessons) if lessons else TOOLS), True
        for module in self.imports.keys() - places.keys():  # helpers that import each other in a cycle
            lessons = [places[u] for u, targets in self.imports.items() if module in targets and places.get(u, TOOLS) not in (BOTTOM, TOOLS)]
            places[module] = min(lessons) if lessons else TOOLS
        return places

    def place(self, module: str) -> str:
        """Where ``module`` sits: a lesson number, ``"bottom"`` or ``"tools"``."""
        return self.places[module]

    def violations(self) -> list[str]:
        """Every import that runs against the course's order, as readable sentences."""
        found = []
        for module, targets in sorted(self.imports.items()):
            here = self.places[module]
            if here == TOOLS:
                continue
            for target in sorted(targets):
                there = self.places[target]
                if there == BOTTOM or target == PACKAGE:  # Python runs the package's __init__ before any module of it
                    continue
                if here == BOTTOM:
                    found.append(f"{module} (bottom layer) imports {target} (lesson {there}, above it)")
                elif there == TOOLS or there > here:
                    found.append(f"{module} (lesson {here}) imports {target} ({'the course tools' if there == TOOLS else 'lesson ' + there}), which comes later")
        return found

    def lesson_imports(self) -> dict[str, set[str]]:
        """Lesson number -> the other lessons whose code its code imports (bottom-layer lessons included)."""
        by_lesson: dict[str, set[str]] = {number: set() for number in self.titles}
        owner = {module: number for module, number in self.lesson_modules.items()}
        for module, targets in self.imports.items():
            here = self.places[module]
            if here in (BOTTOM, TOOLS):
                here = owner.get(module, here)
            if here not in by_lesson:
                continue
            for target in targets:
                there = owner.get(target, self.places[target])
                if there in by_lesson and there != here:
                    by_lesson[here].add(there)
        return by_lesson

    def modules_of(self, number: str) -> list[str]:
        """The modules placed in lesson ``number`` (its :module: first)."""
        mine = [m for m, place in self.places.items() if place == number]
        return sorted(mine, key=lambda m: (m not in self.lesson_modules, m))


def draw(path: str | Path, course: CourseMap | None = None, checkpoint_names: dict[str, str] | None = None) -> Path:
    """Draw the course map as a PNG at ``path`` (written atomically) and return the path.

    Lessons stand in course order; an arc joins a lesson to each earlier lesson its code imports
    (dashed when the imported code is the bottom layer, which a lesson may use whatever its number);
    under each lesson, the checkpoint it unlocks. Needs matplotlib: ``pip install "tinytorch[plot]"``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Arc, FancyBboxPatch
    except ImportError as error:
        raise ImportError('coursemap.draw needs matplotlib: pip install "tinytorch[plot]"') from error
    course = course or CourseMap.measure()
    if checkpoint_names is None:
        from tinytorch.checkpoints import CHECKPOINTS

        checkpoint_names = {c.number: c.name for c in CHECKPOINTS}
    numbers = sorted(course.titles)
    x = {number: float(i) for i, number in enumerate(numbers)}
    bottom_lessons = {n for m, n in course.lesson_modules.items() if course.places.get(m) == BOTTOM}
    figure = Figure(figsize=(max(8.0, 1.15 * len(numbers)), 5.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.01, 0.02, 0.98, 0.9))
    uses = course.lesson_imports()
    tallest = 0.5
    for number, targets in uses.items():
        for target in targets:
            span = abs(x[number] - x[target])
            tallest = max(tallest, span / 2)
            dashed = target in bottom_lessons
            axes.add_patch(Arc(((x[number] + x[target]) / 2, 0.45), span, span, theta1=0, theta2=180,
                               linestyle="--" if dashed else "-", linewidth=1.0 if dashed else 1.6,
                               color="#9a9a9a" if dashed else "#3b6ea8", alpha=0.9))
    for number in numbers:
        bottom = number in bottom_lessons
        axes.add_patch(FancyBboxPatch((x[number] - 0.42, -0.45), 0.84, 0.9, boxstyle="round,pad=0.02",
                                      facecolor="#e8e8e8" if bottom else "#dce8f5", edgecolor="#555555"))
        short = course.titles[number].split(":")[0]
        axes.text(x[number], 0.12, number, ha="center", va="center", fontsize=12, weight="bold")
        axes.text(x[number], -0.18, "\n".join(short.split(" ", 1)) if len(short) > 12 else short,
                  ha="center", va="center", fontsize=7.5)
        checkpoint = course.checkpoints[number]
        if checkpoint.isdigit():
            axes.text(x[number], -0.75, f"→ {checkpoint}\n{checkpoint_names.get(checkpoint, '')}", ha="center", va="top",
                      fontsize=7, color="#2e7d32")
    axes.text(-0.5, -1.45, "grey: bottom-layer lessons (importable by every lesson); arcs: a lesson's code imports "
              "an earlier lesson's (dashed: the bottom layer); green: the checkpoint each lesson unlocks",
              fontsize=7, color="#555555", va="bottom")
    axes.set_xlim(-0.6, len(numbers) - 0.4)
    axes.set_ylim(-1.5, 0.55 + tallest)
    axes.set_aspect("equal")
    axes.axis("off")
    figure.suptitle("TinyTorch: the course map, measured from the framework's imports", fontsize=11)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    figure.savefig(tmp, format="png")
    tmp.replace(target)
    return target
