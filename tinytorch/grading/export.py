"""The course's numbers: the CSV export for a learning-management system, and the class report.

``export_csv`` writes one row per student and lesson (a lesson not submitted scores 0):
``student, lesson, raw_score, late_penalty, score, max_score``. ``class_report`` gathers what
``tito grade report`` shows: per-exercise pass rates over the latest graded submissions, the
distribution of lesson scores, the late and missing submissions, and the flagged ones.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course
from .scores import all_scores

CSV_COLUMNS = ("student", "lesson", "raw_score", "late_penalty", "score", "max_score")
#: the score distribution's bins, in percent of the maximum (the last includes 100)
BINS = tuple(range(0, 101, 10))


def points(value: float) -> str:
    """Points as they are shown and exported: at most three decimals, no trailing zeros."""
    return f"{round(value, 3):g}"


def export_csv(course: Course, path: Path) -> int:
    """Write the CSV atomically; returns the number of rows."""
    path = Path(path)
    rows = [(s.student, s.lesson, *(points(v) for v in (s.raw, s.penalty, s.score, s.maximum))) for s in all_scores(course.gradebook)]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, path)
    return len(rows)


@dataclass
class ClassReport:
    pass_rates: list[tuple[str, str, int, int]] = field(default_factory=list)  # (lesson, exercise, passed, graded)
    distribution: dict[str, list[int]] = field(default_factory=dict)  # lesson -> counts per bin
    flagged: list[tuple[str, str, str, str]] = field(default_factory=list)  # (student, lesson, exercise, flags)
    missing: dict[str, int] = field(default_factory=dict)  # lesson -> students without a submission
    late: dict[str, int] = field(default_factory=dict)  # lesson -> latest submissions collected after the due date
    ungraded: dict[str, int] = field(default_factory=dict)  # lesson -> latest submissions not graded yet


def class_report(course: Course, lesson: str | None = None) -> ClassReport:
    gradebook = course.gradebook
    report = ClassReport()
    lessons = [course.lesson(lesson).name] if lesson else [row["lesson"] for row in gradebook.lessons()]
    scores = [s for s in all_scores(gradebook) if s.lesson in lessons]
    for name in lessons:
        counts = [0] * (len(BINS) - 1)
        for s in scores:
            if s.lesson == name and s.submitted and s.maximum > 0:
                percent = 100 * s.score / s.maximum
                counts[min(int(percent // 10), len(counts) - 1)] += 1
        report.distribution[name] = counts
        report.missing[name] = sum(1 for s in scores if s.lesson == name and not s.submitted)
        report.ungraded[name] = sum(1 for s in scores if s.lesson == name and s.submitted and not s.graded)
        report.late[name] = sum(1 for s in scores if s.lesson == name and s.submitted and s.late_seconds > 0)
        passed: dict[str, int] = {e["name"]: 0 for e in gradebook.exercises(name)}
        graded = 0
        for submission in gradebook.latest_submissions(name):
            grading = gradebook.grading(submission.id)
            if grading is None:
                continue
            graded += 1
            for result in gradebook.exercise_results(grading["id"]):
                passed[result["exercise"]] += result["status"] == "passed"
                flags = json.loads(result["flags"])
                if flags:
                    report.flagged.append((submission.student, name, result["exercise"], "; ".join(flags)))
        report.pass_rates += [(name, exercise, count, graded) for exercise, count in passed.items()]
    return report
