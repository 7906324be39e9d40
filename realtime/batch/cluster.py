"""Dask backend of a batch (`gapfill restore IN... -o OUTDIR --scheduler tcp://HOST:8786`).

The same per-file tasks as the local worker processes (`realtime.batch.worker.restore_task`) go to an
existing `dask.distributed` cluster; this module is imported only when --scheduler is given and needs the
`cluster` extra (`pip install 'gapfill[cluster]'`) on the client and on every worker.

Paths: shared storage only. The client, the scheduler's workers and the outputs all see the inputs and
OUTDIR at the same absolute paths (NFS, Lustre, a Kubernetes volume mounted at one path everywhere).
Streaming bytes through Dask would send every input and output through the client and the scheduler's
comms, which makes the client's network the bottleneck of the whole cluster and holds hours of audio in
worker memory as Dask results; with shared storage each worker streams its file from disk to disk block
by block, as locally.

Failures: a GapfillError (bad input) is a result, not retried. Any other exception is retried
`retries` times on submit (a flaky mount); a worker that dies mid-file has its task rescheduled by the
scheduler (up to `distributed.scheduler.allowed-failures` times, then KilledWorker). Each task's key is
derived from its output path and the engine fingerprint, so a file is one task however often it is
submitted, and a rerun on another worker writes its own temporary file and renames it over the same
output: never a duplicate or a partial output.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Sequence

from realtime.batch.worker import FileOutcome, FileTask, restore_task
from realtime.errors import GapfillError

TASK_RETRIES = 2
CONNECT_TIMEOUT_S = 30


def task_key(task: FileTask) -> str:
    """The Dask key of `task`: the same for the same output and engine."""
    digest = hashlib.sha256(f"{task.output}\0{task.engine.fingerprint}".encode()).hexdigest()
    return f"gapfill-restore-{digest[:24]}"


def _connect(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise GapfillError("--scheduler needs Dask: pip install 'gapfill[cluster]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise GapfillError(f"cannot reach the Dask scheduler at '{address}': {exc}") from None


def _failed(task: FileTask, exc: BaseException) -> FileOutcome:
    """The outcome of a task whose retries ran out (or whose workers kept dying)."""
    return FileOutcome(task.input, task.output, "failed", task.audio_s,
                       reason=f"cannot restore '{task.input}' on the cluster: {type(exc).__name__}: {exc}")


def run_on_dask(
    address: str, tasks: Sequence[FileTask], on_outcome: Callable[[FileOutcome], None],
    on_tick: Callable[[], None], retries: int = TASK_RETRIES,
) -> None:
    """Restore `tasks` on the Dask cluster whose scheduler is at `address`, longest first, calling
    `on_outcome` for each file as it ends and `on_tick` about 5 times a second."""
    if not tasks:
        return
    from distributed import as_completed

    with _connect(address) as client:
        futures = {}
        for rank, task in enumerate(tasks):
            future = client.submit(restore_task, task, key=task_key(task), retries=retries,
                                   priority=len(tasks) - rank, pure=False)
            futures[future.key] = (future, task)
        pending = as_completed([future for future, _ in futures.values()])
        try:
            while not pending.is_empty():
                if not pending.has_ready():
                    time.sleep(0.2)
                    on_tick()
                    continue
                for future in pending.next_batch(block=False):
                    _, task = futures.pop(future.key)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 - retries spent, workers died, or cancelled
                        outcome = _failed(task, exc)
                    future.release()
                    on_outcome(outcome)
        except BaseException:
            client.cancel([future for future, _ in futures.values()])
            raise
