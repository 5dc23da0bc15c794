"""Collecting submissions: refused shapes of input, the collector's clock, and what a file tells statically."""

import os
import zipfile

import pytest

from tinytorch import lesson as runner
from tinytorch.grading import synthetic
from tinytorch.grading.collect import MAX_FILE_BYTES, collect
from tinytorch.grading.gradebook import GradebookError, SCHEMA_VERSION, open_gradebook
from tinytorch.grading.scores import parse_due, parse_late_rule
from tinytorch.grading.static import analyse

LESSON = runner.load_lesson("02")


@pytest.fixture
def gradebook(tmp_path):
    book = open_gradebook(tmp_path / "gradebook.sqlite", create=True)
    book.set_lesson(LESSON.name, LESSON.number, LESSON.title, None, 3, "digest", [("broadcast_shape", 1.0, 1, 0), ("contiguous_strides", 1.0, 1, 0)])
    yield book
    book.close()


def test_folders_and_zips_are_collected_at_the_collectors_time(gradebook, tmp_path):
    source = tmp_path / "in"
    (source / "alice" / "deep" / "work").mkdir(parents=True)
    (source / "alice" / "deep" / "work" / "02_tensor.py").write_text(synthetic.source("02", "correct"))
    os.utime(source / "alice" / "deep" / "work" / "02_tensor.py", (0, 0))  # a file dated 1970 says nothing
    with zipfile.ZipFile(source / "bob.zip", "w") as archive:
        archive.writestr("workspace/02_tensor.py", synthetic.source("02", "partial"))
        archive.writestr("notes.txt", "not a lesson")
    report = collect(gradebook, source, [LESSON], "2026-03-01T10:00:00+00:00")
    assert sorted(report.new) == [("alice", "02_tensor"), ("bob", "02_tensor")] and report.problems == []
    alice = gradebook.latest("alice", "02_tensor")
    assert alice.collected_at == "2026-03-01T10:00:00+00:00" and alice.content.decode() == synthetic.source("02", "correct")
    assert [r["words"] > 150 for r in gradebook.reflections(alice.id)] == [True, True, False]
    again = collect(gradebook, source, [LESSON], "2026-03-02T10:00:00+00:00")
    assert again.new == [] and len(again.unchanged) == 2
    assert gradebook.latest("alice", "02_tensor").collected_at == "2026-03-01T10:00:00+00:00"


def test_links_oversized_duplicated_and_badly_named_inputs_are_refused(gradebook, tmp_path):
    source = tmp_path / "in"
    outside = tmp_path / "secret.py"
    outside.write_text("SECRET = 1\n")
    (source / "linker").mkdir(parents=True)
    (source / "linker" / "02_tensor.py").symlink_to(outside)
    (source / "big").mkdir()
    (source / "big" / "02_tensor.py").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    (source / "twice" / "a").mkdir(parents=True)
    (source / "twice" / "b").mkdir()
    (source / "twice" / "a" / "02_tensor.py").write_text("x = 1\n")
    (source / "twice" / "b" / "02_tensor.py").write_text("x = 2\n")
    (source / "bad name!").mkdir()
    (source / "linked-student").symlink_to(source / "big")
    (source / "notes.txt").write_text("hello")
    report = collect(gradebook, source, [LESSON], "2026-03-01T10:00:00+00:00")
    problems = dict(report.problems)
    assert "link" in problems["linker/02_tensor.py"]
    assert "limit" in problems["big/02_tensor.py"]
    assert "two files" in problems["twice/02_tensor.py"]
    assert "not a student name" in problems["bad name!"]
    assert "link" in problems["linked-student"]
    assert "neither" in problems["notes.txt"]
    assert report.new == [] and len(gradebook.collect_problems()) == len(report.problems)


@pytest.mark.parametrize(
    "entries, why",
    [
        ({"../02_tensor.py": "x"}, "points outside"),
        ({"/etc/02_tensor.py": "x"}, "points outside"),
        ({"a/../../02_tensor.py": "x"}, "points outside"),
        ({"C:/02_tensor.py": "x"}, "points outside"),
    ],
)
def test_archives_that_escape_are_refused_whole(gradebook, tmp_path, entries, why):
    source = tmp_path / "in"
    source.mkdir()
    with zipfile.ZipFile(source / "eve.zip", "w") as archive:
        archive.writestr("02_tensor.py", synthetic.source("02", "correct"))
        for name, text in entries.items():
            archive.writestr(zipfile.ZipInfo(name), text)
    report = collect(gradebook, source, [LESSON], "2026-03-01T10:00:00+00:00")
    assert why in dict(report.problems)["eve.zip"] and gradebook.latest("eve", "02_tensor") is None


def test_archive_links_bombs_and_garbage_are_refused(gradebook, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    with zipfile.ZipFile(source / "linky.zip", "w") as archive:
        info = zipfile.ZipInfo("02_tensor.py")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    with zipfile.ZipFile(source / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("02_tensor.py", b"#" * (8 * MAX_FILE_BYTES))
    (source / "junk.zip").write_bytes(b"PK not really")
    problems = dict(collect(gradebook, source, [LESSON], "2026-03-01T10:00:00+00:00").problems)
    assert "is a link" in problems["linky.zip"]
    assert "limit" in problems["bomb.zip/02_tensor.py"]
    assert "not a readable zip" in problems["junk.zip"]


def test_static_analysis_flags_delegation_and_copies_without_running_anything():
    import inspect

    from tinytorch.core import tensor

    report = analyse(b"import tinytorch as tt\ndef contiguous_strides(s, i):\n    return tt.core.tensor.contiguous_strides(s, i)\n"
                     b"def broadcast_shape(a, b):\n    return getattr(tt, 'broadcast_shape')(a, b)\n", LESSON)
    assert report.problem is None
    assert "uses the framework's tt.core.tensor.contiguous_strides (line 3)" in report.flags["contiguous_strides"]
    assert "looks up 'broadcast_shape' by name" in report.flags["broadcast_shape"][0]
    copied = analyse(inspect.getsource(tensor.broadcast_shape).encode(), LESSON)
    assert copied.flags == {"broadcast_shape": ["broadcast_shape is the framework's own definition, copied"]}
    assert analyse(synthetic.source("02", "correct").encode(), LESSON).flags == {}
    assert "SyntaxError on line 2" in analyse(b"x = 1\ndef (:\n", LESSON).problem
    assert "not UTF-8" in analyse(b"\xff\xfe", LESSON).problem
    computed = analyse(b"REFLECTIONS = {1: 'a ' * 200}\n", LESSON)
    assert computed.reflections == {} and "not a plain dictionary" in computed.reflections_problem


def test_late_rules_and_due_dates():
    assert parse_late_rule("none").fraction(10**6) == 0
    assert parse_late_rule("zero").fraction(1) == 1 and parse_late_rule("zero").fraction(0) == 0
    assert parse_late_rule("25%").fraction(3 * 86400) == 0.25
    assert parse_late_rule("10%/day").fraction(1) == 0.1 and parse_late_rule("10%/day").fraction(86401) == 0.2
    assert parse_late_rule("40%/day").fraction(10 * 86400) == 1.0
    for bad in ("10", "150%", "ten percent", "-5%"):
        with pytest.raises(ValueError, match="late penalty"):
            parse_late_rule(bad)
    assert parse_due("2026-12-01T12:00+02:00").isoformat() == "2026-12-01T10:00:00+00:00"
    assert parse_due("2026-12-01").astimezone().strftime("%H:%M:%S") == "23:59:59"  # the end of that day, local time
    with pytest.raises(ValueError, match="ISO date"):
        parse_due("next friday")


def test_the_gradebook_schema_is_versioned(tmp_path):
    path = tmp_path / "gradebook.sqlite"
    with pytest.raises(GradebookError, match="tito grade setup"):
        open_gradebook(path)
    book = open_gradebook(path, create=True)
    assert book.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    book.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    book.close()
    with pytest.raises(GradebookError, match="upgrade TinyTorch"):
        open_gradebook(path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all, not at all" * 100)
    with pytest.raises(GradebookError, match="not a gradebook"):
        open_gradebook(tmp_path / "junk.sqlite")


def test_a_grading_is_written_whole_or_not_at_all(gradebook):
    submission = gradebook.add_submission("alice", LESSON.name, "sha", b"x = 1\n", "2026-03-01T10:00:00+00:00", "test", [])
    exercise = {"exercise": "broadcast_shape", "status": "passed", "passed": 1, "total": 1, "score": 1.0, "message": "", "flags": [], "output": ""}
    with pytest.raises(Exception):
        gradebook.record_grading(submission, "digest", 0.1, {}, None, [exercise, exercise], [])  # the same exercise twice
    assert gradebook.grading(submission, "digest") is None
    assert gradebook.db.execute("SELECT COUNT(*) FROM exercise_results").fetchone()[0] == 0
    gradebook.record_grading(submission, "digest", 0.1, {}, None, [exercise], [])
    gradebook.record_grading(submission, "digest", 0.2, {}, None, [exercise], [])  # a forced regrade replaces it
    assert gradebook.db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0] == 1
    assert gradebook.grading(submission, "digest")["seconds"] == 0.2
