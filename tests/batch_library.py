"""A small generated audio library for the batch tests (test_batch.py, test_cluster.py): short MP3s at
22.05, 44.1 and 48 kHz, mono and stereo, in nested folders, plus one corrupt and one empty MP3 and a
text file that is not audio; and what single-file `gapfill restore` makes of each good file."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from realtime.cli.main import main

# relative path -> (sample rate in Hz, channels, seconds); about 3 s of audio in all
GOOD_FILES = {
    "talk/a.mp3": (22_050, 1, 0.8),
    "talk/b.mp3": (44_100, 2, 0.7),
    "music/c.mp3": (48_000, 2, 0.6),
    "music/live/d.mp3": (48_000, 1, 0.9),
}
BAD_FILES = ("talk/corrupt.mp3", "music/empty.mp3")
NOT_AUDIO = "notes.txt"


def _tones(rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    """(frames, channels) float32: a tone per channel plus noise, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tones = np.stack([np.sin(2 * np.pi * (300.0 * (c + 1) + 50.0 * seed) * t) for c in range(channels)], 1)
    return (0.4 * tones + 0.05 * rng.standard_normal(tones.shape)).astype(np.float32)


def make_library(folder: Path) -> Path:
    """Write the library into `folder`; returns it."""
    for seed, (name, (rate, channels, seconds)) in enumerate(GOOD_FILES.items()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, _tones(rate, channels, seconds, seed), rate, format="MP3")
    (folder / "talk/corrupt.mp3").write_bytes(np.random.default_rng(9).bytes(5000))
    (folder / "music/empty.mp3").write_bytes(b"")
    (folder / NOT_AUDIO).write_text("not audio\n")
    return folder


def restore_singly(library: Path, folder: Path) -> dict[str, np.ndarray]:
    """Each good file through single-file `gapfill restore` (shipped model) into `folder`; returns
    relative output path (.flac) -> samples (frames, channels) float64."""
    outputs = {}
    for name in GOOD_FILES:
        target = folder / Path(name).with_suffix(".flac")
        target.parent.mkdir(parents=True, exist_ok=True)
        assert main(["restore", str(library / name), str(target)]) == 0
        outputs[str(Path(name).with_suffix(".flac"))] = sf.read(target, always_2d=True)[0]
    return outputs


def visible_files(folder: Path) -> list[str]:
    """Relative paths of the files below `folder` whose names do not start with a dot, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def partial_files(folder: Path) -> list[str]:
    """Temporary files (`.partial-`) left anywhere below `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial-" in p.name)


def wait_for_a_file_being_written(out: Path, process: subprocess.Popen, timeout_s: float = 300) -> list[str]:
    """The temporary files below `out` as first seen while `process` runs (a worker's first file waits for
    its engine to load); fails the test if none appears. Returned as seen: the file may be renamed into
    place a moment later, so the caller must not look again."""
    deadline = time.monotonic() + timeout_s
    writing: list[str] = []
    while not writing and process.poll() is None and time.monotonic() < deadline:
        writing = partial_files(out)
        time.sleep(0.005)
    assert writing, f"no file was being written (exit status {process.poll()})"
    return writing


def assert_all_restored(out: Path, signals: dict[str, np.ndarray], report: Path) -> None:
    """Every file of `signals` (relative path -> samples) complete below `out`, nothing partial, equal to
    the samples within one 16-bit step, and the JSON report at `report` counting all six restored."""
    assert visible_files(out) == sorted(signals) and partial_files(out) == []
    for name, x in signals.items():
        y = sf.read(out / name, dtype="float32", always_2d=True)[0]
        assert y.shape == x.shape and np.abs(y - x).max() <= 2.0**-15
    files = json.loads(report.read_text())["files"]
    assert files == {"total": 6, "restored": 6, "skipped": 0, "failed": 0}
