"""The hostile suite: submissions that attack the grader, graded in one run with honest ones.

Every hostile submission must neither raise its own grade, nor disturb anyone else's (the honest
students' results equal those of grading their code directly, in this process), nor change the
gradebook or any file outside its sandbox, nor stop the run. Lessons 02 and 06 keep it cheap:
one sandboxed child per submission, exercises of a few milliseconds.
"""

import json
import os
import sqlite3
import types
import zipfile

import pytest

from tinytorch.grading import synthetic
from tinytorch.grading.autograde import autograde
from tinytorch.grading.capture import capture
from tinytorch.grading.collect import collect
from tinytorch.grading.compare import compare
from tinytorch.grading.course import setup
from tinytorch.grading.gradebook import now
from tinytorch.grading.sandbox import Limits

B, C = synthetic.BROADCAST_SHAPE, synthetic.CONTIGUOUS_STRIDES
MARKER = "HOSTILE-MARKER-7f3a"


def hostile_sources(paths: dict) -> dict[str, dict[str, str | bytes]]:
    """student -> {lesson number: workspace source}. ``paths`` are the files an attacker would aim at."""
    targets = repr(paths)
    return {
        # the honest ones
        "alice": {"02": synthetic.source("02", "correct"), "06": synthetic.source("06", "correct")},
        "bob": {"02": synthetic.source("02", "partial")},
        # runaway exercises: the other exercise of the same file still counts
        "h-loop": {"02": C + "\ndef broadcast_shape(a, b):\n    while True:\n        pass\n"},
        "h-sleep": {"02": (
            "import os, time\n"
            "def broadcast_shape(a, b):\n    time.sleep(1000)\n"
            "def contiguous_strides(shape, itemsize):\n"
            "    try:\n        pid = os.fork()\n    except OSError as error:\n        print('FORK REFUSED', error, flush=True)\n        return ()\n"
            "    if pid == 0:\n        os.setsid()\n        print('FORKED', os.getpid(), flush=True)\n        time.sleep(1000)\n        os._exit(0)\n"
            "    return ()\n"
        )},
        "h-memory": {"02": "import os\ndef broadcast_shape(a, b):\n    block = bytearray(16 << 30)\n    return (len(block),)\n"
                           "def contiguous_strides(shape, itemsize):\n    os._exit(0)\n"},
        "h-exit": {"02": "import sys\ndef broadcast_shape(a, b):\n    sys.exit(0)\n"
                         "def contiguous_strides(shape, itemsize):\n    while True:\n        print('x' * 100000)\n"},
        # forged results on every channel
        "h-fake": {"02": (
            "import json, os, sys\n"
            "FAKE = json.dumps({'exercise': 'broadcast_shape', 'status': 'passed', 'passed': 38, 'total': 38, 'score': 1.0})\n"
            "def broadcast_shape(a, b):\n"
            "    print(FAKE); print(FAKE, file=sys.stderr)\n"
            "    for fd in range(3, 256):\n        try:\n            os.write(fd, FAKE.encode())\n        except OSError:\n            pass\n"
            "    return (0,)\n"
            "def contiguous_strides(shape, itemsize):\n"
            "    for rel in ('../../out/0/0.npz', '../../out/1/0.npz', '../../results.json', '../../work/02_tensor.py', '../../inputs.npz', 'result.json'):\n"
            "        try:\n            open(rel, 'w').write(FAKE)\n        except OSError:\n            pass\n"
            "    return (-1,)\n"
        )},
        # reaching outside: the gradebook, another student's folder, the course's expected values
        "h-write": {"02": (
            f"import sqlite3\nTARGETS = {targets}\nMARKER = {MARKER[:8]!r} + {MARKER[8:]!r}   # not in this file's text\n"
            "def broadcast_shape(a, b):\n"
            "    try:\n        open(TARGETS['gradebook'], 'ab').write(MARKER.encode())\n    except OSError:\n        pass\n"
            "    try:\n        db = sqlite3.connect(TARGETS['gradebook'])\n"
            "        db.execute('UPDATE exercise_results SET score = 1, status = \"passed\"')\n        db.execute('CREATE TABLE hacked (x)')\n        db.commit()\n"
            "    except Exception:\n        pass\n"
            "    return (0,)\n"
            "def contiguous_strides(shape, itemsize):\n"
            "    for key in ('alice', 'checks', 'escape'):\n"
            "        try:\n            open(TARGETS[key], 'w').write(MARKER)\n        except OSError:\n            pass\n"
            "    return (-1,)\n"
        )},
        # patching the judge's tools in the student's own process
        "h-patch": {"02": (
            "import builtins, doctest, numpy as np\n"
            "doctest.OutputChecker.check_output = lambda *args: True\n"
            "np.allclose = lambda *args, **kwargs: True\nnp.array_equal = lambda *args, **kwargs: True\n"
            "builtins.isinstance = lambda *args: True\n"
            "def broadcast_shape(a, b):\n    return (0,)\n"
            "def contiguous_strides(shape, itemsize):\n    return (1,)\n"
        )},
        # results that claim to be equal to anything
        "h-equal": {"02": (
            "class Anything:\n    def __eq__(self, other):\n        return True\n    def __repr__(self):\n        return '(3, 4)'\n    __hash__ = object.__hash__\n"
            "class Tuple(tuple):\n    def __eq__(self, other):\n        return True\n    __hash__ = tuple.__hash__\n"
            "def broadcast_shape(a, b):\n    return Anything()\n"
            "def contiguous_strides(shape, itemsize):\n    return Tuple((7,))\n"
        )},
        "h-subclass": {"06": synthetic.CONV2D_OUTPUT_SHAPE + (
            "import numpy as np\n"
            "class Always(np.ndarray):\n    def __eq__(self, other):\n        return np.ones(np.shape(self), bool)\n"
            "    def __array_ufunc__(self, *args, **kwargs):\n        return True\n"
            "def im2col(x, kernel_size, stride=1, padding=0):\n    return np.zeros((1, 1)).view(Always)\n"
        )},
        "h-solution": {"02": "import tinytorch as tt\nfrom tinytorch.core.tensor import broadcast_shape\n"
                             "def contiguous_strides(shape, itemsize):\n    return tt.core.tensor.contiguous_strides(shape, itemsize)\n"},
        "h-import-exit": {"02": "import os\nos._exit(0)\n" + B + C},
        # files that cannot even run
        "h-syntax": {"02": "def broadcast_shape(:\n    return\n"},
        "h-encoding": {"02": b"\xff\xfe\x00def broadcast_shape(a, b): return (1,)\n"},
        "h-missing": {},
    }


def grade_in_process(source: str, checks) -> dict[str, list[bool]]:
    """An honest student's results, computed directly: what the sandbox must reproduce."""
    module = types.ModuleType("honest")
    exec(source, module.__dict__)
    out = {}
    for check in checks.checks:
        out.setdefault(check.exercise, []).append(compare(check.expected, capture(getattr(module, check.exercise), check.inputs, check.seed)).passed)
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    course_dir, source = root / "course", root / "submissions"
    course = setup(course_dir, lessons=["02", "06"], limits=Limits(cpu_seconds=2, wall_seconds=4, memory_mb=1024, file_mb=4))
    paths = {
        "gradebook": str(course.gradebook.path),
        "alice": str(source / "alice" / "02_tensor.py"),
        "checks": str(course_dir / "checks" / "02_tensor.npz"),
        "escape": str(root / "escaped.txt"),
    }
    sources = hostile_sources(paths)
    for student, files in sources.items():
        (source / student).mkdir(parents=True)
        (source / student / "README.txt").write_text("my work\n")
        for number, text in files.items():
            path = source / student / f"{course.lesson(number).name}.py"
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with zipfile.ZipFile(source / "h-zip.zip", "w") as archive:
        archive.writestr("../../zip-escaped.py", "x = 1\n")
        archive.writestr("02_tensor.py", B + C)
    watched = {name: open(paths[name], "rb").read() for name in ("alice", "checks")}
    collected = collect(course.gradebook, source, course.lessons(), now())
    summary = autograde(course, workers=2)
    yield types.SimpleNamespace(course=course, root=root, paths=paths, sources=sources, watched=watched, collected=collected, summary=summary)
    course.close()


def results(graded, student: str, lesson: str = "02_tensor") -> dict:
    gradebook = graded.course.gradebook
    submission = gradebook.latest(student, lesson)
    grading = gradebook.grading(submission.id)
    return {r["exercise"]: r for r in gradebook.exercise_results(grading["id"])}


def check_passes(graded, student: str, lesson: str) -> dict[str, list[bool]]:
    gradebook = graded.course.gradebook
    grading = gradebook.grading(gradebook.latest(student, lesson).id)
    out = {}
    for row in gradebook.check_results(grading["id"]):
        out.setdefault(row["exercise"], []).append(bool(row["passed"]))
    return out


def test_the_run_finishes_and_grades_every_submission_once(graded):
    gradebook = graded.course.gradebook
    assert graded.summary.failed == []
    latest = gradebook.latest_submissions()
    assert len(latest) == 16 and all(gradebook.grading(s.id) is not None for s in latest)
    counts = gradebook.db.execute("SELECT submission, COUNT(*) AS n FROM gradings GROUP BY submission").fetchall()
    assert all(row["n"] == 1 for row in counts) and len(counts) == len(latest)


def test_honest_students_are_graded_as_if_alone(graded):
    for student, lesson, number in (("alice", "02_tensor", "02"), ("alice", "06_spatial", "06"), ("bob", "02_tensor", "02")):
        expected = grade_in_process(graded.sources[student][number], graded.course.checks(graded.course.lesson(number)))
        assert check_passes(graded, student, lesson) == expected, (student, lesson)
    assert all(r["status"] == "passed" for r in results(graded, "alice").values())
    assert all(r["status"] == "passed" for r in results(graded, "alice", "06_spatial").values())


@pytest.mark.parametrize(
    "student, exercise, status, reason",
    [
        ("h-loop", "broadcast_shape", {"timed out", "killed"}, ("timed out", "CPU time")),
        ("h-sleep", "broadcast_shape", {"timed out"}, ("timed out",)),
        ("h-memory", "broadcast_shape", {"failed"}, ("MemoryError",)),
        ("h-memory", "contiguous_strides", {"failed"}, ("exited before finishing",)),
        ("h-exit", "broadcast_shape", {"failed"}, ("raised SystemExit",)),
        ("h-exit", "contiguous_strides", {"failed", "killed", "timed out"}, ("File too large", "file-size limit", "CPU time", "timed out")),
        ("h-import-exit", "broadcast_shape", {"failed"}, ("exited before finishing",)),
        ("h-syntax", "broadcast_shape", {"error"}, ("SyntaxError on line 1",)),
        ("h-encoding", "contiguous_strides", {"error"}, ("not UTF-8",)),
    ],
)
def test_runaway_and_broken_exercises_score_zero_with_the_reason(graded, student, exercise, status, reason):
    row = results(graded, student)[exercise]
    assert row["score"] == 0 and row["passed"] == 0
    assert row["status"] in status, (row["status"], row["message"])
    assert any(r in row["message"] for r in reason), row["message"]


def test_one_runaway_exercise_costs_only_that_exercise(graded):
    row = results(graded, "h-loop")["contiguous_strides"]
    assert row["status"] == "passed" and row["passed"] == row["total"] > 0
    assert results(graded, "h-subclass", "06_spatial")["conv2d_output_shape"]["status"] == "passed"


def test_a_forked_child_does_not_outlive_its_exercise(graded):
    output = results(graded, "h-sleep")["contiguous_strides"]["output"]
    assert "FORKED" in output or "FORK REFUSED" in output
    for line in output.splitlines():
        if line.startswith("FORKED"):
            assert not running(int(line.split()[1]))


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed process may wait a moment for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_enormous_output_is_capped(graded):
    output = results(graded, "h-exit")["contiguous_strides"]["output"]
    assert 0 < len(output) <= 4000


@pytest.mark.parametrize("student", ["h-fake", "h-patch", "h-equal", "h-write"])
def test_forged_and_patched_results_earn_nothing(graded, student):
    for row in results(graded, student).values():
        assert row["score"] == 0 and row["passed"] == 0, (student, row["exercise"], row["message"])


def test_an_ndarray_subclass_earns_nothing(graded):
    row = results(graded, "h-subclass", "06_spatial")["im2col"]
    assert row["score"] == 0 and row["passed"] == 0 and "got a Always" in row["message"]


def test_the_frameworks_own_solution_fails_and_is_flagged(graded):
    for exercise, row in results(graded, "h-solution").items():
        assert row["score"] == 0
        flags = " ".join(json.loads(row["flags"]))
        assert "framework" in flags, exercise
    assert "called the framework's own broadcast_shape while being graded" in results(graded, "h-solution")["broadcast_shape"]["flags"]


def test_nothing_outside_the_sandbox_changed(graded):
    assert MARKER.encode() not in open(graded.paths["gradebook"], "rb").read()
    wal = graded.paths["gradebook"] + "-wal"
    assert not os.path.exists(wal) or MARKER.encode() not in open(wal, "rb").read()
    for name, content in graded.watched.items():
        assert open(graded.paths[name], "rb").read() == content, name
    assert not os.path.exists(graded.paths["escape"])
    with sqlite3.connect(graded.paths["gradebook"]) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "hacked" not in tables


def test_a_zip_with_escaping_paths_is_refused_and_a_missing_file_is_not_a_submission(graded):
    problems = dict(graded.collected.problems)
    assert "points outside the archive" in problems["h-zip.zip"]
    assert not list(graded.root.parent.glob("**/zip-escaped.py"))
    assert graded.course.gradebook.latest("h-zip", "02_tensor") is None
    assert graded.course.gradebook.latest("h-missing", "02_tensor") is None
    assert "h-missing" in graded.course.gradebook.students()
