"""The checks of a lesson: inputs the grader chose, and the framework's outcome on each.

No check is written by hand for a lesson; they come from three places, for any lesson that
follows ``lessons/README.md``:

- **public**: the lesson's own doctests run in the grader's process against the framework, with a
  recording wrapper around each exercise function. Every call an example makes (up to
  :data:`MAX_PUBLIC` distinct calls per exercise) is kept: its arguments as plain data, encoded
  before the call, and the example's source line, which feedback shows to the student.
- **hidden, generated**: variants of public calls: ``resampled`` (each array redrawn with its
  shape and dtype, uniformly within its own range, so indices stay valid and non-negative arrays
  stay non-negative), ``scaled`` (float arrays times 1000: large logits, large gradients) and
  ``integers`` (sizes and shapes among the arguments redrawn between 1 and twice their value, so
  size-1 axes come up). They are drawn from the course's seed, so students cannot predict them, and kept only
  when the framework's outcome is of the same kind as the original's (returned, or raised the same
  family), finite where the original was, and the same when computed twice.
- **hidden, the instructor's**: doctest files ``<course>/hidden/NN_slug.rst`` with the lesson's
  namespace (``np``, ``tt``, the exercise names), recorded the same way: edge cases such as size-1
  axes or extreme values.

The expected outcome of each check is :func:`~tinytorch.grading.capture.capture` of the
framework's function, in this process. A lesson's checks are saved in the course folder
(:meth:`CheckSet.save`); the sandboxed child receives only their inputs.
"""

from __future__ import annotations

import dataclasses
import doctest
import functools
import hashlib
import importlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tinytorch.lesson import Lesson, run_lesson

from .capture import capture, inputs_document
from .compare import compare, exception_family
from .plaindata import Document, Unencodable, load_bundle, save_bundle

MAX_PUBLIC = 30
MAX_HIDDEN_GENERATED = 8
MAX_INSTRUCTOR = 40
MAX_INPUT_BYTES = 8 << 20
SCALE = 1000.0
#: how hidden variants of a public call are made (see the module's docstring)
VARIANTS = ("resampled", "scaled", "integers")
_DOCTEST_FILE = re.compile(r"^<doctest .*\[(\d+)\]>$")


class CheckError(RuntimeError):
    """A lesson (or an instructor's hidden-check file) cannot yield checks: it fails against the framework."""


@dataclass
class Check:
    """One call of one exercise: its inputs, and the framework's outcome on them."""

    id: str
    exercise: str
    visibility: str  # "public" or "hidden"
    origin: str  # "lesson", "resampled", "scaled" or "instructor"
    source: str  # the doctest source that made the call ("" for generated variants)
    seed: int
    inputs: Document
    expected: Document


@dataclass
class CheckSet:
    """Every check of one lesson, in a fixed order, and notes on calls that could not become checks."""

    lesson: str
    exercises: list[str]
    checks: list[Check]
    notes: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """Changes whenever any check's inputs, expected outcome or identity changes."""
        h = hashlib.sha256(self.lesson.encode())
        for c in self.checks:
            h.update(f"{c.id}|{c.exercise}|{c.visibility}|{c.seed}|".encode())
            h.update(c.inputs.digest(with_meta=False).encode())
            h.update(c.expected.digest().encode())
        return h.hexdigest()[:16]

    def of(self, exercise: str) -> list[Check]:
        return [c for c in self.checks if c.exercise == exercise]

    def inputs_documents(self) -> list[Document]:
        """What the sandboxed child receives: each check's inputs and identity, nothing expected."""
        docs = []
        for c in self.checks:
            meta = {"id": c.id, "exercise": c.exercise, "seed": c.seed}
            docs.append(Document(c.inputs.roots, c.inputs.objects, c.inputs.arrays, meta))
        return docs

    def save(self, folder: Path) -> Path:
        """``folder/NN_slug.npz`` (inputs and expected outcomes) and a readable ``NN_slug.json`` listing."""
        folder.mkdir(parents=True, exist_ok=True)
        documents = []
        for c in self.checks:
            meta = {"id": c.id, "exercise": c.exercise, "visibility": c.visibility, "origin": c.origin, "source": c.source, "seed": c.seed}
            documents.append(Document(c.inputs.roots, c.inputs.objects, c.inputs.arrays, meta))
            documents.append(c.expected)
        path = folder / f"{self.lesson}.npz"
        save_bundle(path, documents)
        listing = {
            "lesson": self.lesson,
            "digest": self.digest,
            "exercises": {name: {v: sum(1 for c in self.of(name) if c.visibility == v) for v in ("public", "hidden")} for name in self.exercises},
            "checks": [{"id": c.id, "exercise": c.exercise, "visibility": c.visibility, "origin": c.origin, "source": c.source} for c in self.checks],
            "notes": self.notes,
        }
        tmp = folder / f".{self.lesson}.json.tmp"
        tmp.write_text(json.dumps(listing, indent=1), encoding="utf-8")
        os.replace(tmp, folder / f"{self.lesson}.json")
        return path

    @classmethod
    def load(cls, folder: Path, lesson: Lesson) -> CheckSet:
        documents = load_bundle(folder / f"{lesson.name}.npz", max_bytes=2 << 30)
        checks = []
        for inputs, expected in zip(documents[0::2], documents[1::2]):
            m = inputs.meta
            checks.append(Check(m["id"], m["exercise"], m["visibility"], m["origin"], m["source"], m["seed"], inputs, expected))
        listing_path = folder / f"{lesson.name}.json"
        notes = json.loads(listing_path.read_text(encoding="utf-8")).get("notes", []) if listing_path.is_file() else []
        return cls(lesson.name, list(lesson.exercises), checks, notes)


@dataclass
class _Call:
    exercise: str
    inputs: Document
    source: str


def framework_function(lesson: Lesson, exercise: str) -> Callable:
    """The framework's own function for an exercise (the lesson's ``:module:``)."""
    return getattr(importlib.import_module(lesson.module), exercise)


class CallRecorder:
    """Records the arguments of every exercise call while a lesson's doctests run.

    ``run_lesson(lesson, wrap=recorder.wrap)``; then ``calls`` holds each call's arguments as
    plain data (encoded *before* the call, which may change them) and the doctest source that made
    it, and ``notes`` the calls that could not be recorded, and why.
    """

    def __init__(self, text: str):
        self.examples = doctest.DocTestParser().get_examples(text)
        self.calls: list[_Call] = []
        self.notes: list[str] = []

    def wrap(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def recording(*args, **kwargs):
            source = _calling_example(self.examples)
            try:
                doc = inputs_document(args, kwargs)
            except Unencodable as error:
                self.notes.append(f"{name}: a call from `{source}` has an argument with no plain form ({error})")
            else:
                if sum(a.nbytes for a in doc.arrays) > MAX_INPUT_BYTES:
                    self.notes.append(f"{name}: a call from `{source}` has inputs larger than {MAX_INPUT_BYTES >> 20} MiB")
                else:
                    self.calls.append(_Call(name, doc, source))
            return fn(*args, **kwargs)

        return recording

    def replayable(self, exercise: str) -> int:
        """How many recorded calls of ``exercise`` the grader can replay."""
        return sum(call.exercise == exercise for call in self.calls)


def record_calls(lesson: Lesson, text: str | None = None, origin: str = "lesson") -> tuple[list[_Call], list[str]]:
    """Run a lesson's doctests (or ``text`` in its namespace) against the framework and record every
    exercise call's arguments; returns the calls and notes on calls that could not be recorded."""
    target = lesson if text is None else dataclasses.replace(lesson, text=text)
    recorder = CallRecorder(target.text)
    result = run_lesson(target, wrap=recorder.wrap)
    failing = [name for name, exercise in result.exercises.items() if exercise.failed]
    if failing:
        where = f"the {origin} examples of {', '.join(failing)} in lesson {lesson.name}"
        raise CheckError(f"{where} fail against the framework itself:\n" + "\n".join(result.failures[:3]))
    if not result.ok:  # an example that calls no exercise (a timing, say) does not change what was recorded
        recorder.notes.append(f"{result.failed} example(s) of lesson {lesson.name} that call no exercise failed while recording")
    return recorder.calls, recorder.notes


def _calling_example(examples: list[doctest.Example]) -> str:
    """The source of the doctest example running now (found on the call stack)."""
    frame = sys._getframe(2)
    while frame is not None:
        match = _DOCTEST_FILE.match(frame.f_code.co_filename)
        if match and int(match.group(1)) < len(examples):
            return examples[int(match.group(1))].source.strip()
        frame = frame.f_back
    return ""


def _expected(fn: Callable, inputs: Document, seed: int) -> Document | None:
    """The framework's outcome, or None when computing it twice gives two different outcomes."""
    first = capture(fn, inputs, seed)
    second = capture(fn, inputs, seed)
    return first if compare(first, second).passed else None


def build_checks(lesson: Lesson, seed: int, hidden_text: str | None = None) -> CheckSet:
    """All checks of a lesson: public from its doctests, hidden variants drawn from ``seed``, and the
    instructor's hidden calls from ``hidden_text`` (a doctest file), with their expected outcomes."""
    calls, notes = record_calls(lesson)
    checks: list[Check] = []
    rng = np.random.default_rng(seed)
    for exercise in lesson.exercises:
        fn = framework_function(lesson, exercise)
        public = _unique([c for c in calls if c.exercise == exercise])[:MAX_PUBLIC]
        kept_public = []
        for call in public:
            check_seed = len(checks)
            expected = _expected(fn, call.inputs, check_seed)
            if expected is None:
                notes.append(f"{exercise}: `{call.source}` gives a different result each time; not a check")
                continue
            check = Check(f"public-{len(checks) + 1}", exercise, "public", "lesson", call.source, check_seed, call.inputs, expected)
            checks.append(check)
            kept_public.append(check)
        if not kept_public:
            notes.append(f"{exercise}: no call of it could be recorded; it cannot be graded automatically")
        checks.extend(_hidden_variants(kept_public, fn, rng, len(checks), seed))
    if hidden_text:
        instructor_calls, instructor_notes = record_calls(lesson, hidden_text, origin="instructor's hidden")
        notes.extend(instructor_notes)
        for exercise in lesson.exercises:
            fn = framework_function(lesson, exercise)
            for call in _unique([c for c in instructor_calls if c.exercise == exercise])[:MAX_INSTRUCTOR]:
                check_seed = seed + len(checks)
                expected = _expected(fn, call.inputs, check_seed)
                if expected is not None:
                    checks.append(Check(f"hidden-{len(checks) + 1}", exercise, "hidden", "instructor", call.source, check_seed, call.inputs, expected))
    return CheckSet(lesson.name, list(lesson.exercises), checks, notes)


def _unique(calls: list[_Call]) -> list[_Call]:
    seen, out = set(), []
    for call in calls:
        key = call.inputs.digest()
        if key not in seen:
            seen.add(key)
            out.append(call)
    return out


def _hidden_variants(public: list[Check], fn: Callable, rng: np.random.Generator, start: int, seed: int) -> list[Check]:
    """Up to :data:`MAX_HIDDEN_GENERATED` variants of the public checks whose outcome is of the same kind."""
    if not public:
        return []
    candidates = [(check, origin) for check in public for origin in VARIANTS]
    hidden: list[Check] = []
    for index in rng.permutation(len(candidates)):
        original, origin = candidates[int(index)]
        if len(hidden) >= MAX_HIDDEN_GENERATED:
            break
        inputs = _vary(original.inputs, rng, origin)
        if inputs is None:
            continue
        check_seed = seed + start + len(hidden)
        expected = _expected(fn, inputs, check_seed)
        if expected is None or not _same_kind(original.expected, expected):
            continue
        number = start + len(hidden) + 1
        hidden.append(Check(f"hidden-{number}", original.exercise, "hidden", origin, "", check_seed, inputs, expected))
    return hidden


def _vary(doc: Document, rng: np.random.Generator, origin: str) -> Document | None:
    """A copy of ``doc`` with new values (None when there is nothing to vary)."""
    if origin == "integers":
        return _vary_integers(doc, rng)
    arrays, changed = [], False
    for a in doc.arrays:
        new = _resample(a, rng) if origin == "resampled" else a * a.dtype.type(SCALE) if a.dtype.kind in "fc" else a
        changed |= new is not a
        arrays.append(new)
    return Document(doc.roots, doc.objects, arrays, dict(doc.meta)) if changed else None


def _vary_integers(doc: Document, rng: np.random.Generator) -> Document | None:
    """Each positive int among the arguments and the lists, tuples and dicts holding them (shapes,
    sizes, counts) redrawn from 1 to twice its value, so size-1 axes come up; ints inside tensors
    and objects are left alone. None when there is no such int."""
    roots, objects = json.loads(json.dumps(doc.roots)), json.loads(json.dumps(doc.objects))
    changed = False
    seen: set[int] = set()
    stack = list(roots.values())
    while stack:
        value = stack.pop()
        if value["k"] == "int" and int(value["v"]) >= 1:
            value["v"] = str(int(rng.integers(1, 2 * int(value["v"]), endpoint=True)))
            changed = True
        elif value["k"] == "ref" and value["v"] not in seen:
            seen.add(value["v"])
            entry = objects[value["v"]]
            if entry["k"] in ("list", "tuple"):
                stack.extend(entry["items"])
            elif entry["k"] == "dict":
                stack.extend(v for _, v in entry["items"])
    return Document(roots, objects, list(doc.arrays), dict(doc.meta)) if changed else None


def _resample(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New values of the same shape and dtype, uniform within the array's own range (its minimum and maximum)."""
    if a.size == 0 or a.dtype.kind not in "biufc":
        return a
    if a.dtype.kind == "b":
        return rng.random(a.shape) < 0.5
    if a.dtype.kind in "fc":
        finite = a[np.isfinite(a)]
        if finite.size == 0 or finite.min() == finite.max():
            return a
        low, high = finite.real.min(), finite.real.max()
        return rng.uniform(low, high, a.shape).astype(a.dtype)
    low, high = int(a.min()), int(a.max())
    return a if low == high else rng.integers(low, high, a.shape, endpoint=True).astype(a.dtype)


def _same_kind(original: Document, variant: Document) -> bool:
    """Did the variant behave like the original: both returned (finite where the original was), or
    both raised exceptions of one family?"""
    a, b = original.meta, variant.meta
    if a["status"] != b["status"]:
        return False
    if a["status"] == "raised":
        return exception_family(a["exception"]["mro"]) == exception_family(b["exception"]["mro"])
    if a.get("backward") != b.get("backward"):
        return False
    return _finite(variant) or not _finite(original)


def _finite(doc: Document) -> bool:
    return all(np.isfinite(x).all() for x in doc.arrays if x.dtype.kind in "fc")
