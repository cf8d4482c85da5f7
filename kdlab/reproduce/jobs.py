"""A small dependency scheduler for ``kdlab reproduce``: stages run as subprocesses, at most N at a time.

A :class:`Job` names the jobs it waits for, an estimated cost, how to tell that it is done and how to run
it. ``command()`` builds its argv when it starts (its dependencies are done by then); it runs as a
subprocess with one thread (``OMP_NUM_THREADS=1``), its output appended to its own log file. With
``max_jobs=1`` the jobs run one after the other in this process through ``inline()`` (output on the
terminal, tracebacks kept: for debugging); a job without ``inline`` then runs as a subprocess.

Ready jobs start in order of their longest remaining path (their own cost plus the costliest chain of jobs
waiting for them), so the critical chain is never starved. Jobs that are done already are skipped, at the
start of a run and again when they become ready (another job may have done their work). A failing
job stops the run: the running ones are terminated (they resume on the next run) and :class:`StageFailed`
names the job and its log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

POLL_S = 0.1  # how often running jobs are checked
STOP_GRACE_S = 10.0  # how long a terminated job may take to exit before it is killed


def log(msg: str) -> None:
    """One progress line of ``kdlab reproduce`` on stdout."""
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass(frozen=True)
class Job:
    """One stage: ``command()`` → argv of its subprocess, ``done()`` → finished already (skip it)."""

    name: str
    command: Callable[[], list[str]]
    log: Path
    done: Callable[[], bool]
    deps: tuple[str, ...] = ()
    cost: float = 1.0  # estimated run time (any unit, the same for all jobs): orders the ready jobs
    inline: Callable[[], object] | None = None  # in-process equivalent, used when max_jobs == 1


class StageFailed(RuntimeError):
    """A job failed; the message (one line) names it and its log file."""


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    out: IO[str]
    started: float = field(default_factory=time.perf_counter)


def check_graph(jobs: list[Job]) -> dict[str, Job]:
    """Jobs by name; raise ValueError for a repeated name or an unknown dependency (cycles: `priorities`)."""
    by_name: dict[str, Job] = {}
    for job in jobs:
        if job.name in by_name:
            raise ValueError(f"job {job.name!r} is defined twice")
        by_name[job.name] = job
    for job in jobs:
        unknown = [d for d in job.deps if d not in by_name]
        if unknown:
            raise ValueError(f"job {job.name!r} waits for unknown job(s) {unknown}")
    return by_name


def priorities(jobs: dict[str, Job]) -> dict[str, float]:
    """Longest remaining path of every job: its cost plus the costliest chain of jobs that wait for it."""
    waiting: dict[str, list[str]] = {name: [] for name in jobs}
    for job in jobs.values():
        for dep in job.deps:
            waiting[dep].append(job.name)
    memo: dict[str, float] = {}

    def path(name: str, stack: tuple[str, ...]) -> float:
        if name in stack:
            raise ValueError(f"jobs wait for each other in a cycle: {' -> '.join((*stack, name))}")
        if name not in memo:
            memo[name] = jobs[name].cost + max((path(w, (*stack, name)) for w in waiting[name]), default=0.0)
        return memo[name]

    return {name: path(name, ()) for name in jobs}


def ready(pending: list[Job], finished: set[str], prio: dict[str, float]) -> list[Job]:
    """Pending jobs whose dependencies are all finished, highest priority first (ties: list order)."""
    order = {job.name: i for i, job in enumerate(pending)}
    jobs = [j for j in pending if all(d in finished for d in j.deps)]
    return sorted(jobs, key=lambda j: (-prio[j.name], order[j.name]))


def skip_done_ready(pending: list[Job], finished: set[str], prio: dict[str, float],
                    say: Callable[[str], None]) -> None:
    """Move ready jobs that are done already (another job did their work) from ``pending`` to ``finished``."""
    while done := [j for j in ready(pending, finished, prio) if j.done()]:
        for job in done:
            say(f"{job.name}: done already, skipping")
            pending.remove(job)
            finished.add(job.name)


def run_jobs(jobs: list[Job], max_jobs: int, say: Callable[[str], None] = log) -> dict[str, float]:
    """Run every job that is not done yet, at most ``max_jobs`` at a time; returns {job: wall seconds}."""
    prio = priorities(check_graph(jobs))
    finished: set[str] = set()
    for job in jobs:
        if job.done():
            say(f"{job.name}: done already, skipping")
            finished.add(job.name)
    pending = [j for j in jobs if j.name not in finished]
    if max_jobs <= 1:
        return _run_sequential(pending, finished, prio, say)
    return _run_parallel(pending, finished, prio, max_jobs, say)


def _run_sequential(pending: list[Job], finished: set[str], prio: dict[str, float],
                    say: Callable[[str], None]) -> dict[str, float]:
    """One job at a time, in this process where the job allows it."""
    times: dict[str, float] = {}
    while pending:
        skip_done_ready(pending, finished, prio, say)
        if not pending:
            break
        job = ready(pending, finished, prio)[0]  # check_graph + priorities: a job is always ready
        pending.remove(job)
        started = time.perf_counter()
        if job.inline is None:
            _wait(_start(job, say), say)
        else:
            say(f"{job.name}: started (in process)")
            job.inline()
        times[job.name] = _finished(job, started, say)
        finished.add(job.name)
    return times


def _run_parallel(pending: list[Job], finished: set[str], prio: dict[str, float], max_jobs: int,
                  say: Callable[[str], None]) -> dict[str, float]:
    """Subprocesses, at most ``max_jobs`` at a time; a failure terminates the others and raises."""
    times: dict[str, float] = {}
    running: list[_Running] = []
    previous = _exit_on_sigterm()
    try:
        while pending or running:
            skip_done_ready(pending, finished, prio, say)
            for job in ready(pending, finished, prio)[: max_jobs - len(running)]:
                pending.remove(job)
                running.append(_start(job, say))
            time.sleep(POLL_S)
            for run in [r for r in running if r.proc.poll() is not None]:
                running.remove(run)
                times[run.job.name] = _wait(run, say)
                finished.add(run.job.name)
    finally:
        _stop(running, say)
        _restore_sigterm(previous)
    return times


def _exit_on_sigterm() -> object:
    """Make SIGTERM raise SystemExit (so running jobs are stopped too); returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, leave)


def _restore_sigterm(previous: object) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def one_thread_env() -> dict[str, str]:
    """The environment of a job's subprocess: one OpenMP / MKL thread, unbuffered output."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _start(job: Job, say: Callable[[str], None]) -> _Running:
    """Start ``job``'s subprocess, its output appended to its log file."""
    argv = job.command()
    job.log.parent.mkdir(parents=True, exist_ok=True)
    out = job.log.open("a", encoding="utf-8")
    out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} kdlab reproduce runs: {' '.join(argv)}\n")
    out.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=one_thread_env())
    say(f"{job.name}: started (log: {job.log})")
    return _Running(job, proc, out)


def _wait(run: _Running, say: Callable[[str], None]) -> float:
    """Wait for a started job; its wall seconds, or StageFailed when it failed."""
    code = run.proc.wait()
    run.out.close()
    if code != 0:
        raise StageFailed(f"stage {run.job.name} failed (exit code {code}); see {run.job.log}")
    return _finished(run.job, run.started, say)


def _finished(job: Job, started: float, say: Callable[[str], None]) -> float:
    """Check that ``job`` marked itself done; report and return its wall seconds."""
    if not job.done():
        raise StageFailed(f"stage {job.name} ended without finishing its work; see {job.log}")
    seconds = time.perf_counter() - started
    say(f"{job.name}: finished in {seconds:.1f} s")
    return seconds


def _stop(running: list[_Running], say: Callable[[str], None]) -> None:
    """Terminate jobs still running (after a failure or an interrupt); they resume on the next run."""
    for run in running:
        if run.proc.poll() is None:
            run.proc.terminate()
            say(f"{run.job.name}: stopped (it resumes on the next run)")
    for run in running:
        try:
            run.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
        run.out.close()
