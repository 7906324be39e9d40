"""One whole batch, `run_batch`: plan, run on local worker processes or a Dask cluster, report.

Progress and failures are shown as they happen, then the summary line and the `--report` file; SIGINT or
SIGTERM stops it cleanly. The whole design: realtime/batch/__init__.py.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Iterable, Sequence

from realtime.batch.engine_spec import engine_spec
from realtime.batch.plan import BATCH_FORMATS, discover_inputs, output_paths, plan_batch
from realtime.batch.progress import BatchProgress
from realtime.batch.report import BatchSummary, write_report
from realtime.batch.worker import FileOutcome
from realtime.errors import GapfillError


class BatchInterrupted(Exception):
    """The run was stopped by a signal (SIGINT or SIGTERM); `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise BatchInterrupted(signum)


def run_batch(
    inputs: Sequence[str], output_dir: str, *, fmt: str = "flac", recursive: bool = False,
    from_list: str | None = None, jobs: int = 1, scheduler: str | None = None,
    config_path: str | None = None, force: bool = False, report_path: str | None = None,
    options: dict[str, Any] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
    progress_stream: Any = None,
) -> BatchSummary:
    """Restore every input into `output_dir` (see realtime/batch/__init__.py); returns the summary.

    `overrides` (section -> key -> value) go over the config file, as the command's --strength does.
    Failures are printed one line each as they happen and the summary line at the end, on stderr;
    `report_path` receives the report JSON. Raises GapfillError for a problem that stops the whole run
    and BatchInterrupted on SIGINT/SIGTERM (after writing the report).
    """
    if fmt not in BATCH_FORMATS:
        raise GapfillError(f"output format must be one of {', '.join(BATCH_FORMATS)}, got {fmt!r}")
    started = time.monotonic()
    engine = engine_spec(config_path, options, overrides)
    files, root = discover_inputs(inputs, recursive, from_list, output_dir)
    plan = plan_batch(files, output_paths(files, root, output_dir, fmt), engine, force)
    outcomes = list(plan.known)
    progress = BatchProgress(len(plan.tasks), sum(t.audio_s for t in plan.tasks), progress_stream)
    for outcome in plan.known:
        if outcome.status == "failed":
            progress.message(f"gapfill: {outcome.reason}")

    def on_outcome(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "failed":
            progress.message(f"gapfill: {outcome.reason}")
        progress.file_done(outcome.audio_s)

    backend = f"dask {scheduler}" if scheduler else f"local, {jobs} worker processes"
    interrupted: BatchInterrupted | None = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm) if in_main_thread else None
    try:
        if scheduler:
            from realtime.batch.cluster import run_on_dask

            run_on_dask(scheduler, plan.tasks, on_outcome, progress.tick)
        else:
            from realtime.batch.localpool import run_local

            run_local(plan.tasks, jobs, on_outcome, progress.tick)
    except KeyboardInterrupt:
        interrupted = BatchInterrupted(signal.SIGINT)
    except BatchInterrupted as exc:
        interrupted = exc
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        progress.close()
    summary = BatchSummary(_in_input_order(outcomes, files), time.monotonic() - started, backend,
                           engine.fingerprint, interrupted is not None)
    progress.message(f"gapfill: {summary.line()}")
    if report_path:
        write_report(summary, report_path)
    if interrupted is not None:
        raise interrupted
    return summary


def _in_input_order(outcomes: Iterable[FileOutcome], files: Sequence[str]) -> list[FileOutcome]:
    rank = {path: index for index, path in enumerate(files)}
    return sorted(outcomes, key=lambda o: rank.get(o.input, len(rank)))
