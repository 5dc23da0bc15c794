"""The sandboxed runner: a warm process that grades submissions, each in a forked child.

Started by :mod:`tinytorch.grading.sandbox` as ``python -s -B -P runner.py POOL_DIR`` with a
scrubbed environment, in a session of its own, one per grading thread. It imports only the
standard library until it has confined itself (:mod:`.confine`, loaded by its path): a user and
network namespace, limits on memory and file size, Landlock (read the Python installation,
TinyTorch and ``POOL_DIR``; write ``POOL_DIR``; no TCP; no signals beyond its own processes), no
capabilities. Then it imports TinyTorch once, says it is ready, and serves: for each job folder
named on its standard input it forks a *job process*, which

- narrows Landlock to that job's folder (it can neither read nor write another job's) and can no
  longer signal the runner;
- makes the framework's own function for each exercise raise ``SolutionUnavailable`` (wherever it
  is referenced, and in the kernel registry): only in this copy of the process, forked afresh for
  every submission from a runner that never ran a student's code;
- forks, for each exercise, a process that narrows Landlock again (write only ``out/<k>`` and
  ``tmp/<k>``), limits its CPU time, may start no process or thread, sends its output to
  ``out/<k>/output.txt``, closes every other descriptor, imports the student's file and calls the
  exercise on each check's inputs, writing each outcome (plain data, :mod:`.capture`) to
  ``out/<k>/<i>.npz`` as soon as it is known;
- waits for it up to the wall-clock limit, kills it (and, where Landlock can scope signals, every
  process left in the job), and reports how it ended.

Reports are JSON lines on the runner's standard output, a pipe only trusted code holds. Nothing
here decides a grade: the grader reads the outcome files and compares them itself.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time

#: CPU seconds for the runner (its imports, forks and waits) and for each job process's own work
RUNNER_CPU_SECONDS = 3600
JOB_CPU_SECONDS = 120
OUTPUT_NAME = "output.txt"
ERROR_NAME = "error.json"


def _load_confine():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "confine.py")
    spec = importlib.util.spec_from_file_location("tinytorch_grading_confine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def read_paths(pool: str, confine) -> list[str]:
    """What the sandbox may read: the interpreter, its libraries and TinyTorch itself."""
    package = os.path.realpath(os.path.join(pool, "lib", "tinytorch"))
    paths = [p for p in sys.path if p and os.path.isdir(p) and not os.path.realpath(p).startswith(os.path.realpath(pool))]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    return sorted(set(paths)) + list(confine.SYSTEM_READ_PATHS) + [package, os.path.join(pool, "lib")]


def serve(pool: str, memory_bytes: int, file_bytes: int) -> int:
    confine = _load_confine()
    confine.die_with_parent()
    namespaces = confine.enter_namespaces()
    applied = confine.set_limits(RUNNER_CPU_SECONDS, memory_bytes, file_bytes)
    reads = read_paths(pool, confine)
    abi = confine.landlock(reads, [pool])
    dropped = confine.drop_privileges()
    confine.become_subreaper()
    # Signalling everything left in a sandbox with kill(-1) is safe only if the grader is out of reach.
    scoped = abi >= 6 and not _can_signal(os.getppid())
    _say({"sandbox": {"namespaces": namespaces, "limits": applied, "landlock": abi, "signals_scoped": scoped, "capabilities_dropped": dropped}})

    from tinytorch.grading import capture
    from tinytorch.grading.plaindata import load_bundle

    _say({"ready": True})
    for line in sys.stdin:
        job = os.path.join(pool, json.loads(line)["job"])
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = _job_process(job, reads, scoped, confine, capture, load_bundle)
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        _sweep(pid, scoped)
        _say({"done": True, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})
    return 0


def _job_process(job: str, reads: list[str], scoped: bool, confine, capture, load_bundle) -> int:
    """Grade one submission (see the module's docstring); returns the process's exit code."""
    confine.die_with_parent()
    confine.landlock(reads, [job])
    confine.set_limits(JOB_CPU_SECONDS, None, None)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    with open(os.path.join(job, "job.json"), encoding="utf-8") as f:
        spec = json.load(f)
    documents = load_bundle(os.path.join(job, "inputs.npz"))
    block_framework(spec["module"], spec["exercises"], capture.SolutionUnavailable)
    for k, exercise in enumerate(spec["exercises"]):
        checks = [(i, d) for i, d in enumerate(documents) if d.meta.get("exercise") == exercise]
        out, tmp = os.path.join(job, "out", str(k)), os.path.join(job, "tmp", str(k))
        os.makedirs(out, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _exercise_process(job, spec, exercise, checks, out, tmp, reads, confine, capture)
        status, timed_out = _wait(pid, spec["limits"]["wall_seconds"])
        _sweep(pid, scoped)
        _say({
            "exercise": exercise,
            "exit": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
            "timed_out": timed_out,
            "seconds": round(time.monotonic() - started, 3),
        })
    return 0


def _can_signal(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return False
    except ProcessLookupError:
        return False
    return True


def _wait(pid: int, wall_seconds: float) -> tuple[int | None, bool]:
    """Wait for the exercise process; kill it at the deadline. Returns (wait status, timed out)."""
    deadline = time.monotonic() + wall_seconds
    pause = 0.002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
            return status, True
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _sweep(pid: int, scoped: bool) -> None:
    """Kill whatever the exercise left behind (a forked child, a daemon) and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if scoped:
        try:
            os.kill(-1, signal.SIGKILL)  # Landlock scoping: only processes inside this sandbox
        except (ProcessLookupError, PermissionError):
            pass
    # Reap them (orphans come to this process, a subreaper), waiting a moment for the killed to die.
    deadline = time.monotonic() + (2.0 if scoped else 0.0)
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)


def block_framework(module_name: str, exercises: list[str], unavailable: type) -> None:
    """Make the framework's function for each exercise raise ``unavailable`` while grading.

    The function's code is replaced, so every reference to it (``from tinytorch.core.spatial
    import im2col``, ``tt.functional``, the framework's own modules) raises; a name that is a
    kernel is also registered over in the kernel registry, which the compiled twin sits behind.
    """
    import importlib

    from tinytorch.core import kernels

    module = importlib.import_module(module_name)
    registry_block = type(sys)("grading_blocked_kernels")
    for name in exercises:
        message = f"tinytorch's own {name} is not available while {name} is graded: write it yourself"
        namespace: dict = {}
        exec(
            "def blocked(*args, **kwargs):\n"
            f"    raise __import__('tinytorch.grading.capture', fromlist=['x']).SolutionUnavailable({message!r})\n",
            namespace,
        )
        blocker = namespace["blocked"]
        original = getattr(module, name, None)
        if original is not None and hasattr(original, "__code__") and not original.__code__.co_freevars:
            original.__code__, original.__defaults__, original.__kwdefaults__ = blocker.__code__, None, None
        elif original is not None:
            for loaded in list(sys.modules.values()):
                if getattr(loaded, "__name__", "").startswith("tinytorch") and getattr(loaded, name, None) is original:
                    setattr(loaded, name, blocker)
        if name in kernels.KERNEL_NAMES:
            setattr(registry_block, name, blocker)
    if any(hasattr(registry_block, n) for n in exercises):
        kernels.register(registry_block)


def _exercise_process(job, spec, exercise, checks, out, tmp, reads, confine, capture_module) -> None:
    """The forked process of one exercise; never returns."""
    code = 0
    try:
        confine.die_with_parent()
        work = os.path.join(job, "work")
        confine.landlock(reads + [work], [out, tmp])
        confine.set_limits(spec["limits"]["cpu_seconds"], None, None)
        confine.forbid_processes()
        _redirect_output(os.path.join(out, OUTPUT_NAME))
        os.environ["HOME"] = os.environ["TMPDIR"] = tmp
        os.chdir(tmp)
        _run_checks(os.path.join(work, spec["workspace"]), exercise, checks, out, capture_module)
    except BaseException as error:  # the harness must end with _exit, whatever the student did
        _write_error(out, f"{type(error).__name__}: {error}")
        code = 3
    finally:
        os._exit(code)


def _redirect_output(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.closerange(3, 1 << 16)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)


def _write_error(out: str, text: str) -> None:
    try:
        tmp = os.path.join(out, f".{ERROR_NAME}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"error": text[:4000]}, f)
        os.replace(tmp, os.path.join(out, ERROR_NAME))
    except BaseException:  # nothing more can be reported
        pass


def _run_checks(path: str, exercise: str, checks: list, out: str, capture_module) -> None:
    from pathlib import Path

    from tinytorch._sourcefile import import_file
    from tinytorch.grading.plaindata import encode, save_bundle

    try:
        module = import_file(Path(path), "submission", "workspace file")
    except BaseException as error:  # a syntax error, an exception or sys.exit at import time
        _write_error(out, f"the workspace file failed to import: {type(error).__name__}: {error}")
        return
    fn = getattr(module, exercise, None)
    if not callable(fn):
        _write_error(out, f"the workspace file does not define a function {exercise}")
        return
    for i, doc in checks:
        try:
            outcome = capture_module.capture(fn, doc, int(doc.meta["seed"]))
        except BaseException as error:  # the outcome itself could not be encoded
            meta = {"status": "unreadable", "message": f"{type(error).__name__}: {error}"[:500]}
            outcome = encode({"args": None, "value": None}, strict=False, meta=meta)
        sys.stdout.flush()
        save_bundle(os.path.join(out, f"{i}.npz"), [outcome])


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
