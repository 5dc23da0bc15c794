"""Run one submission in a sandboxed child and bring back its raw results as bytes.

:func:`run_job` is all a grading task does, on this machine or on a Dask worker: lay out a
temporary job folder (the student's file, the checks' inputs, a link to TinyTorch), start
:mod:`tinytorch.grading.runner` in a new session with a scrubbed environment, enforce a wall-clock
limit on the whole run by killing its process group, and return what the runner reported and the
files it wrote, capped in size. A :class:`Job` and a :class:`JobResult` hold only plain data
(strings, numbers, bytes), so they travel to a cluster and back without carrying objects, and
the grader alone interprets them.

Limits (:class:`Limits`) apply per exercise: CPU seconds and wall-clock seconds; memory (address
space) and file size apply to the whole child.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tinytorch

RUNNER = Path(__file__).resolve().parent / "runner.py"
#: the runner imports NumPy and TinyTorch before the first exercise (seconds, generous for a busy machine)
STARTUP_SECONDS = 60.0
OUTPUT_BYTES = 8 << 10
LOG_BYTES = 8 << 10
ERROR_BYTES = 16 << 10
MESSAGE_LINES = 1000


@dataclass(frozen=True)
class Limits:
    """What one submission may use: per exercise, CPU and wall-clock seconds; in all, memory and file size."""

    cpu_seconds: int = 20
    wall_seconds: float = 30.0
    memory_mb: int = 2048
    file_mb: int = 64

    def __post_init__(self):
        for name in ("cpu_seconds", "wall_seconds", "memory_mb", "file_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"grading limits: {name} must be positive, got {getattr(self, name)}")


@dataclass
class Job:
    """One submission to grade: plain data only."""

    key: str
    module: str  # the framework module whose functions are the exercises
    exercises: list[str]
    workspace_name: str  # NN_slug.py
    workspace: bytes
    inputs: bytes  # the checks' inputs (a plain-data bundle), in check order
    limits: Limits = field(default_factory=Limits)


@dataclass
class JobResult:
    """What came back: the runner's status lines, the files its exercises wrote, and how it ended."""

    key: str
    messages: list[dict]
    files: dict[str, bytes]
    log: str
    returncode: int | None
    timed_out: bool
    seconds: float

    def message(self, exercise: str) -> dict:
        """The runner's report on one exercise (empty when it never got there)."""
        return next((m for m in self.messages if m.get("exercise") == exercise), {})

    @property
    def sandbox(self) -> dict:
        return next((m["sandbox"] for m in self.messages if isinstance(m.get("sandbox"), dict)), {})


def child_environment(job_dir: Path) -> dict[str, str]:
    """A scrubbed environment: nothing of the grader's, one thread for every math library."""
    tmp = str(job_dir / "tmp")
    return {
        "PATH": os.defpath,
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(job_dir / "lib"),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        # NumPy's BLAS fails at import under process limits unless it starts no threads
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": tmp,
    }


def prepare(job: Job, job_dir: Path) -> None:
    """Lay out the job folder the runner works in."""
    for sub in ("lib", "work", "out", "tmp"):
        (job_dir / sub).mkdir()
    os.symlink(Path(tinytorch.__file__).resolve().parent, job_dir / "lib" / "tinytorch")
    (job_dir / "work" / job.workspace_name).write_bytes(job.workspace)
    (job_dir / "inputs.npz").write_bytes(job.inputs)
    limits = job.limits
    spec = {
        "module": job.module,
        "exercises": job.exercises,
        "workspace": job.workspace_name,
        "limits": {
            "cpu_seconds": limits.cpu_seconds,
            "wall_seconds": limits.wall_seconds,
            "memory_bytes": limits.memory_mb << 20,
            "file_bytes": limits.file_mb << 20,
        },
    }
    (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")


def run_job(job: Job) -> JobResult:
    """Grade one submission in a sandboxed child; never raises for anything the submission does."""
    if os.name != "posix":
        raise RuntimeError("tito grade autograde: sandboxed grading needs Linux or macOS (POSIX process limits)")
    started = time.monotonic()
    job_dir = Path(tempfile.mkdtemp(prefix="tinytorch-grade-"))
    try:
        prepare(job, job_dir)
        budget = STARTUP_SECONDS + len(job.exercises) * (job.limits.wall_seconds + 2) + 5
        command = [sys.executable, "-s", "-B", "-P", str(RUNNER), str(job_dir)]
        with open(job_dir / "runner.log", "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=job_dir / "tmp",
                env=child_environment(job_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                close_fds=True,
                start_new_session=True,
            )
            timed_out = False
            try:
                stdout, _ = process.communicate(timeout=budget)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                stdout, _ = process.communicate()
            finally:
                _kill_group(process.pid)
        return JobResult(
            key=job.key,
            messages=_messages(stdout),
            files=_result_files(job_dir / "out", job.limits.file_mb << 20),
            log=_head(job_dir / "runner.log", LOG_BYTES),
            returncode=process.returncode,
            timed_out=timed_out,
            seconds=round(time.monotonic() - started, 3),
        )
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def run_job_plain(job: dict) -> dict:
    """:func:`run_job` on and to plain dictionaries: what a Dask task runs."""
    job = dict(job, limits=Limits(**job["limits"]))
    return asdict(run_job(Job(**job)))


def job_plain(job: Job) -> dict:
    return asdict(job)


def result_from_plain(plain: dict) -> JobResult:
    return JobResult(**plain)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _messages(stdout: bytes) -> list[dict]:
    messages = []
    for line in stdout.decode("utf-8", errors="replace").splitlines()[:MESSAGE_LINES]:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            messages.append(message)
    return messages


def _head(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _result_files(out: Path, max_bytes: int) -> dict[str, bytes]:
    """Every file the exercises wrote (never following links), the output logs cut to their first bytes."""
    files: dict[str, bytes] = {}
    for folder in sorted(out.iterdir()) if out.is_dir() else []:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file() or path.name.startswith(".") or path.stat().st_nlink != 1:
                continue  # a link could point at a file of the grader's
            limit = {"output.txt": OUTPUT_BYTES, "error.json": ERROR_BYTES}.get(path.name, max_bytes)
            with open(path, "rb") as f:
                files[f"{folder.name}/{path.name}"] = f.read(limit)
    return files
