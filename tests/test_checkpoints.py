"""The capability checkpoints: each whose lesson exists passes on the framework's code and fails on a
stub workspace naming what is missing; the others are "lesson not available", never passed."""

from pathlib import Path

import pytest

from tinytorch import lesson as lesson_runner
from tinytorch.checkpoints import CHECKPOINTS, get, leading_lessons, runner
from tinytorch.checkpoints.status import NOT_RUN, STALE, standings
from tinytorch.workspace import progress

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the project root
REAL_DATA = {"05": "mnist", "07": "fashion-mnist", "10": "mnist"}  # the checkpoints that learn from real images
LEADING = leading_lessons()
AVAILABLE = [c for c in CHECKPOINTS if c.number in LEADING and c.module is not None]


def with_real_data(checkpoint, monkeypatch):
    needed = REAL_DATA.get(checkpoint.number)
    if needed is None:
        return
    if not (SHARED / needed).is_dir():
        pytest.skip(f"checkpoint {checkpoint.title} learns from {needed}, and the course machines' copy (../shared/data) is not here")
    monkeypatch.setenv("TINYTORCH_DATA", str(SHARED))


def test_the_sixteen_checkpoints_and_their_lessons():
    assert [c.number for c in CHECKPOINTS] == [f"{i:02d}" for i in range(16)]
    assert get("learning") is get("5") is get("05")
    numbers = [lesson.checkpoint for lesson in lesson_runner.find_lessons() if lesson.checkpoint != "--"]
    assert len(numbers) == len(set(numbers)), "two lessons lead to the same checkpoint"
    for lesson in lesson_runner.find_lessons():
        if lesson.checkpoint != "--":
            assert int(lesson.checkpoint) == int(lesson.number) - 1, f"lesson {lesson.name} leads to checkpoint {lesson.checkpoint}"
    # every checkpoint whose lesson has landed has its capability test
    assert [c.number for c in CHECKPOINTS if c.number in LEADING and c.module is None] == []


@pytest.mark.parametrize("checkpoint", AVAILABLE, ids=lambda c: c.title)
def test_checkpoint_passes_on_the_framework(checkpoint, monkeypatch):
    with_real_data(checkpoint, monkeypatch)
    result = runner.run(checkpoint.number)
    assert result.passed, f"{checkpoint.title}: {result.failure}"
    assert result.against == "framework" and result.functions == {} and result.lesson == LEADING[checkpoint.number].name
    assert len(result.measurements) >= 3 and all(m.ok for m in result.measurements)
    assert any(m.bound for m in result.measurements), "a capability test measures something against a bound"


@pytest.mark.parametrize("checkpoint", AVAILABLE, ids=lambda c: c.title)
def test_checkpoint_fails_on_a_stub_workspace_naming_what_is_missing(checkpoint, tmp_path):
    lesson = LEADING[checkpoint.number]
    for earlier in runner.lessons_up_to(lesson):
        if earlier.exercises:
            lesson_runner.write_stub(earlier, tmp_path / f"{earlier.name}.py")
    result = runner.run(checkpoint.number, tmp_path)
    assert result.status == runner.FAILED and not result.measurements
    assert f"lesson {lesson.name}" in result.failure
    for name in lesson.exercises:
        assert f"{name} is still a stub (raises NotImplementedError)" in result.failure
    assert set(result.files) == {f"{l.name}.py" for l in runner.lessons_up_to(lesson) if l.exercises}


def test_without_its_data_a_learning_checkpoint_fails_and_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "empty"))
    result = runner.run("05")
    assert result.status == runner.FAILED
    assert "real MNIST handwritten digits" in result.failure and "t10k-images-idx3-ubyte.gz" in result.failure
    assert "TINYTORCH_DATA=../shared/data" in result.failure and "tito data fetch mnist" in result.failure


def test_checkpoints_whose_lesson_is_missing_are_not_available(tmp_path):
    missing = [c for c in CHECKPOINTS if c.number not in LEADING]
    for checkpoint in missing:
        assert runner.run(checkpoint.number, tmp_path).status == runner.NO_LESSON
    rows = {row.checkpoint.number: row for row in standings(tmp_path)}
    assert {n for n, row in rows.items() if row.state == runner.NO_LESSON} == {c.number for c in missing}
    assert {n for n, row in rows.items() if row.state == NOT_RUN} == {c.number for c in AVAILABLE}
    assert not (tmp_path / progress.PROGRESS_FILE).exists()  # reading the status writes nothing


def test_a_lesson_that_lands_without_a_test_is_listed_as_such_never_passed(tmp_path, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "07_attention.rst").write_text(":lesson: 07\n:title: Attention\n:module: tinytorch/core/layers.py\n"
                                             ":exercises:\n:checkpoint: 06\n\nAttention\n=========\n")
    monkeypatch.setenv("TINYTORCH_LESSONS", str(folder))
    if get("06").module is not None:
        pytest.skip("checkpoint 06 has its capability test")
    assert runner.run("06").status == runner.NO_TEST
    assert {row.checkpoint.number: row.state for row in standings(tmp_path)}["06"] == runner.NO_TEST


def test_a_recorded_result_goes_stale_when_the_file_it_tested_changes(tmp_path):
    lesson = LEADING["01"]
    (tmp_path / f"{lesson.name}.py").write_text("from tinytorch.core.tensor import broadcast_shape as _b\n"
                                                "def broadcast_shape(a, b):\n    return _b(a, b)\n"
                                                "def contiguous_strides(shape, itemsize):\n"
                                                "    out, step = [], itemsize\n    for n in reversed(tuple(shape)):\n"
                                                "        out.append(step)\n        step *= n\n    return tuple(reversed(out))\n")
    result = runner.run("01", tmp_path)
    assert result.passed, result.failure
    assert set(result.functions) == {"tinytorch.core.tensor.broadcast_shape", "tinytorch.core.tensor.contiguous_strides"}
    progress.record(tmp_path, "checkpoints", "01", result.to_json())
    state = {row.checkpoint.number: row for row in standings(tmp_path)}["01"]
    assert state.state == runner.PASSED and "broadcast shapes predicted = 200" in state.headline()
    recorded = progress.load(tmp_path)["checkpoints"]["01"]
    assert recorded["date"] and recorded["framework_version"] and recorded["measurements"][0]["ok"] is True
    with open(tmp_path / f"{lesson.name}.py", "a") as workspace_file:
        workspace_file.write("# edited after the run\n")
    state = {row.checkpoint.number: row for row in standings(tmp_path)}["01"]
    assert state.state == STALE and state.stale_reasons == [f"{lesson.name}.py changed after the run"]
    (tmp_path / f"{LEADING['00'].name}.py").write_text("# a new file of an earlier lesson\n")
    reasons = {row.checkpoint.number: row for row in standings(tmp_path)}["01"].stale_reasons
    assert f"{LEADING['00'].name}.py was written after the run" in reasons


def test_a_failure_inside_a_students_function_names_it(tmp_path):
    lesson = LEADING["01"]
    (tmp_path / f"{lesson.name}.py").write_text("def broadcast_shape(a, b):\n    return tuple(a)[5]\n"
                                                "def contiguous_strides(shape, itemsize):\n    return ()\n")
    result = runner.run("01", tmp_path)
    assert result.status == runner.FAILED
    assert result.failure.startswith("IndexError") and f"(in your broadcast_shape, {lesson.name}.py line 2)" in result.failure


def test_a_corrupt_progress_record_is_an_error_naming_it(tmp_path):
    (tmp_path / progress.PROGRESS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="progress.json is not a readable progress record"):
        progress.load(tmp_path)
