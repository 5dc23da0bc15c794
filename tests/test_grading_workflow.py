"""The instructor's workflow through ``tito grade``: setup, release, collect, autograde, review,
feedback, export, report, on a synthetic class (correct, partly correct, stub, hostile)."""

import csv
import json

import pytest

from tinytorch import lesson as runner
from tinytorch.cli import main
from tinytorch.grading import synthetic
from tinytorch.grading.course import open_course


def tito(capsys, *argv):
    """Run ``tito grade ...``; the output with runs of whitespace made one space (rich wraps lines)."""
    code = main(["grade", *argv])
    return code, " ".join(capsys.readouterr().out.split())


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    """setup, release, collect and autograde once; the tests read what they produced."""
    root = tmp_path_factory.mktemp("workflow")
    course, source = root / "course", root / "submissions"
    outputs = {}
    assert main(["grade", "setup", str(course), "--lessons=02", "--due=02=2026-01-01T12:00+00:00", "--late-penalty=10%/day", "--cpu=2", "--timeout=5"]) == 0
    assert main(["grade", "release", "02", f"--course={course}"]) == 0
    kinds = dict(synthetic.write_class(source, 4))  # student-001 correct, -002 partial, -003 stub, -004 hostile (infinite loop)
    assert main(["grade", "collect", str(source), f"--course={course}", "--at=2026-01-02T13:00+00:00"]) == 0
    assert main(["grade", "autograde", f"--course={course}", "--jobs=2"]) == 0
    outputs["kinds"] = kinds
    return root, course, source, outputs


def test_release_writes_the_lessons_stub(course_run):
    root, course, *_ = course_run
    released = (course / "release" / "02_tensor.py").read_text()
    assert released == runner.stub_source(runner.load_lesson("02"))


def test_autograde_grades_each_kind_as_it_deserves(course_run):
    root, course, source, outputs = course_run
    c = open_course(course)
    statuses = {}
    for submission in c.gradebook.latest_submissions():
        grading = c.gradebook.grading(submission.id)
        statuses[outputs["kinds"][submission.student]] = {r["exercise"]: r["status"] for r in c.gradebook.exercise_results(grading["id"])}
    assert statuses["correct"] == {"broadcast_shape": "passed", "contiguous_strides": "passed"}
    assert statuses["partial"] == {"broadcast_shape": "partial", "contiguous_strides": "passed"}
    assert statuses["stub"] == {"broadcast_shape": "not written", "contiguous_strides": "not written"}
    assert statuses["hostile"]["broadcast_shape"] in ("timed out", "killed") and statuses["hostile"]["contiguous_strides"] == "passed"
    c.close()


def test_rerunning_is_idempotent_and_force_regrades(course_run, capsys):
    root, course, source, outputs = course_run
    code, out = tito(capsys, "autograde", f"--course={course}")
    assert code == 0 and "graded 0 submission(s)" in out
    code, out = tito(capsys, "autograde", f"--course={course}", "--force", "--student=student-003", "--jobs=1")
    assert code == 0 and "graded 1 submission(s)" in out
    c = open_course(course)
    counts = c.gradebook.db.execute("SELECT COUNT(*) FROM gradings").fetchone()[0]
    assert counts == 4  # the regrade replaced the earlier grading of the same checks
    c.close()


def test_review_scores_reflections_and_overrides_flagged_exercises(course_run, capsys, tmp_path):
    root, course, source, outputs = course_run
    code, out = tito(capsys, "review", f"--course={course}")
    assert code == 0 and "reflection-1" in out and "reflection-3" in out
    code, out = tito(capsys, "review", f"--course={course}", "--student=student-001")
    assert "Strides say how many bytes" in out and "2 words" in out  # the answers themselves, and the short one flagged
    code, out = tito(capsys, "review", "set", "student-001", "02", "reflection-1", "1", "--comment=Clear and complete.", f"--course={course}")
    assert code == 0
    code, out = tito(capsys, "review", "set", "student-001", "02", "reflection-1", "3", f"--course={course}")
    assert code == 2 and "worth 0 to 1 points" in out
    sheet = tmp_path / "reviews.csv"
    sheet.write_text("student,lesson,item,points,comment\nstudent-001,02,reflection-2,0.5,Half there.\nstudent-001,02,general,,Good work overall.\n")
    code, out = tito(capsys, "review", "import", str(sheet), f"--course={course}")
    assert code == 0 and "applied 2 review(s)" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("student,lesson,item,points,comment\nstudent-001,02,reflection-3,0.5,ok\nstudent-001,02,reflection-9,1,no such question\n")
    code, out = tito(capsys, "review", "import", str(bad), f"--course={course}")
    assert code == 2 and "line 3" in out
    c = open_course(course)
    manual = c.gradebook.manual_scores(c.gradebook.latest("student-001", "02_tensor").id)
    assert "reflection 3" not in manual and manual["reflection 2"]["points"] == 0.5  # the bad file changed nothing
    c.close()


def test_export_applies_the_late_penalty(course_run, capsys, tmp_path):
    root, course, source, outputs = course_run
    main(["grade", "review", "set", "student-001", "02", "reflection-1", "1", f"--course={course}"])
    main(["grade", "review", "set", "student-001", "02", "reflection-2", "0.5", f"--course={course}"])
    capsys.readouterr()
    target = tmp_path / "grades.csv"
    code, out = tito(capsys, "export", f"--csv={target}", f"--course={course}")
    assert code == 0
    rows = {r["student"]: r for r in csv.DictReader(target.open())}
    assert list(rows["student-001"]) == ["student", "lesson", "raw_score", "late_penalty", "score", "max_score"]
    best = rows["student-001"]
    assert float(best["raw_score"]) == 3.5 and float(best["max_score"]) == 5.0  # 2 exercises + 1 + 0.5 reflection points
    assert float(best["late_penalty"]) == pytest.approx(0.7)  # 25 hours late: two started days, 20 %
    assert float(rows["student-003"]["raw_score"]) == 0.0


def test_feedback_shows_public_failures_and_only_names_hidden_ones(course_run, capsys):
    root, course, source, outputs = course_run
    code, out = tito(capsys, "feedback", f"--course={course}", "--format=md")
    assert code == 0 and "wrote 4 feedback file(s)" in out
    partial = next(s for s, kind in outputs["kinds"].items() if kind == "partial")
    text = (course / "feedback" / f"{partial}.md").read_text()
    assert "broadcast_shape((3, 1), (4,))" in text and "expected: (3, 4)" in text
    assert "hidden check(s) failed: hidden-" in text
    c = open_course(course)
    hidden = [ch for ch in c.checks(c.lesson("02")).checks if ch.visibility == "hidden"]
    c.close()
    assert hidden and not any(f"inputs: {ch.id}" in text for ch in hidden)
    code, out = tito(capsys, "feedback", f"--course={course}", "--student=student-004")
    html = (course / "feedback" / "student-004.html").read_text()
    assert html.startswith("<!doctype html>") and "<table>" in html
    assert "timed out" in html or "killed" in html


def test_report_shows_pass_rates_distribution_and_flags(course_run, capsys):
    root, course, source, outputs = course_run
    code, out = tito(capsys, "report", f"--course={course}")
    assert code == 0
    assert "broadcast_shape" in out and "1 / 4" in out and "contiguous_strides" in out and "3 / 4" in out
    assert "score distribution" in out and "late" in out


def test_a_changed_submission_is_collected_and_graded_again(course_run, capsys):
    root, course, source, outputs = course_run
    stub_student = next(s for s, kind in outputs["kinds"].items() if kind == "stub")
    (source / stub_student / "02_tensor.py").write_text(synthetic.source("02", "correct"))
    code, out = tito(capsys, "collect", str(source), f"--course={course}")
    assert "collected 1 new or changed submission(s)" in out and "3 unchanged" in out
    assert f"late: {stub_student} (02_tensor)" in out  # collected now, long after the due date
    code, out = tito(capsys, "autograde", f"--course={course}", "--jobs=1")
    assert "graded 1 submission(s)" in out
    c = open_course(course)
    grading = c.gradebook.grading(c.gradebook.latest(stub_student, "02_tensor").id)
    assert {r["status"] for r in c.gradebook.exercise_results(grading["id"])} == {"passed"}
    c.close()


def test_check_grades_workspace_folders_without_a_course(tmp_path, capsys):
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "02_tensor.py").write_text(synthetic.source("02", "partial"))
    broken = tmp_path / "bob"
    broken.mkdir()
    (broken / "02_tensor.py").write_text("def broadcast_shape(:\n")
    report = tmp_path / "check.json"
    code, out = tito(capsys, "check", str(folder), str(broken), f"--json={report}")
    assert code == 0
    alice, bob = json.loads(report.read_text())
    exercises = alice["lessons"][0]["exercises"]
    assert exercises["contiguous_strides"]["status"] == "passed" and exercises["broadcast_shape"]["status"] == "partial"
    assert "SyntaxError" in bob["lessons"][0]["problem"]
    code, out = tito(capsys, "check", str(tmp_path / "nobody"))
    assert code == 2 and "not a workspace folder" in out
