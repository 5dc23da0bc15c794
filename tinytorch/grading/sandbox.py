"""Run one submission in the sandbox and bring back its raw results as bytes.

:func:`run_job` is all a grading task does, on this machine or on a Dask worker: lay out a job
folder (the student's file, the checks' inputs), hand it to an idle sandboxed runner
(:mod:`tinytorch.grading.runner`, started when none is idle, in a new session with a scrubbed
environment, and kept warm: it imports NumPy and TinyTorch once, then forks a fresh process per
submission), enforce a wall-clock limit on the whole job by killing the runner's process group,
and return what the runner reported and the files the job wrote, capped in size. A :class:`Job`
and a :class:`JobResult` hold only plain data (strings, numbers, bytes), so they travel to a
cluster and back without carrying objects, and the grader alone interprets them.

Limits (:class:`Limits`) apply per exercise: CPU seconds and wall-clock seconds; memory (address
space) and file size apply to the whole runner and everything it starts. A runner serves one job
at a time; idle runners wait for the next job of this process and die with it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tinytorch

RUNNER = Path(__file__).resolve().parent / "runner.py"
#: a new runner imports NumPy and TinyTorch before it is ready (seconds, generous for a busy machine)
STARTUP_SECONDS = 120.0
OUTPUT_BYTES = 8 << 10
LOG_BYTES = 8 << 10
ERROR_BYTES = 16 << 10
MESSAGE_BYTES = 1 << 20


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
    """What came back: the runner's reports, the files the job's exercises wrote, and how it ended."""

    key: str
    messages: list[dict]
    files: dict[str, bytes]
    log: str
    timed_out: bool
    seconds: float

    def message(self, exercise: str) -> dict:
        """The runner's report on one exercise (empty when it never got there)."""
        return next((m for m in self.messages if m.get("exercise") == exercise), {})

    @property
    def sandbox(self) -> dict:
        return next((m["sandbox"] for m in self.messages if isinstance(m.get("sandbox"), dict)), {})


def child_environment(pool: Path) -> dict[str, str]:
    """A scrubbed environment: nothing of the grader's, one thread for every math library."""
    tmp = str(pool / "tmp")
    return {
        "PATH": os.defpath,
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(pool / "lib"),
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


class RunnerDied(RuntimeError):
    """The runner ended or stopped answering (killed from outside, or a limit of its own)."""


class _Runner:
    """One warm sandboxed runner process and its folder; serves jobs one at a time."""

    def __init__(self, limits: Limits):
        self.pool = Path(tempfile.mkdtemp(prefix="tinytorch-grade-"))
        (self.pool / "lib").mkdir()
        (self.pool / "tmp").mkdir()
        os.symlink(Path(tinytorch.__file__).resolve().parent, self.pool / "lib" / "tinytorch")
        self.log = open(self.pool / "runner.log", "w+b")
        command = [sys.executable, "-s", "-B", "-P", str(RUNNER), str(self.pool), str(limits.memory_mb << 20), str(limits.file_mb << 20)]
        # Started from one long-lived thread: a runner dies with the thread that started it (so with
        # this process), and may then serve any thread.
        self.process = _SPAWNER.submit(
            subprocess.Popen,
            command,
            cwd=self.pool / "tmp",
            env=child_environment(self.pool),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            close_fds=True,
            start_new_session=True,
        ).result()
        self._finalizer = weakref.finalize(self, _stop, self.process, self.pool, self.log)
        self._buffer = b""
        self.sandbox = {}
        for message in self._read_until(lambda m: "ready" in m, time.monotonic() + STARTUP_SECONDS):
            self.sandbox = message.get("sandbox", self.sandbox)

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: Job, job_dir: Path, budget: float) -> tuple[list[dict], bool]:
        """Hand ``job_dir`` to the runner; its reports, and whether the job ran out of time."""
        try:
            self.process.stdin.write((json.dumps({"job": job_dir.name}) + "\n").encode())
            self.process.stdin.flush()
        except OSError as error:
            raise RunnerDied(f"the runner stopped taking jobs ({error})") from None
        try:
            messages = self._read_until(lambda m: "done" in m, time.monotonic() + budget)
        except TimeoutError:
            self.close()
            return [], True
        return [{"sandbox": self.sandbox}] + messages, False

    def _read_until(self, last, deadline: float) -> list[dict]:
        """Report lines up to and including the one ``last`` accepts; TimeoutError at the deadline."""
        messages: list[dict] = []
        stream = self.process.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    messages.append(message)
                    if last(message):
                        return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([stream], [], [], remaining)
            if ready:
                chunk = os.read(stream, 65536)
                if not chunk:
                    raise RunnerDied(f"the runner ended (exit code {self.process.wait()}): {self.log_text()[-400:]}")
                self._buffer += chunk
                if len(self._buffer) > MESSAGE_BYTES:
                    raise RunnerDied("the runner reported more than expected")

    def log_text(self) -> str:
        self.log.flush()
        with open(self.pool / "runner.log", "rb") as f:
            return f.read(LOG_BYTES).decode("utf-8", errors="replace")

    def close(self) -> None:
        self._finalizer()


def _stop(process: subprocess.Popen, pool: Path, log) -> None:
    """Kill a runner's process group and remove its folder (also when its thread has ended)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    for stream in (process.stdin, process.stdout, log):
        try:
            stream.close()
        except OSError:
            pass
    shutil.rmtree(pool, ignore_errors=True)


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tinytorch-grade-spawner")
_idle: dict[tuple[int, int], list[_Runner]] = {}
_idle_lock = threading.Lock()


def _acquire(limits: Limits) -> _Runner:
    """An idle runner with these memory and file limits, or a new one."""
    key = (limits.memory_mb, limits.file_mb)
    with _idle_lock:
        while _idle.get(key):
            runner = _idle[key].pop()
            if runner.alive():
                return runner
            runner.close()
    return _Runner(limits)


def _release(runner: _Runner, limits: Limits) -> None:
    if runner.alive():
        with _idle_lock:
            _idle.setdefault((limits.memory_mb, limits.file_mb), []).append(runner)


def prepare(job: Job, job_dir: Path) -> None:
    """Lay out a job's folder: the student's file, the inputs, and what the runner needs to know."""
    for sub in ("work", "out", "tmp"):
        (job_dir / sub).mkdir(parents=True)
    (job_dir / "work" / job.workspace_name).write_bytes(job.workspace)
    (job_dir / "inputs.npz").write_bytes(job.inputs)
    limits = job.limits
    spec = {"module": job.module, "exercises": job.exercises, "workspace": job.workspace_name,
            "limits": {"cpu_seconds": limits.cpu_seconds, "wall_seconds": limits.wall_seconds}}
    (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")


def run_job(job: Job) -> JobResult:
    """Grade one submission in the sandbox; never raises for anything the submission does."""
    if os.name != "posix":
        raise RuntimeError("tito grade autograde: sandboxed grading needs Linux or macOS (POSIX process limits)")
    started = time.monotonic()
    runner = _acquire(job.limits)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=runner.pool))
    try:
        prepare(job, job_dir)
        budget = len(job.exercises) * (job.limits.wall_seconds + 2) + 30
        try:
            messages, timed_out = runner.run(job, job_dir, budget)
        except RunnerDied:  # not the submission's doing where signals are scoped: the job is retried next run
            runner.close()
            raise
        return JobResult(
            key=job.key,
            messages=messages,
            files=_result_files(job_dir / "out", job.limits.file_mb << 20),
            log=runner.log_text() if timed_out else "",
            timed_out=timed_out,
            seconds=round(time.monotonic() - started, 3),
        )
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
        _release(runner, job.limits)


def run_job_plain(job: dict) -> dict:
    """:func:`run_job` on and to plain dictionaries: what a Dask task runs."""
    job = dict(job, limits=Limits(**job["limits"]))
    return asdict(run_job(Job(**job)))


def job_plain(job: Job) -> dict:
    return asdict(job)


def result_from_plain(plain: dict) -> JobResult:
    return JobResult(**plain)


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
