"""Local backend of a batch: `jobs` worker processes on this machine, each running `worker.restore_task`.

Workers are spawned (not forked: onnxruntime and Numba threads do not survive a fork), ignore SIGINT
(the parent decides what stops), remove their temporary file and exit on SIGTERM, and get SIGTERM from
the kernel when their parent dies (Linux `PR_SET_PDEATHSIG`), so that a killed run leaves no worker
writing behind it. Each builds one `Restorer` before its first file and reuses it. The parent hands one
task at a time to each idle worker over a pipe; a worker that dies gives its file to a fresh worker,
WORKER_ATTEMPTS times at most.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections import deque
from typing import Any, Callable, Sequence

from realtime.batch.engine_spec import EngineSpec
from realtime.batch.worker import FileOutcome, FileTask, restore_task, worker_restorer
from realtime.errors import GapfillError

WORKER_ATTEMPTS = 2  # a file whose worker process dies is given to a fresh worker once more


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds restore_file, which removes its temporary file


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(1)


def _exit_description(exitcode: int | None) -> str:
    """'exit status N' or 'killed by SIGNAME' for a process's exit code."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _worker_main(connection: multiprocessing.connection.Connection, engine: EngineSpec, parent_pid: int) -> None:
    """A local worker: build the Restorer, then restore the tasks the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent(parent_pid)
    try:
        worker_restorer(engine)
    except GapfillError as exc:
        connection.send(("error", str(exc)))
        return
    connection.send(("ready", None))
    while (task := connection.recv()) is not None:
        try:
            outcome = restore_task(task)
        except Exception as exc:  # noqa: BLE001 - one file's internal error must not stop the others
            outcome = FileOutcome(task.input, task.output, "failed", task.audio_s,
                                  reason=f"internal error restoring '{task.input}': {type(exc).__name__}: {exc}")
        connection.send(("outcome", outcome))


class _LocalWorker:
    """One spawned worker process, its end of the pipe and the task it is restoring."""

    def __init__(self, context: Any, engine: EngineSpec) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_end, engine, os.getpid()), daemon=True)
        self.process.start()
        child_end.close()
        self.task: FileTask | None = None

    def send(self, task: FileTask) -> None:
        """Hand `task` to the worker; if it has just died, its sentinel will return the task."""
        self.task = task
        try:
            self.connection.send(task)
        except OSError:
            pass

    def stop(self, terminate: bool) -> None:
        """End the process: ask it to (None), or SIGTERM it; SIGKILL after 10 s."""
        if self.process.is_alive():
            try:
                if terminate:
                    self.process.terminate()
                else:
                    self.connection.send(None)
            except OSError:
                pass
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.connection.close()


def run_local(
    tasks: Sequence[FileTask], jobs: int, on_outcome: Callable[[FileOutcome], None],
    on_tick: Callable[[], None],
) -> None:
    """Restore `tasks` in `jobs` spawned worker processes, calling `on_outcome` for each file as it ends.

    `on_tick` is called about 5 times a second. A worker that dies gives its file to a fresh worker,
    WORKER_ATTEMPTS times at most. A worker that cannot build its engine stops the run (GapfillError).
    """
    if not tasks:
        return
    context = multiprocessing.get_context("spawn")
    engine = tasks[0].engine
    pending = deque(tasks)
    attempts: dict[str, int] = {}
    started: list[_LocalWorker] = []

    def start() -> _LocalWorker:
        started.append(_LocalWorker(context, engine))
        return started[-1]

    workers = [start() for _ in range(min(jobs, len(tasks)))]
    clean = False
    try:
        while pending or any(w.task for w in workers):
            for worker in workers:
                if worker.task is None and pending:
                    task = pending.popleft()
                    attempts[task.output] = attempts.get(task.output, 0) + 1
                    worker.send(task)
            waitables = [w.connection for w in workers] + [w.process.sentinel for w in workers]
            ready = set(multiprocessing.connection.wait(waitables, timeout=0.2))
            alive = []
            for worker in workers:
                died = worker.process.sentinel in ready
                if worker.connection in ready:
                    try:
                        kind, value = worker.connection.recv()
                    except (EOFError, OSError):
                        kind, value, died = "", None, True
                    if kind == "error":
                        raise GapfillError(value)
                    if kind == "outcome":
                        worker.task = None
                        on_outcome(value)
                if not died:
                    alive.append(worker)
                    continue
                worker.stop(terminate=True)
                lost = worker.task
                if lost is not None and attempts[lost.output] < WORKER_ATTEMPTS:
                    pending.appendleft(lost)
                elif lost is not None:
                    on_outcome(FileOutcome(lost.input, lost.output, "failed", lost.audio_s, reason=(
                        f"cannot restore '{lost.input}': its worker process died {WORKER_ATTEMPTS} times "
                        f"({_exit_description(worker.process.exitcode)})")))
                if pending:
                    alive.append(start())
            workers = alive
            on_tick()
        clean = True
    finally:
        for worker in started:
            worker.stop(terminate=not clean)
