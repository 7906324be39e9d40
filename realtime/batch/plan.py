"""The plan of a batch: which files, where their outputs go, and which to skip, fail or restore.

`discover_inputs`, `output_paths`, `plan_batch`; the rules are in realtime/batch/__init__.py. Importing
this module loads neither the engine nor numpy (the command line's parser reads BATCH_FORMATS).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from realtime.batch.sidecar import complete_record, read_sidecar
from realtime.errors import GapfillError

if TYPE_CHECKING:
    from realtime.batch.engine_spec import EngineSpec
    from realtime.batch.worker import FileOutcome, FileTask

AUDIO_SUFFIXES = frozenset(
    (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf",
     ".w64", ".rf64", ".mp2")  # libsndfile's
    + (".m4a", ".m4b", ".mp4", ".aac", ".wma", ".webm", ".mka", ".ac3", ".eac3", ".amr", ".3gp", ".ape",
       ".wv", ".mpc", ".tta")  # FFmpeg's, through PyAV (realtime.frontends.decoder)
)
BATCH_FORMATS = ("flac", "wav")


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
    from realtime.batch.worker import FileOutcome, FileTask
    from realtime.frontends.audiofile import open_audio

    plan = BatchPlan()
    for source, target in zip(files, outputs):
        task = FileTask(source, target, engine)
        record = None if force else complete_record(source, target, engine.fingerprint)
        if record is not None:
            plan.known.append(FileOutcome(source, target, "skipped", float(record.get("audio_s", 0.0))))
        elif not force and os.path.lexists(target) and read_sidecar(target) is None:
            reason = f"'{target}' exists and was not written by a batch restore; use --force to replace it"
            plan.known.append(FileOutcome(source, target, "failed", reason=reason))
        else:
            try:
                with open_audio(source) as audio:
                    plan.tasks.append(dataclasses.replace(task, audio_s=audio.frames / audio.samplerate))
            except GapfillError as exc:  # what restore_file would say, without starting a worker for it
                plan.known.append(FileOutcome(source, target, "failed", reason=str(exc)))
    plan.tasks.sort(key=lambda t: -t.audio_s)
    return plan
