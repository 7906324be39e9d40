"""Batch front end (`gapfill restore IN... -o OUTDIR`): whole folders restored in parallel, resumably.

Plan: the inputs (files; folders with `recursive`, whose audio files are those with an AUDIO_SUFFIXES
suffix; the lines of a list file) become one `FileTask` per file. Each output lies at OUTDIR/<the input's
path below the inputs' common folder>, with the suffix of the output format (`a/b/x.mp3` -> `OUTDIR/b/x.flac`
for inputs `a/b` and `a/c`). Two inputs with the same output, or an output that is an input, stop the run
before it starts.

Complete outputs are skipped: beside each output `NAME` lies a sidecar `.NAME.gapfill.json`, written with
`complete: false` before restoring and `complete: true` (with the output's size) only after `restore_file`
has renamed the finished output into place. An output is complete when its sidecar is complete and still
matches the input's size and mtime, the output's size and the engine fingerprint (the model file's bytes,
the effective config, gapfill's version and the output options). An output without any sidecar was not
written by a batch: it is reported and left alone unless `force`.

Interrupted runs: `restore_file` writes a hidden temporary file and renames it only when complete, so an
output is complete or absent; temporary files left by a killed worker are removed before its output is
restored again.

Run: the tasks, longest first, go to `jobs` local worker processes (realtime/localpool.py) or to a Dask
cluster (realtime/cluster.py), which both run `restore_task`; every worker builds one `Restorer`
(model.threads 1) and reuses it for every file. One file that cannot be restored is reported as one line
and the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import resource
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from realtime import __version__
from realtime.engine.config import EngineConfig, load_config
from realtime.errors import GapfillError
from realtime.batch.progress import BatchProgress, format_duration, hours_per_hour

if TYPE_CHECKING:
    from realtime.engine.restorer import Restorer

AUDIO_SUFFIXES = frozenset(
    (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf",
     ".w64", ".rf64")
)
BATCH_FORMATS = ("flac", "wav")
SIDECAR_SUFFIX = ".gapfill.json"
SIDECAR_VERSION = 1
REPORT_VERSION = 1


# -- engine --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineSpec:
    """What every worker builds its `Restorer` from: the effective config (model.threads 1), the output
    options passed to `restore_file`, and their fingerprint."""

    config: EngineConfig
    options: dict[str, Any]
    fingerprint: str


def engine_fingerprint(config: EngineConfig, options: dict[str, Any]) -> str:
    """sha256 (hex) of the model file's bytes, the effective config, gapfill's version and `options`.

    The model's path is left out (workers may install gapfill elsewhere); its bytes are in.
    """
    from realtime.engine.model import shipped_model_path

    setting = config.model["path"]
    digest = hashlib.sha256()
    facts = {
        "gapfill": __version__,
        "model": dict(config.model, path="passthrough" if setting == "passthrough" else "file"),
        "stft": config.stft, "phase": config.phase, "gate": config.gate, "options": options,
    }
    digest.update(json.dumps(facts, sort_keys=True).encode())
    if setting != "passthrough":
        model_path = shipped_model_path() if setting == "default" else Path(setting).expanduser()
        try:
            with open(model_path, "rb") as model_file:
                for chunk in iter(lambda: model_file.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise GapfillError(f"cannot load model '{model_path}': {(exc.strerror or str(exc)).lower()}") from None
    return digest.hexdigest()


def engine_spec(config_path: str | None, options: dict[str, Any] | None = None) -> EngineSpec:
    """The engine every worker runs: the config at `config_path` with one onnxruntime thread."""
    config = load_config(config_path)
    config = dataclasses.replace(config, model=dict(config.model, threads=1), source=None)
    options = dict(options or {})
    return EngineSpec(config, options, engine_fingerprint(config, options))


# -- tasks and outcomes --------------------------------------------------------------------------
@dataclass(frozen=True)
class FileTask:
    """One file to restore: absolute input and output paths, the engine, the expected audio length."""

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


# -- sidecars ------------------------------------------------------------------------------------
def sidecar_path(output: str | Path) -> Path:
    """The sidecar of an output: `.NAME.gapfill.json` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}{SIDECAR_SUFFIX}")


def read_sidecar(output: str | Path) -> dict[str, Any] | None:
    """The sidecar of `output` as a dict, or None when it is missing or unreadable."""
    try:
        record = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == SIDECAR_VERSION else None


def _write_sidecar(output: Path, record: dict[str, Any]) -> None:
    """Write the sidecar of `output` atomically (temporary name, then rename)."""
    target = sidecar_path(output)
    temp = target.with_name(f"{target.name}.partial-{secrets.token_hex(4)}")
    try:
        temp.write_text(json.dumps(dict(record, version=SIDECAR_VERSION), indent=1), encoding="utf-8")
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise GapfillError(f"cannot write '{target}': {(exc.strerror or str(exc)).lower()}") from None


def _input_identity(path: str) -> dict[str, int] | None:
    """The input's size (bytes) and mtime (ns), or None when it cannot be stat'ed."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}


def is_complete(task: FileTask) -> dict[str, Any] | None:
    """The sidecar of `task`'s output when it shows a complete output of this input and engine, else None."""
    record = read_sidecar(task.output)
    identity = _input_identity(task.input)
    if record is None or identity is None or not record.get("complete"):
        return None
    try:
        output_size = os.stat(task.output).st_size
    except OSError:
        return None
    same = (record.get("engine") == task.engine.fingerprint and record.get("output_size") == output_size
            and all(record.get(key) == value for key, value in identity.items()))
    return record if same else None


def _stale_partials(output: Path) -> list[Path]:
    """Temporary files of `output` and of its sidecar left by a killed run (restore_file's naming:
    `.STEM.partial-XXXXXXXX.SUFFIX`; sidecars: `.NAME.gapfill.json.partial-XXXXXXXX`)."""
    patterns = (
        re.compile(rf"\.{re.escape(output.stem)}\.partial-[0-9a-f]{{8}}{re.escape(output.suffix)}"),
        re.compile(rf"{re.escape(sidecar_path(output).name)}\.partial-[0-9a-f]{{8}}"),
    )
    try:
        names = os.listdir(output.parent)
    except OSError:
        return []
    return [output.parent / name for name in names if any(p.fullmatch(name) for p in patterns)]


# -- the per-file task (runs in a worker) --------------------------------------------------------
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
    """Restore `task` between an incomplete and a complete sidecar; returns restore_file's record."""
    from realtime.frontends.audiofile import restore_file

    output = Path(task.output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GapfillError(f"cannot write '{output}': {(exc.strerror or str(exc)).lower()}") from None
    for stale in _stale_partials(output):
        stale.unlink(missing_ok=True)
    identity = _input_identity(task.input) or {}
    record = {"input": task.input, "engine": task.engine.fingerprint, **identity}
    _write_sidecar(output, dict(record, complete=False))
    try:
        result = restore_file(restorer, task.input, task.output, force=os.path.lexists(output),
                              **task.engine.options)
    except BaseException:
        if not os.path.lexists(output):
            sidecar_path(output).unlink(missing_ok=True)
        raise
    stats = result.to_json()
    _write_sidecar(output, dict(record, complete=True, output_size=output.stat().st_size,
                                audio_s=result.output_frames / result.output_rate_hz, stats=stats))
    return stats


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- planning ------------------------------------------------------------------------------------
def discover_inputs(
    inputs: Sequence[str], recursive: bool, from_list: str | None, output_dir: str
) -> tuple[list[str], str]:
    """Absolute input file paths (sorted, each once) and the folder their outputs mirror.

    Named files are taken whatever their suffix (a missing one is reported when restored); folders
    (only with `recursive`) give their files with AUDIO_SUFFIXES, hidden names and `output_dir` left out.
    """
    named = list(inputs)
    if from_list is not None:
        try:
            text = Path(from_list).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise GapfillError(f"cannot read list '{from_list}': {reason.lower()}") from None
        named += [line.strip() for line in text.splitlines() if line.strip()]
    if not named:
        raise GapfillError("nothing to restore: give input files or folders, or --from-list FILE")
    skip_dir = os.path.realpath(output_dir)
    files: list[str] = []
    roots: list[str] = []
    for name in named:
        path = os.path.abspath(name)
        if os.path.isdir(path):
            if not recursive:
                raise GapfillError(f"'{name}' is a folder; use --recursive to restore the audio files in it")
            roots.append(path)
            files += _audio_files_below(path, skip_dir)
        else:
            roots.append(os.path.dirname(path))
            files.append(path)
    return sorted(set(files)), os.path.commonpath(roots)


def _audio_files_below(folder: str, skip_dir: str) -> list[str]:
    """Files with AUDIO_SUFFIXES below `folder`, hidden names and the folder `skip_dir` left out."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and os.path.realpath(os.path.join(parent, d)) != skip_dir]
        found += [os.path.join(parent, n) for n in names
                  if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_SUFFIXES]
    return found


def output_paths(files: Sequence[str], root: str, output_dir: str, fmt: str) -> list[str]:
    """Output path of each input: OUTDIR/<path below root> with the suffix `.fmt`; refuses clashes."""
    outputs = [
        os.path.join(os.path.abspath(output_dir), str(Path(os.path.relpath(f, root)).with_suffix(f".{fmt}")))
        for f in files
    ]
    first_input: dict[str, str] = {}
    real_inputs = {os.path.realpath(f) for f in files}
    for source, target in zip(files, outputs):
        if target in first_input:
            raise GapfillError(f"'{first_input[target]}' and '{source}' would both be restored to '{target}'")
        if os.path.realpath(target) in real_inputs:
            raise GapfillError(f"restoring '{source}' would overwrite an input ('{target}'); choose another -o")
        first_input[target] = source
    return outputs


@dataclass
class BatchPlan:
    """Tasks to run (longest first) and the outcomes known before running (skipped, failed)."""

    tasks: list[FileTask] = field(default_factory=list)
    known: list[FileOutcome] = field(default_factory=list)


def plan_batch(files: Sequence[str], outputs: Sequence[str], engine: EngineSpec, force: bool) -> BatchPlan:
    """Decide for each input: skip (complete output), fail (unreadable input, or an output a batch did
    not write) or restore."""
    from realtime.frontends.audiofile import open_input

    plan = BatchPlan()
    for source, target in zip(files, outputs):
        task = FileTask(source, target, engine)
        record = None if force else is_complete(task)
        if record is not None:
            plan.known.append(FileOutcome(source, target, "skipped", float(record.get("audio_s", 0.0))))
        elif not force and os.path.lexists(target) and read_sidecar(target) is None:
            reason = f"'{target}' exists and was not written by a batch restore; use --force to replace it"
            plan.known.append(FileOutcome(source, target, "failed", reason=reason))
        else:
            try:
                with open_input(source) as audio:
                    plan.tasks.append(dataclasses.replace(task, audio_s=audio.frames / audio.samplerate))
            except GapfillError as exc:  # what restore_file would say, without starting a worker for it
                plan.known.append(FileOutcome(source, target, "failed", reason=str(exc)))
    plan.tasks.sort(key=lambda t: -t.audio_s)
    return plan


# -- the whole batch -----------------------------------------------------------------------------
class BatchInterrupted(Exception):
    """The run was stopped by a signal (SIGINT or SIGTERM); `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class BatchSummary:
    """What a batch did: every file's outcome, the wall-clock time and how it ran."""

    outcomes: list[FileOutcome]
    wall_s: float
    backend: str
    fingerprint: str
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def restored_audio_s(self) -> float:
        """Seconds of audio restored in this run (skipped files not counted)."""
        return sum(o.audio_s for o in self.outcomes if o.status == "restored")

    def line(self) -> str:
        """The summary as one line, e.g. '7 files: 5 restored, 0 skipped, 2 failed; 3.2 min of audio in
        6.1 s (31.5 h of audio per hour)'."""
        rate = hours_per_hour(self.restored_audio_s, self.wall_s)
        stopped = "stopped early; " if self.interrupted else ""
        return (
            f"{stopped}{len(self.outcomes)} files: {self.count('restored')} restored, "
            f"{self.count('skipped')} skipped (complete), {self.count('failed')} failed; "
            f"{format_duration(self.restored_audio_s)} of audio in {format_duration(self.wall_s)} "
            f"({rate:.1f} h of audio per hour)"
        )

    def report(self) -> dict[str, Any]:
        """The summary and every file's outcome as JSON-ready data (`--report`)."""
        peaks = [o.worker_peak_rss_mib for o in self.outcomes if o.worker_peak_rss_mib is not None]
        return {
            "version": REPORT_VERSION,
            "gapfill": __version__,
            "engine": self.fingerprint,
            "backend": self.backend,
            "interrupted": self.interrupted,
            "files": {"total": len(self.outcomes), "restored": self.count("restored"),
                      "skipped": self.count("skipped"), "failed": self.count("failed")},
            "audio_hours_restored": self.restored_audio_s / 3600.0,
            "wall_s": self.wall_s,
            "hours_per_hour": hours_per_hour(self.restored_audio_s, self.wall_s),
            "worker_cpu_s": sum(o.cpu_s or 0.0 for o in self.outcomes if o.status == "restored"),
            "worker_peak_rss_mib": max(peaks) if peaks else None,
            "failures": [{"input": o.input, "reason": o.reason} for o in self.outcomes if o.status == "failed"],
            "outcomes": [dataclasses.asdict(o) for o in self.outcomes],
        }


def write_report(summary: BatchSummary, path: str) -> None:
    """Write `summary.report()` as JSON to `path` (temporary name, then rename)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")
    try:
        temp.write_text(json.dumps(summary.report(), indent=2), encoding="utf-8")
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise GapfillError(f"cannot write report '{path}': {(exc.strerror or str(exc)).lower()}") from None


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise BatchInterrupted(signum)


def run_batch(
    inputs: Sequence[str], output_dir: str, *, fmt: str = "flac", recursive: bool = False,
    from_list: str | None = None, jobs: int = 1, scheduler: str | None = None,
    config_path: str | None = None, force: bool = False, report_path: str | None = None,
    options: dict[str, Any] | None = None, progress_stream: Any = None,
) -> BatchSummary:
    """Restore every input into `output_dir` (see the module docstring); returns the summary.

    Failures are printed one line each as they happen and the summary line at the end, on stderr;
    `report_path` receives the report JSON. Raises GapfillError for a problem that stops the whole run
    and BatchInterrupted on SIGINT/SIGTERM (after writing the report).
    """
    if fmt not in BATCH_FORMATS:
        raise GapfillError(f"output format must be one of {', '.join(BATCH_FORMATS)}, got {fmt!r}")
    started = time.monotonic()
    engine = engine_spec(config_path, options)
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


# -- the command line (`gapfill restore ... -o OUTDIR`, registered by realtime/cli.py) -------------
_BATCH_ONLY = {"recursive": "--recursive", "from_list": "--from-list", "format": "--format",
               "jobs": "--jobs", "scheduler": "--scheduler", "report": "--report"}


def add_batch_arguments(parser: Any) -> None:
    """The batch options of `gapfill restore`."""
    from realtime.cli.arguments import positive_int

    group = parser.add_argument_group("many files (IN... -o OUTDIR)")
    group.add_argument("-o", "--output-dir", metavar="OUTDIR",
                       help="restore every IN into OUTDIR, mirroring the folders they are in")
    group.add_argument("--recursive", action="store_true", default=None,
                       help="restore the audio files in folders given as IN, and in their subfolders")
    group.add_argument("--from-list", metavar="FILE", help="also restore the paths in FILE, one a line")
    group.add_argument("--format", choices=BATCH_FORMATS, help="output format (default flac)")
    group.add_argument("-j", "--jobs", type=positive_int, metavar="N",
                       help=f"worker processes (default: the cores available, {available_cores()} here)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster at ADDRESS (tcp://HOST:8786) instead; needs "
                       "gapfill[cluster] and the same paths on every worker")
    group.add_argument("--report", metavar="JSON", help="write the summary and every file's outcome here")


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def single_file_paths(args: Any) -> tuple[str, str]:
    """IN and OUT of the one-file form `gapfill restore IN OUT`; refuses batch-only options without -o."""
    given = [flag for name, flag in _BATCH_ONLY.items() if getattr(args, name) is not None]
    if given:
        raise GapfillError(f"{', '.join(given)} need -o OUTDIR (gapfill restore IN... -o OUTDIR)")
    if len(args.paths) != 2:
        raise GapfillError("restore takes IN OUT (one file), or IN... -o OUTDIR (many files)")
    return args.paths[0], args.paths[1]


def batch_command(args: Any) -> int:
    """`gapfill restore IN... -o OUTDIR`: 0 when every file is restored or complete, 2 when any failed,
    128 + signal number when interrupted."""
    if getattr(args, "stats_json", None) is not None:
        raise GapfillError("--stats-json is for one file; with -o OUTDIR, --report JSON holds every file's")
    if args.scheduler and args.jobs is not None:
        raise GapfillError("--jobs sets local workers; a Dask cluster has its own (dask worker --nworkers N)")
    rate = getattr(args, "rate", None)
    try:
        summary = run_batch(
            args.paths, args.output_dir, fmt=args.format or "flac", recursive=bool(args.recursive),
            from_list=args.from_list, jobs=args.jobs or available_cores(), scheduler=args.scheduler,
            config_path=args.config, force=args.force, report_path=args.report,
            options={} if rate is None else {"rate": rate},
        )
    except BatchInterrupted as exc:
        return 128 + exc.signum
    return 2 if summary.count("failed") else 0
