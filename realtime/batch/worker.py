"""One file of a batch, restored in a worker: `restore_task(FileTask) -> FileOutcome`.

The file is restored between an incomplete and a complete sidecar with this worker's `Restorer` (one per
worker thread, built on first use and reused for every file).

Local worker processes (localpool.py) and Dask workers (cluster.py) both call `restore_task`; tasks and
outcomes are pickled between processes.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtime.atomic import leftover_temporaries
from realtime.batch.engine_spec import EngineSpec, engine_fingerprint
from realtime.batch.sidecar import input_identity, sidecar_path, write_sidecar
from realtime.errors import GapfillError

if TYPE_CHECKING:  # the engine is imported by the worker that restores, not when the command line is parsed
    from realtime.engine.restorer import Restorer


@dataclass(frozen=True)
class FileTask:
    """One file to restore: absolute input and output paths, the engine, the expected audio length (s)."""

    input: str
    output: str
    engine: EngineSpec
    audio_s: float = 0.0  # from the input's header


@dataclass
class FileOutcome:
    """What became of one input: status 'restored', 'skipped' (complete already) or 'failed'."""

    input: str
    output: str
    status: str
    audio_s: float = 0.0
    wall_s: float = 0.0
    reason: str | None = None
    worker_peak_rss_mib: float | None = None
    cpu_s: float | None = None  # CPU time of the worker thread that restored it
    stats: dict[str, Any] | None = None  # restore_file's record (rates, frames, latency, codec report)


_worker_state = threading.local()  # one Restorer per worker thread, reused across files


def worker_restorer(engine: EngineSpec) -> Restorer:
    """This thread's Restorer for `engine`, built on first use; checks the worker has the same engine."""
    if getattr(_worker_state, "fingerprint", None) != engine.fingerprint:
        from realtime.engine.restorer import Restorer

        here = engine_fingerprint(engine.config, engine.options)
        if here != engine.fingerprint:
            raise GapfillError(
                f"this worker's model or gapfill version differs from the client's (engine {here[:12]}, "
                f"expected {engine.fingerprint[:12]}); install the same gapfill everywhere"
            )
        _worker_state.restorer = Restorer(engine.config)
        _worker_state.fingerprint = engine.fingerprint
    return _worker_state.restorer


def restore_task(task: FileTask) -> FileOutcome:
    """Restore one file with this worker's Restorer; GapfillError becomes a 'failed' outcome.

    Other exceptions propagate (a Dask cluster retries them).
    """
    started, cpu_started = time.monotonic(), time.thread_time()
    try:
        stats = _restore_with_sidecar(worker_restorer(task.engine), task)
    except GapfillError as exc:
        return FileOutcome(task.input, task.output, "failed", task.audio_s, time.monotonic() - started,
                           str(exc), _peak_rss_mib(), time.thread_time() - cpu_started)
    audio_s = stats["frames"]["output"] / stats["rates"]["output_hz"]
    return FileOutcome(task.input, task.output, "restored", audio_s, time.monotonic() - started,
                       None, _peak_rss_mib(), time.thread_time() - cpu_started, stats)


def _restore_with_sidecar(restorer: Restorer, task: FileTask) -> dict[str, Any]:
    """Restore `task` between an incomplete and a complete sidecar; returns restore_file's record.

    Temporary files of the output and of its sidecar left by a killed worker are removed first.
    """
    from realtime.frontends.audiofile import restore_file

    output = Path(task.output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GapfillError(f"cannot write '{output}': {(exc.strerror or str(exc)).lower()}") from None
    for stale in leftover_temporaries(output) + leftover_temporaries(sidecar_path(output)):
        stale.unlink(missing_ok=True)
    identity = input_identity(task.input) or {}
    record = {"input": task.input, "engine": task.engine.fingerprint, **identity}
    write_sidecar(output, dict(record, complete=False))
    try:
        result = restore_file(restorer, task.input, task.output, force=os.path.lexists(output),
                              **task.engine.options)
    except BaseException:
        if not os.path.lexists(output):
            sidecar_path(output).unlink(missing_ok=True)
        raise
    stats = result.to_json()
    write_sidecar(output, dict(record, complete=True, output_size=output.stat().st_size,
                               audio_s=result.output_frames / result.output_rate_hz, stats=stats))
    return stats


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
