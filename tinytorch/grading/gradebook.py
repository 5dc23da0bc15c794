"""The gradebook: one SQLite file per course, with a versioned schema, written only by the grader.

Tables: ``settings`` (the course's rules, JSON values), ``lessons`` (due date, reflection
questions, the digest of the checks in force), ``exercises`` (points, check counts),
``students``, ``submissions`` (every collected version of a student's lesson file, its SHA-256 and
the time the *collector* recorded), ``collect_problems`` (what collect refused), ``gradings`` (one
per submission and version of the checks), ``exercise_results`` and ``check_results`` (what each
grading found), ``reflections`` (the answers, with word counts) and ``manual_scores`` (the
instructor's points and comments).

A grading is written in one transaction, with its exercise and check results, and is unique per
(submission, checks digest): a run killed midway leaves whole gradings or none, and running again
grades exactly what is missing. The schema version is SQLite's ``user_version``; :func:`open_gradebook`
creates a new gradebook, upgrades an older one step by step, and refuses a newer one.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FILE_NAME = "gradebook.sqlite"

_SCHEMA_1 = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE lessons (
    lesson TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    title TEXT NOT NULL,
    due TEXT,
    reflection_questions INTEGER NOT NULL,
    checks_digest TEXT NOT NULL
);
CREATE TABLE exercises (
    lesson TEXT NOT NULL REFERENCES lessons(lesson),
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    points REAL NOT NULL,
    public_checks INTEGER NOT NULL,
    hidden_checks INTEGER NOT NULL,
    PRIMARY KEY (lesson, name)
);
CREATE TABLE students (id TEXT PRIMARY KEY, added_at TEXT NOT NULL);
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY,
    student TEXT NOT NULL REFERENCES students(id),
    lesson TEXT NOT NULL REFERENCES lessons(lesson),
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL,
    collected_at TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX submissions_by_student ON submissions(student, lesson, id);
CREATE TABLE collect_problems (
    id INTEGER PRIMARY KEY,
    student TEXT,
    source TEXT NOT NULL,
    problem TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE gradings (
    id INTEGER PRIMARY KEY,
    submission INTEGER NOT NULL REFERENCES submissions(id),
    checks_digest TEXT NOT NULL,
    graded_at TEXT NOT NULL,
    seconds REAL NOT NULL,
    sandbox TEXT NOT NULL,
    problem TEXT,
    UNIQUE (submission, checks_digest)
);
CREATE TABLE exercise_results (
    grading INTEGER NOT NULL REFERENCES gradings(id) ON DELETE CASCADE,
    exercise TEXT NOT NULL,
    status TEXT NOT NULL,
    passed INTEGER NOT NULL,
    total INTEGER NOT NULL,
    score REAL NOT NULL,
    message TEXT NOT NULL,
    flags TEXT NOT NULL,
    output TEXT NOT NULL,
    PRIMARY KEY (grading, exercise)
);
CREATE TABLE check_results (
    grading INTEGER NOT NULL REFERENCES gradings(id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    exercise TEXT NOT NULL,
    visibility TEXT NOT NULL,
    passed INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (grading, check_id)
);
CREATE TABLE reflections (
    submission INTEGER NOT NULL REFERENCES submissions(id),
    number INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    words INTEGER NOT NULL,
    PRIMARY KEY (submission, number)
);
CREATE TABLE manual_scores (
    submission INTEGER NOT NULL REFERENCES submissions(id),
    item TEXT NOT NULL,
    points REAL,
    comment TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (submission, item)
);
"""

#: schema upgrades: MIGRATIONS[v] takes a gradebook from version v to v + 1
MIGRATIONS: dict[int, str] = {0: _SCHEMA_1}


class GradebookError(RuntimeError):
    """A gradebook that cannot be used: missing, from a newer TinyTorch, or not a gradebook."""


def now() -> str:
    """The current time, UTC, ISO 8601 with seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def open_gradebook(path: Path, create: bool = False) -> Gradebook:
    """Open (with ``create``: create) a gradebook, upgrading its schema to :data:`SCHEMA_VERSION`."""
    path = Path(path)
    if not path.is_file() and not create:
        raise GradebookError(f"no gradebook at {path}; create the course with: tito grade setup {path.parent}")
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as error:
        connection.close()
        raise GradebookError(f"{path} is not a gradebook: {error}") from None
    if version > SCHEMA_VERSION:
        connection.close()
        raise GradebookError(f"{path} has schema version {version}; this TinyTorch reads up to {SCHEMA_VERSION}: upgrade TinyTorch")
    while version < SCHEMA_VERSION:
        with _transaction(connection):
            for statement in _statements(MIGRATIONS[version]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
        version += 1
    return Gradebook(connection, path)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


class _transaction:
    """``with _transaction(db):`` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, trace):
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


@dataclass
class Submission:
    id: int
    student: str
    lesson: str
    sha256: str
    content: bytes
    collected_at: str
    source: str


class Gradebook:
    """Reads and writes of one course's gradebook; every write is one transaction."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.db = connection
        self.path = path

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> _transaction:
        return _transaction(self.db)

    # -- settings and lessons -----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {row["key"]: json.loads(row["value"]) for row in self.db.execute("SELECT key, value FROM settings")}

    def set_settings(self, values: dict[str, Any]) -> None:
        with self.transaction():
            for key, value in values.items():
                self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def set_lesson(self, lesson: str, number: str, title: str, due: str | None, questions: int, digest: str, exercises: list[tuple[str, float, int, int]]) -> None:
        """Add or update a lesson and its exercises ``(name, points, public checks, hidden checks)``."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO lessons (lesson, number, title, due, reflection_questions, checks_digest) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(lesson) DO UPDATE SET number=excluded.number, title=excluded.title, due=excluded.due, "
                "reflection_questions=excluded.reflection_questions, checks_digest=excluded.checks_digest",
                (lesson, number, title, due, questions, digest),
            )
            self.db.execute("DELETE FROM exercises WHERE lesson = ?", (lesson,))
            for position, (name, points, public, hidden) in enumerate(exercises):
                self.db.execute(
                    "INSERT INTO exercises (lesson, name, position, points, public_checks, hidden_checks) VALUES (?, ?, ?, ?, ?, ?)",
                    (lesson, name, position, points, public, hidden),
                )

    def set_due(self, lesson: str, due: str | None) -> None:
        with self.transaction():
            self.db.execute("UPDATE lessons SET due = ? WHERE lesson = ?", (due, lesson))

    def lessons(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM lessons ORDER BY number").fetchall()

    def lesson(self, name: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM lessons WHERE lesson = ?", (name,)).fetchone()

    def exercises(self, lesson: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM exercises WHERE lesson = ? ORDER BY position", (lesson,)).fetchall()

    # -- students and submissions --------------------------------------------------------------------
    def students(self) -> list[str]:
        return [row["id"] for row in self.db.execute("SELECT id FROM students ORDER BY id")]

    def latest(self, student: str, lesson: str) -> Submission | None:
        row = self.db.execute(
            "SELECT * FROM submissions WHERE student = ? AND lesson = ? ORDER BY id DESC LIMIT 1", (student, lesson)
        ).fetchone()
        return Submission(**dict(row)) if row else None

    def latest_submissions(self, lesson: str | None = None, student: str | None = None) -> list[Submission]:
        """Each student's latest submission of each lesson (optionally of one lesson or student)."""
        query = (
            "SELECT s.* FROM submissions s JOIN (SELECT MAX(id) AS id FROM submissions GROUP BY student, lesson) m ON s.id = m.id"
            " WHERE (? IS NULL OR s.lesson = ?) AND (? IS NULL OR s.student = ?) ORDER BY s.student, s.lesson"
        )
        return [Submission(**dict(r)) for r in self.db.execute(query, (lesson, lesson, student, student))]

    def add_submission(self, student: str, lesson: str, sha256: str, content: bytes, collected_at: str, source: str, reflections: list[tuple[int, str, str, int]]) -> int:
        """Record a collected file and its reflection answers ``(number, question, answer, words)``."""
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO students (id, added_at) VALUES (?, ?)", (student, collected_at))
            cursor = self.db.execute(
                "INSERT INTO submissions (student, lesson, sha256, content, collected_at, source) VALUES (?, ?, ?, ?, ?, ?)",
                (student, lesson, sha256, content, collected_at, source),
            )
            submission = cursor.lastrowid
            for number, question, answer, words in reflections:
                self.db.execute(
                    "INSERT INTO reflections (submission, number, question, answer, words) VALUES (?, ?, ?, ?, ?)",
                    (submission, number, question, answer, words),
                )
        return submission

    def add_student(self, student: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO students (id, added_at) VALUES (?, ?)", (student, now()))

    def add_collect_problem(self, student: str | None, source: str, problem: str) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO collect_problems (student, source, problem, at) VALUES (?, ?, ?, ?)", (student, source, problem, now()))

    def collect_problems(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM collect_problems ORDER BY id").fetchall()

    def reflections(self, submission: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM reflections WHERE submission = ? ORDER BY number", (submission,)).fetchall()

    # -- gradings ------------------------------------------------------------------------------------
    def grading(self, submission: int, digest: str | None = None) -> sqlite3.Row | None:
        """The grading of a submission with the given checks (default: the lesson's current ones)."""
        if digest is None:
            row = self.db.execute(
                "SELECT g.* FROM gradings g JOIN submissions s ON g.submission = s.id JOIN lessons l ON l.lesson = s.lesson "
                "WHERE g.submission = ? AND g.checks_digest = l.checks_digest",
                (submission,),
            ).fetchone()
        else:
            row = self.db.execute("SELECT * FROM gradings WHERE submission = ? AND checks_digest = ?", (submission, digest)).fetchone()
        return row

    def ungraded(self, lesson: str | None = None, student: str | None = None) -> list[Submission]:
        """Latest submissions with no grading for their lesson's current checks."""
        return [s for s in self.latest_submissions(lesson, student) if self.grading(s.id) is None]

    def record_grading(self, submission: int, digest: str, seconds: float, sandbox: dict, problem: str | None, exercises: list[dict], checks: list[dict]) -> int:
        """Write one grading whole (replacing an earlier one with the same checks, for a forced regrade)."""
        with self.transaction():
            self.db.execute("DELETE FROM gradings WHERE submission = ? AND checks_digest = ?", (submission, digest))
            cursor = self.db.execute(
                "INSERT INTO gradings (submission, checks_digest, graded_at, seconds, sandbox, problem) VALUES (?, ?, ?, ?, ?, ?)",
                (submission, digest, now(), seconds, json.dumps(sandbox), problem),
            )
            grading = cursor.lastrowid
            for e in exercises:
                self.db.execute(
                    "INSERT INTO exercise_results (grading, exercise, status, passed, total, score, message, flags, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (grading, e["exercise"], e["status"], e["passed"], e["total"], e["score"], e["message"], json.dumps(e["flags"]), e["output"]),
                )
            for c in checks:
                self.db.execute(
                    "INSERT INTO check_results (grading, check_id, exercise, visibility, passed, message) VALUES (?, ?, ?, ?, ?, ?)",
                    (grading, c["check_id"], c["exercise"], c["visibility"], int(c["passed"]), c["message"]),
                )
        return grading

    def exercise_results(self, grading: int) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT r.* FROM exercise_results r JOIN gradings g ON g.id = r.grading JOIN submissions s ON s.id = g.submission "
            "JOIN exercises e ON e.lesson = s.lesson AND e.name = r.exercise WHERE r.grading = ? ORDER BY e.position",
            (grading,),
        ).fetchall()

    def check_results(self, grading: int, exercise: str | None = None) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM check_results WHERE grading = ? AND (? IS NULL OR exercise = ?) ORDER BY rowid", (grading, exercise, exercise)
        ).fetchall()

    # -- manual scores -------------------------------------------------------------------------------
    def set_manual(self, reviews: list[tuple[int, str, float | None, str | None]]) -> None:
        """Set the instructor's points and comments, all in one transaction: each review is
        (submission, item, points or None to keep them, comment or None to keep it)."""
        with self.transaction():
            for submission, item, points, comment in reviews:
                row = self.db.execute("SELECT points, comment FROM manual_scores WHERE submission = ? AND item = ?", (submission, item)).fetchone()
                new_points = points if points is not None or row is None else row["points"]
                new_comment = comment if comment is not None else (row["comment"] if row else "")
                self.db.execute(
                    "INSERT OR REPLACE INTO manual_scores (submission, item, points, comment, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (submission, item, new_points, new_comment, now()),
                )

    def manual_scores(self, submission: int) -> dict[str, sqlite3.Row]:
        return {row["item"]: row for row in self.db.execute("SELECT * FROM manual_scores WHERE submission = ?", (submission,))}

