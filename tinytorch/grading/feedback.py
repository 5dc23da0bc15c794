"""Feedback: one report per student, in Markdown or HTML, from the gradebook.

For each lesson: the score (raw, late penalty, score, maximum), each exercise's result, and for a
failing *public* check the call (the lesson's own example line), its inputs, what the framework
returned, and how the student's result differed. A failing *hidden* check is named, never shown:
its inputs and expected values stay with the instructor. Then the reflection answers' word counts,
points and the instructor's comments. What a submission printed is not included (it stays in the
gradebook for the instructor).
"""

from __future__ import annotations

import datetime
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from .checks import Check
from .compare import exception_family, render
from .course import Course
from .export import points
from .scores import lesson_score

MAX_PUBLIC_SHOWN = 3
MAX_HIDDEN_NAMED = 10


@dataclass
class Block:
    """A piece of a report: a heading, a paragraph, a table, a list or a code block."""

    kind: str
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    level: int = 2


def describe_inputs(check: Check) -> str:
    doc = check.inputs
    args = doc.entry(doc.roots["args"])
    kwargs = doc.entry(doc.roots["kwargs"])
    parts = [render(doc, v, budget=120) for v in args["items"]]
    parts += [f"{render(doc, k)[1:-1]}={render(doc, v, budget=120)}" for k, v in kwargs["items"]]
    return ", ".join(parts)


def describe_expected(check: Check) -> str:
    meta = check.expected.meta
    if meta["status"] == "raised":
        return f"raises {exception_family(meta['exception']['mro']).split(':')[1]}"
    return render(check.expected, check.expected.roots["value"], budget=300)


def student_blocks(course: Course, student: str) -> list[Block]:
    gradebook = course.gradebook
    settings = gradebook.settings()
    blocks = [Block("heading", f"Feedback for {student}: {settings.get('name', 'course')}", level=1)]
    blocks.append(Block("paragraph", f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC."))
    for lesson in course.lessons():
        score = lesson_score(gradebook, student, lesson.name)
        blocks.append(Block("heading", f"{lesson.name}: {lesson.title}: {points(score.score)} / {points(score.maximum)} points"))
        submission = gradebook.latest(student, lesson.name)
        if submission is None:
            blocks.append(Block("paragraph", "Not submitted."))
            continue
        due = gradebook.lesson(lesson.name)["due"]
        timing = f"Collected {submission.collected_at}" + (f", due {due}" if due else "")
        late = f": {score.late_seconds / 3600:.1f} hours late, {points(score.penalty)} points taken off {points(score.raw)}."
        blocks.append(Block("paragraph", timing + (late if score.late_seconds > 0 else ".")))
        grading = gradebook.grading(submission.id)
        manual = gradebook.manual_scores(submission.id)
        if grading is None:
            blocks.append(Block("paragraph", "Not graded yet."))
        else:
            if grading["problem"]:
                blocks.append(Block("paragraph", f"The file could not run: {grading['problem']}"))
            blocks += _exercise_blocks(course, lesson, grading, manual)
        blocks += _reflection_blocks(gradebook.reflections(submission.id), manual, settings.get("reflection_points", 0))
        if "general" in manual and manual["general"]["comment"]:
            blocks.append(Block("paragraph", f"Comment: {manual['general']['comment']}"))
    return blocks


def _exercise_blocks(course: Course, lesson, grading, manual) -> list[Block]:
    gradebook = course.gradebook
    checks = {c.id: c for c in course.checks(lesson).checks}
    maximum = {e["name"]: e["points"] for e in gradebook.exercises(lesson.name)}
    rows = [["exercise", "result", "checks passed", "points"]]
    details: list[Block] = []
    for result in gradebook.exercise_results(grading["id"]):
        name = result["exercise"]
        mark = manual.get(f"exercise {name}")
        earned = mark["points"] if mark and mark["points"] is not None else result["score"]
        rows.append([name, result["status"], f"{result['passed']} / {result['total']}", f"{points(earned)} / {points(maximum[name])}"])
        failing = [r for r in gradebook.check_results(grading["id"], name) if not r["passed"]]
        if not failing and not (mark and mark["comment"]):
            continue
        details.append(Block("heading", f"{name}: {result['status']}", level=3))
        public = [r for r in failing if r["visibility"] == "public"]
        hidden = [r for r in failing if r["visibility"] == "hidden"]
        items = []
        for r in public[:MAX_PUBLIC_SHOWN]:
            check = checks.get(r["check_id"])
            if check is None:
                continue
            items.append(
                f"{check.source or check.id}\n  inputs: {describe_inputs(check)}\n  expected: {describe_expected(check)}\n  yours: {r['message']}"
            )
        if len(public) > MAX_PUBLIC_SHOWN:
            items.append(f"... and {len(public) - MAX_PUBLIC_SHOWN} more public checks failed")
        if hidden:
            names = ", ".join(r["check_id"] for r in hidden[:MAX_HIDDEN_NAMED]) + (" ..." if len(hidden) > MAX_HIDDEN_NAMED else "")
            items.append(f"{len(hidden)} hidden check(s) failed: {names}")
        if items:
            details.append(Block("code", "\n\n".join(items)))
        if mark and mark["comment"]:
            details.append(Block("paragraph", f"Comment: {mark['comment']}"))
    return [Block("table", rows=rows)] + details


def _reflection_blocks(reflections, manual, maximum: float) -> list[Block]:
    if not reflections:
        return []
    rows = [["question", "words", "points", "comment"]]
    for r in reflections:
        mark = manual.get(f"reflection {r['number']}")
        given = "not reviewed yet" if not mark or mark["points"] is None else f"{points(mark['points'])} / {points(maximum)}"
        rows.append([f"{r['number']}. {r['question']}", str(r["words"]), given, mark["comment"] if mark else ""])
    return [Block("heading", "Reflections", level=3), Block("table", rows=rows)]


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "heading":
            out.append("#" * b.level + " " + b.text)
        elif b.kind == "paragraph":
            out.append(b.text)
        elif b.kind == "code":
            fence = "~~~~" if "```" in b.text else "```"
            out.append(f"{fence}\n{b.text.replace('~~~~', '~ ~ ~ ~')}\n{fence}")
        elif b.kind == "table":
            cells = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in b.rows]
            out.append("| " + " | ".join(cells[0]) + " |\n|" + "---|" * len(cells[0]))
            out[-1] += "".join("\n| " + " | ".join(row) + " |" for row in cells[1:])
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;padding:.2em .5em}"
           "table{border-collapse:collapse}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}</style></head><body>"]
    for b in blocks:
        if b.kind == "heading":
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif b.kind == "paragraph":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "code":
            out.append(f"<pre>{html.escape(b.text)}</pre>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.rows[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in b.rows[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_feedback(course: Course, out: Path, fmt: str = "html", student: str | None = None) -> list[Path]:
    """One file per student (or only ``student``) in ``out``: ``<student>.html`` or ``<student>.md``."""
    if fmt not in ("html", "md"):
        raise ValueError(f"feedback: format {fmt!r}; expected html or md")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in course.gradebook.students():
        if student and name != student:
            continue
        blocks = student_blocks(course, name)
        text = to_html(blocks, f"Feedback for {name}") if fmt == "html" else to_markdown(blocks)
        path = out / f"{name}.{fmt}"
        tmp = out / f".{name}.{fmt}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
