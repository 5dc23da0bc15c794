"""Checks come from any lesson's doctests, with hidden variants, and judge what a lesson would judge."""

import types

import numpy as np
import pytest

import tinytorch as tt  # noqa: F401  (the lesson text's namespace)
from tinytorch import lesson as runner
from tinytorch.grading.capture import capture
from tinytorch.grading.checks import CheckError, build_checks
from tinytorch.grading.compare import compare
from tinytorch.grading.plaindata import save_bundle
from tinytorch.grading.sandbox import Job, Limits, run_job
from tinytorch.grading.autograde import judge
from tinytorch.grading.static import analyse

from .lesson_checks import install_lesson

KINDS_LESSON = """\
:lesson: 42
:title: Every kind of result
:module: tinytorch/core/profiling.py
:exercises: scale_grad_, affine, make_net, doubled
:checkpoint: --

Every kind
==========

>>> p = tt.Parameter(np.arange(3.0), dtype=tt.float64)
>>> p.grad = tt.tensor([1.0, -2.0, 0.5], dtype=tt.float64)
>>> scale_grad_(p, 3.0)
>>> p.grad.tolist()
[3.0, -6.0, 1.5]
>>> x = tt.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
>>> w = tt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)
>>> affine(x, w).shape
(2, 4)
>>> [type(m).__name__ for m in make_net(4)]
['Dense', 'ReLU', 'Dense', 'ReLU']
>>> doubled(21)
42
>>> doubled(-1)
Traceback (most recent call last):
    ...
ValueError: ...

Reflection
----------

1. Why?
2. Why not?
"""


def scale_grad_(p, k):
    p.grad.data *= k


def affine(x, w):
    return x @ w + 1.0


def make_net(n):
    return tt.Sequential(tt.Dense(2, n), tt.ReLU(), tt.Dense(n, n), tt.ReLU())


def doubled(n):
    if n < 0:
        raise ValueError(f"doubled: {n} is negative")
    return 2 * n


FRAMEWORK = {"scale_grad_": scale_grad_, "affine": affine, "make_net": make_net, "doubled": doubled}
STUDENT = '''
import numpy as np
import tinytorch as tt


def scale_grad_(p, k):
    p.grad.data[...] = p.grad.data * k


def affine(x, w):
    return tt.matmul(x, w) + 1.0


def make_net(n):
    layers = [tt.Dense(2, n), tt.ReLU(), tt.Dense(n, n), tt.ReLU()]
    return tt.Sequential(*layers)


def doubled(n):
    if n < 0:
        raise ValueError("negative")
    return n + n
'''
#: one plausible mistake per exercise, and what the grader must say about it
MISTAKES = {
    "scale_grad_": ("def scale_grad_(p, k):\n    p.data *= k\n", "after the call"),
    "affine": ("def affine(x, w):\n    return x @ w.detach() + 1.0\n", "after back-propagating"),
    "make_net": ("def make_net(n):\n    act = tt.ReLU()\n    return tt.Sequential(tt.Dense(2, n), act, tt.Dense(n, n), act)\n", "different"),
    "doubled": ("def doubled(n):\n    if n < 0:\n        raise TypeError('negative')\n    return 2 * n\n", "expected a ValueError"),
}


@pytest.fixture
def kinds_lesson(tmp_path, monkeypatch):
    install_lesson(tmp_path, monkeypatch, "42_kinds.rst", KINDS_LESSON, FRAMEWORK)
    return runner.load_lesson("42")


def grade(source: str, checks) -> dict[str, list]:
    module = types.ModuleType("student")
    exec("import numpy as np\nimport tinytorch as tt\n" + source, module.__dict__)
    out = {}
    for check in checks.checks:
        out.setdefault(check.exercise, []).append(compare(check.expected, capture(getattr(module, check.exercise), check.inputs, check.seed)))
    return out


def test_every_kind_of_result_is_judged_like_the_lesson(kinds_lesson):
    checks = build_checks(kinds_lesson, seed=7)
    assert {c.exercise for c in checks.checks if c.visibility == "public"} == set(FRAMEWORK)
    assert any(c.visibility == "hidden" for c in checks.checks)
    for exercise, verdicts in grade(STUDENT, checks).items():
        assert all(v.passed for v in verdicts), (exercise, [v.message for v in verdicts if not v.passed])
    for exercise, (mistake, message) in MISTAKES.items():
        wrong = grade(STUDENT + "\n" + mistake, checks)
        failing = [v.message for v in wrong[exercise] if not v.passed]
        assert failing and any(message in m for m in failing), (exercise, failing)
        assert all(v.passed for name, vs in wrong.items() if name != exercise for v in vs)


def test_the_same_checks_decide_in_the_sandbox(kinds_lesson, tmp_path):
    checks = build_checks(kinds_lesson, seed=7)
    save_bundle(tmp_path / "inputs.npz", checks.inputs_documents())
    source = STUDENT + "\n" + MISTAKES["affine"][0]
    job = Job("kinds", kinds_lesson.module, kinds_lesson.exercises, "42_kinds.py", source.encode(), (tmp_path / "inputs.npz").read_bytes(), Limits(wall_seconds=20))
    result = run_job(job)
    grading = judge(kinds_lesson, checks, analyse(source.encode(), kinds_lesson), result, {"exercise_points": 1.0, "partial_credit": True})
    statuses = {e["exercise"]: e["status"] for e in grading.exercises}
    assert statuses == {"scale_grad_": "passed", "affine": "failed", "make_net": "passed", "doubled": "passed"}, grading.exercises


@pytest.mark.parametrize("number", ["02", "03", "05"])
def test_real_lessons_pass_for_the_framework_and_fail_for_stubs_and_wrong_answers(number):
    lesson = runner.load_lesson(number)
    checks = build_checks(lesson, seed=11)
    for exercise in lesson.exercises:
        assert any(c.visibility == "public" for c in checks.of(exercise)), exercise
    stub = grade(runner.stub_source(lesson), checks)
    assert all(v.not_written for verdicts in stub.values() for v in verdicts)
    nothing = grade("".join(f"def {name}(*args, **kwargs):\n    return None\n" for name in lesson.exercises), checks)
    assert not any(v.passed for verdicts in nothing.values() for v in verdicts)


def test_hidden_checks_are_drawn_from_the_course_seed():
    lesson = runner.load_lesson("02")
    one, again, other = build_checks(lesson, seed=1), build_checks(lesson, seed=1), build_checks(lesson, seed=2)
    assert one.digest == again.digest and one.digest != other.digest
    assert {c.origin for c in one.checks if c.visibility == "hidden"} == {"integers"}  # lesson 02 takes shapes only
    one = build_checks(runner.load_lesson("03"), seed=1)
    origins = {c.origin for c in one.checks if c.visibility == "hidden"}
    assert origins <= {"resampled", "scaled", "integers"} and "scaled" in origins
    scaled = next(c for c in one.checks if c.origin == "scaled")
    original = next(c for c in one.checks if c.visibility == "public" and c.exercise == scaled.exercise and c.inputs.objects == scaled.inputs.objects)
    assert any(np.allclose(a, b * 1000) for a, b in zip(scaled.inputs.arrays, original.inputs.arrays) if a.dtype.kind == "f" and a.size and np.any(b))


def test_the_instructors_hidden_doctests_become_hidden_checks():
    lesson = runner.load_lesson("02")
    edge = ">>> broadcast_shape((1,), (1, 1, 1))\n(1, 1, 1)\n>>> contiguous_strides((1, 1), 8)\n(8, 8)\n"
    checks = build_checks(lesson, seed=3, hidden_text=edge)
    mine = [c for c in checks.checks if c.origin == "instructor"]
    assert [c.exercise for c in mine] == ["broadcast_shape", "contiguous_strides"] and all(c.visibility == "hidden" for c in mine)
    with pytest.raises(CheckError, match="fail against the framework"):
        build_checks(lesson, seed=3, hidden_text=">>> broadcast_shape((2,), (3,))\n(3,)\n")
