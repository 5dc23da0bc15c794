"""Every lesson passes through the runner, and every exercise fails for a stub and for a wrong answer."""

from pathlib import Path

import pytest

from tinytorch import lesson as runner
from tinytorch.grading.checks import CallRecorder

from .lesson_checks import install_lesson

LESSONS = runner.find_lessons()


def test_there_are_lessons():
    assert LESSONS, f"no lessons found in {runner.lessons_dir()}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: l.name)
def test_lesson_passes_against_the_framework(lesson):
    recorder = CallRecorder(lesson.text)  # what `tito grade` replays in its sandbox, recorded on the way
    result = runner.run_lesson(lesson, wrap=recorder.wrap)
    assert result.ok, runner.format_result(result)
    for name, exercise in result.exercises.items():
        assert exercise.examples > 0, f"lesson {lesson.name}: no example calls exercise {name}"
        assert recorder.replayable(name), f"lesson {lesson.name}: no call of {name} can be replayed by tito grade: {recorder.notes}"


@pytest.mark.parametrize("lesson", [l for l in LESSONS if l.exercises], ids=lambda l: l.name)
def test_every_exercise_fails_for_a_stub(lesson, tmp_path):
    workspace = runner.write_stub(lesson, tmp_path / f"{lesson.name}.py")
    result = runner.run_lesson(lesson, workspace)
    not_written = [n for n, e in result.exercises.items() if e.status != "not written"]
    assert not not_written, f"lesson {lesson.name}: a stub does not fail these exercises: {not_written}"
    assert len(result.lesson.reflection_questions()) >= 2, f"lesson {lesson.name} needs reflection questions"


@pytest.mark.parametrize("lesson", [l for l in LESSONS if l.exercises], ids=lambda l: l.name)
def test_every_exercise_fails_for_a_wrong_answer(lesson, tmp_path):
    # A function that returns None without doing anything must not pass: the examples check results.
    wrong = "".join(f"def {name}(*args, **kwargs):\n    return None\n\n" for name in lesson.exercises)
    (tmp_path / f"{lesson.name}.py").write_text(wrong)
    result = runner.run_lesson(lesson, tmp_path)
    passing = [n for n, e in result.exercises.items() if e.status == "passed"]
    assert not passing, f"lesson {lesson.name}: a do-nothing function passes these exercises: {passing}"


SYNTHETIC = """\
:lesson: 42
:title: A lesson about squares
:module: tinytorch/core/profiling.py
:exercises: square
:checkpoint: --

Squares
=======

>>> x = 3

Exercise: square
----------------

>>> square(x)
9

Reflection
----------

1. Why square?
   Think about it.
2. Why not cube?
"""


@pytest.fixture
def synthetic_lessons(tmp_path, monkeypatch):
    return install_lesson(tmp_path, monkeypatch, "42_squares.rst", SYNTHETIC, {"square": lambda v: v * v})


def test_head_and_reflection_are_parsed(synthetic_lessons):
    (lesson,) = runner.find_lessons()
    assert (lesson.number, lesson.slug, lesson.module) == ("42", "squares", "tinytorch.core.profiling")
    assert lesson.exercises == ["square"]
    assert lesson.reflection_questions() == ["Why square? Think about it.", "Why not cube?"]
    assert runner.load_lesson("42") is not None and runner.load_lesson("squares").name == "42_squares"


def test_workspace_outcomes(synthetic_lessons, tmp_path):
    lesson = runner.load_lesson("42")
    stub = runner.write_stub(lesson, tmp_path / "ws" / "42_squares.py")
    assert "raise NotImplementedError" in stub.read_text() and "1: \"\"\"" in stub.read_text()
    assert runner.run_lesson(lesson, stub).exercises["square"].status == "not written"
    stub.write_text("def square(v):\n    return v * v\n")
    assert runner.run_lesson(lesson, stub.parent).ok
    stub.write_text("def square(v):\n    return v + v\n")
    result = runner.run_lesson(lesson, stub)
    assert result.exercises["square"].status == "failed"
    assert "Expected:\n    9\nGot:\n    6" in runner.format_result(result)


def test_write_stub_refuses_to_overwrite(synthetic_lessons, tmp_path):
    lesson = runner.load_lesson("42")
    path = tmp_path / "42_squares.py"
    path.write_text("# my work\n")
    with pytest.raises(FileExistsError):
        runner.write_stub(lesson, path)
    assert path.read_text() == "# my work\n"


def test_main_exit_codes(synthetic_lessons, tmp_path, capsys):
    assert runner.main(["42"]) == 0
    assert runner.main(["--list"]) == 0
    assert "42_squares" in capsys.readouterr().out
    bad = tmp_path / "bad.py"
    bad.write_text("def square(v):\n    raise NotImplementedError\n")
    assert runner.main(["42", "--workspace", str(bad)]) == 1
    assert "write square in your workspace" in capsys.readouterr().out
    assert runner.main(["99"]) == 2
    assert "no lesson '99'" in capsys.readouterr().err


def test_a_packages_init_names_the_package(synthetic_lessons):
    text = SYNTHETIC.replace("tinytorch/core/profiling.py", "tinytorch/core/benchmarking/__init__.py")
    (synthetic_lessons / "42_squares.rst").write_text(text)
    assert runner.load_lesson("42").module == "tinytorch.core.benchmarking"


def test_missing_head_field_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "07_broken.rst").write_text(":lesson: 07\n:title: Broken\n\nText\n")
    monkeypatch.setenv("TINYTORCH_LESSONS", str(tmp_path))
    with pytest.raises(ValueError, match="07_broken.rst: the head field list lacks :module:, :exercises:, :checkpoint:"):
        runner.find_lessons()
