"""Where grading jobs run: threads on this machine (``--jobs N``) or a Dask cluster (``--scheduler``).

Either way a job is :func:`tinytorch.grading.sandbox.run_job`, which only starts the sandboxed
child and returns its raw results; results come back here as they complete, and the caller (the
only writer of the gradebook) records them one at a time. Threads suffice locally: each job's
work happens in its own child process.

On Dask, each job is submitted with ``pure=False`` under a key made of the submission's id and a
fresh random part, so a regrade of an unchanged submission is run again, never answered from the
cluster's memory of an earlier task with the same arguments.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Iterator

from .sandbox import Job, JobResult, job_plain, result_from_plain, run_job, run_job_plain


@dataclass
class Failed:
    """A job the grading machinery itself could not run (not the submission's fault): retried next time."""

    key: str
    error: str


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def task_key(submission: int) -> str:
    """A Dask key unique to this attempt at grading ``submission``."""
    return f"tinytorch-grade-{submission}-{uuid.uuid4().hex}"


def run_jobs(jobs: list[Job], workers: int | None = None, scheduler: Any = None) -> Iterator[JobResult | Failed]:
    """Run ``jobs``, yielding each result as it completes (in any order)."""
    if not jobs:
        return iter(())
    if scheduler is not None:
        return _on_dask(jobs, scheduler)
    return _on_threads(jobs, workers or default_jobs())


def _on_threads(jobs: list[Job], workers: int) -> Iterator[JobResult | Failed]:
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tinytorch-grade") as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(futures):
            error = future.exception()
            yield Failed(futures[future].key, f"{type(error).__name__}: {error}") if error else future.result()


def _on_dask(jobs: list[Job], scheduler: Any) -> Iterator[JobResult | Failed]:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ImportError('tito grade autograde --scheduler needs Dask: pip install "tinytorch[cluster]"') from None
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = {client.submit(run_job_plain, job_plain(job), key=job.key, pure=False): job for job in jobs}
        for future in dask_completed(list(futures)):
            if future.status == "error":
                error = future.exception()
                yield Failed(futures[future].key, f"{type(error).__name__}: {error}")
            else:
                yield result_from_plain(future.result())
    finally:
        if own:
            client.close()
