"""Scores: due dates, late penalties, and each student's total per lesson.

A lesson's score is the points of its latest submission: each exercise's automatic score (its
points times the fraction of checks passed, or all or nothing when the course says so), replaced
by the instructor's points where they set some, plus the instructor's points for each reflection
answer. A late penalty is taken from that raw score by the course's rule (:func:`parse_late_rule`),
counting lateness from the lesson's due date to the time the collector recorded.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass

from .gradebook import Gradebook

LATE_RULES = "none, zero, P%% (once late), or P%%/day (per day or part of a day, at most 100%%)"


@dataclass(frozen=True)
class LateRule:
    """How late work loses points: ``kind`` is none, zero, flat or per_day; ``percent`` for the last two."""

    kind: str
    percent: float = 0.0

    def fraction(self, late_seconds: float) -> float:
        """The fraction of the raw score taken away for work ``late_seconds`` late (0 when on time)."""
        if late_seconds <= 0 or self.kind == "none":
            return 0.0
        if self.kind == "zero":
            return 1.0
        if self.kind == "flat":
            return min(1.0, self.percent / 100)
        return min(1.0, self.percent / 100 * math.ceil(late_seconds / 86400))

    def __str__(self) -> str:
        return {"none": "none", "zero": "zero", "flat": f"{self.percent:g}%", "per_day": f"{self.percent:g}%/day"}[self.kind]


def parse_late_rule(text: str) -> LateRule:
    """``none``, ``zero``, ``10%`` or ``10%/day``; a clear error for anything else."""
    text = text.strip().lower()
    if text in ("none", "zero"):
        return LateRule(text)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%\s*(/\s*day)?", text)
    if not match or not 0 <= float(match.group(1)) <= 100:
        raise ValueError(f"late penalty {text!r}: expected {LATE_RULES.replace('%%', '%')}")
    return LateRule("per_day" if match.group(2) else "flat", float(match.group(1)))


def parse_due(text: str) -> datetime.datetime:
    """An ISO date or date and time; without a time, the end of that day; without a zone, local time."""
    value = text.strip()
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"due date {text!r}: expected an ISO date such as 2026-12-01 or 2026-12-01T23:59") from None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        moment = moment.replace(hour=23, minute=59, second=59)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the instructor's local time zone
    return moment.astimezone(datetime.timezone.utc)


def late_seconds(collected_at: str, due: str | None) -> float:
    if not due:
        return 0.0
    return (datetime.datetime.fromisoformat(collected_at) - datetime.datetime.fromisoformat(due)).total_seconds()


@dataclass
class LessonScore:
    """One student's result in one lesson (zero with ``submitted`` False when nothing was collected)."""

    student: str
    lesson: str
    submitted: bool
    graded: bool
    raw: float
    penalty: float
    maximum: float
    late_seconds: float
    needs_review: int  # reflections and flagged exercises without the instructor's points

    @property
    def score(self) -> float:
        return self.raw - self.penalty


def lesson_maximum(gradebook: Gradebook, lesson: str) -> float:
    settings = gradebook.settings()
    row = gradebook.lesson(lesson)
    exercise_points = sum(e["points"] for e in gradebook.exercises(lesson))
    return exercise_points + settings.get("reflection_points", 0) * (row["reflection_questions"] if row else 0)


def lesson_score(gradebook: Gradebook, student: str, lesson: str) -> LessonScore:
    settings = gradebook.settings()
    rule = parse_late_rule(settings.get("late_penalty", "none"))
    maximum = lesson_maximum(gradebook, lesson)
    submission = gradebook.latest(student, lesson)
    if submission is None:
        return LessonScore(student, lesson, False, False, 0.0, 0.0, maximum, 0.0, 0)
    manual = gradebook.manual_scores(submission.id)
    grading = gradebook.grading(submission.id)
    raw, needs_review = 0.0, 0
    if grading is not None:
        for result in gradebook.exercise_results(grading["id"]):
            override = manual.get(f"exercise {result['exercise']}")
            if override is not None and override["points"] is not None:
                raw += override["points"]
            else:
                raw += result["score"]
                needs_review += result["flags"] != "[]"
    if settings.get("reflection_points", 0):
        for reflection in gradebook.reflections(submission.id):
            points = manual.get(f"reflection {reflection['number']}")
            if points is not None and points["points"] is not None:
                raw += points["points"]
            else:
                needs_review += 1
    late = late_seconds(submission.collected_at, gradebook.lesson(lesson)["due"])
    penalty = raw * rule.fraction(late)
    return LessonScore(student, lesson, True, grading is not None, raw, penalty, maximum, max(late, 0.0), needs_review)


def all_scores(gradebook: Gradebook) -> list[LessonScore]:
    """Every known student in every lesson of the course."""
    lessons = [row["lesson"] for row in gradebook.lessons()]
    return [lesson_score(gradebook, student, lesson) for student in gradebook.students() for lesson in lessons]
