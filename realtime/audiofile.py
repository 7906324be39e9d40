"""File front end (`gapfill restore`): any file libsndfile reads -> a restored WAV or FLAC file.

The input is streamed in blocks of BLOCK_FRAMES (hours of audio never sit in memory) through a
delay-compensated `Restorer`, so output sample t lines up with input sample t and both have the same
length, rate and channels. The output is written to a hidden temporary file beside it
(`.NAME.partial-XXXXXXXX.wav`) and renamed over NAME only when complete; on any error or Ctrl-C the
temporary file is removed.

Output sample format: the input's own when the output format has it (WAV: PCM_16, PCM_24, FLOAT;
FLAC: PCM_16, PCM_24); otherwise FLOAT for WAV (lossless for whatever the model produces) and PCM_24
for FLAC (its finest). Samples beyond +-1 are clipped (never wrapped) for integer formats and kept
in FLOAT.

Truncation: a WAV whose data chunk is shorter than its header says, or a file that yields fewer frames
than its header promises, is an error. MP3 is exempt from the second check: libsndfile estimates an
MP3's length when it has no Xing header.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import soundfile as sf

from realtime.errors import GapfillError
from realtime.pipe import compensated
if TYPE_CHECKING:
    from realtime.restorer import Restorer

BLOCK_FRAMES = 4096
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_KEPT_SUBTYPES = {"WAV": ("PCM_16", "PCM_24", "FLOAT"), "FLAC": ("PCM_16", "PCM_24")}
_DEFAULT_SUBTYPES = {"WAV": "FLOAT", "FLAC": "PCM_24"}
_WAV_DATA_SIZE = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data sizes written by streaming encoders (e.g. ffmpeg to a pipe)


def output_format(path: str) -> str:
    """libsndfile format name ('WAV' or 'FLAC') for an output path, chosen by its suffix."""
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise GapfillError(f"cannot write '{path}': the output name must end in .wav or .flac")
    return fmt


def output_subtype(input_subtype: str, fmt: str) -> str:
    """Sample format of the output: the input's when `fmt` has it, else FLOAT (WAV) / PCM_24 (FLAC)."""
    return input_subtype if input_subtype in _KEPT_SUBTYPES[fmt] else _DEFAULT_SUBTYPES[fmt]


@contextmanager
def _c_stderr_muted() -> Iterator[None]:
    """Silence file descriptor 2 (libmpg123 prints warnings there); Python's own stderr is flushed first."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _reason(exc: Exception) -> str:
    """A short, user-facing reason for a libsndfile or OS error."""
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).lower()
    text = getattr(exc, "error_string", None) or str(exc)
    if "Format not recognised" in text or "does not exist or is not a regular file" in text:
        return "not an audio file libsndfile can read (unknown format or corrupt data)"
    return text.strip().rstrip(".")


def open_input(path: str) -> sf.SoundFile:
    """Open an audio file for reading; every problem becomes `GapfillError("cannot read 'path': ...")`."""
    if os.path.isdir(path):
        raise GapfillError(f"cannot read '{path}': it is a directory")
    try:
        with open(path, "rb"):
            pass
        with _c_stderr_muted():
            source = sf.SoundFile(path)
    except (OSError, sf.LibsndfileError) as exc:
        raise GapfillError(f"cannot read '{path}': {_reason(exc)}") from None
    problem = _length_problem(source)
    if problem:
        source.close()
        raise GapfillError(f"cannot read '{path}': {problem}")
    return source


def _length_problem(source: sf.SoundFile) -> str | None:
    """Why the file's length is unusable (no audio, truncated WAV data), or None."""
    if source.frames == 0:
        return "it contains no audio"
    sizes = _WAV_DATA_SIZE.search(source.extra_info) if source.format in ("WAV", "WAVEX") else None
    if sizes and int(sizes[1]) not in _UNKNOWN_SIZES and int(sizes[2]) < int(sizes[1]):
        return f"truncated (the header announces {sizes[1]} bytes of audio, the file holds {sizes[2]})"
    return None


def _input_blocks(source: sf.SoundFile, path: str, progress: _Progress | None) -> Iterator[np.ndarray]:
    """(channels, n) float32 blocks of the whole file, n <= BLOCK_FRAMES, each valid until the next step."""
    frames = np.zeros((BLOCK_FRAMES, source.channels), np.float32)
    planar = np.zeros(BLOCK_FRAMES * source.channels, np.float32)
    total = 0
    while True:
        try:
            with _c_stderr_muted():
                data = source.read(BLOCK_FRAMES, dtype="float32", always_2d=True, out=frames)
        except sf.LibsndfileError as exc:
            where = _timestamp(total, source.samplerate)
            raise GapfillError(
                f"cannot read '{path}': corrupt or truncated at {where} ({_reason(exc)})"
            ) from None
        n = data.shape[0]
        if n == 0:
            break
        total += n
        block = planar[: n * source.channels].reshape(source.channels, n)
        block[...] = data.T
        yield block
        if progress:
            progress.update(total)
    if source.format != "MP3" and total < source.frames:
        where = _timestamp(total, source.samplerate)
        raise GapfillError(
            f"cannot read '{path}': truncated at {where} (the header announces {source.frames} frames)"
        )


def _timestamp(frames: int, sample_rate: int) -> str:
    """A position as HH:MM:SS.mmm."""
    minutes, seconds = divmod(frames / sample_rate, 60.0)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{seconds:06.3f}"


@contextmanager
def _partial_file(path: str, force: bool) -> Iterator[str]:
    """Yield a new temporary path beside `path`; rename it to `path` on success, remove it otherwise."""
    target = Path(path)
    temp = target.with_name(f".{target.stem}.partial-{secrets.token_hex(4)}{target.suffix}")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise GapfillError(f"cannot write '{path}': {_reason(exc)}") from None
    try:
        yield str(temp)
        if not force and target.exists():
            raise GapfillError(f"'{path}' appeared while restoring; use --force to overwrite it")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class _Progress:
    """A one-line progress report on a terminal's stderr, redrawn at most 10 times a second."""

    def __init__(self, label: str, total_frames: int, sample_rate: int) -> None:
        self.label, self.total, self.rate = label, max(total_frames, 1), sample_rate
        self._next_draw = 0.0

    def update(self, done_frames: int) -> None:
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + 0.1
        percent = min(100.0, 100.0 * done_frames / self.total)
        done_s, total_s = done_frames / self.rate, self.total / self.rate
        sys.stderr.write(f"\r{self.label}: {percent:3.0f}% ({done_s:.1f} of {total_s:.1f} s)")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def restore_file(
    restorer: Restorer, in_path: str, out_path: str, force: bool = False, show_progress: bool = False
) -> None:
    """Restore `in_path` into `out_path` (.wav or .flac), same rate, channels and length, aligned.

    Raises GapfillError for anything the user can fix; leaves no output file unless it succeeds.
    """
    fmt = output_format(out_path)
    if not force and os.path.lexists(out_path):
        raise GapfillError(f"'{out_path}' exists; use --force to overwrite it")
    with open_input(in_path) as source:
        try:
            restorer.prepare(source.samplerate, source.channels, BLOCK_FRAMES)
        except GapfillError as exc:
            raise GapfillError(f"cannot restore '{in_path}': {exc}") from None
        subtype = output_subtype(source.subtype, fmt)
        progress = None
        if show_progress:
            progress = _Progress(f"restoring '{in_path}'", source.frames, source.samplerate)
        try:
            with _partial_file(out_path, force) as temp:
                with _open_output(temp, out_path, source, fmt, subtype) as sink:
                    for out in compensated(restorer, _input_blocks(source, in_path, progress)):
                        sink.write(out)
        finally:
            if progress:
                progress.close()


class _Output:
    """Writes (channels, n) float32 blocks to an open SoundFile through one preallocated interleaving buffer.

    For integer subtypes libsndfile clips to +-1 (soundfile turns SFC_SET_CLIPPING on for every file).
    """

    def __init__(self, sink: sf.SoundFile, out_path: str) -> None:
        self._sink, self._out_path = sink, out_path
        self._frames = np.zeros((BLOCK_FRAMES, sink.channels), np.float32)

    def write(self, block: np.ndarray) -> None:
        for start in range(0, block.shape[1], BLOCK_FRAMES):
            chunk = block[:, start : start + BLOCK_FRAMES]
            frames = self._frames[: chunk.shape[1]]
            frames[...] = chunk.T
            try:
                self._sink.write(frames)
            except (OSError, sf.LibsndfileError) as exc:
                raise GapfillError(f"cannot write '{self._out_path}': {_reason(exc)}") from None


@contextmanager
def _open_output(temp: str, out_path: str, source: sf.SoundFile, fmt: str, subtype: str) -> Iterator[_Output]:
    """The temporary output file, with `source`'s rate and channels, as an `_Output`."""
    try:
        sink = sf.SoundFile(temp, "w", source.samplerate, source.channels, subtype, format=fmt)
    except (OSError, sf.LibsndfileError) as exc:
        raise GapfillError(f"cannot write '{out_path}': {_reason(exc)}") from None
    with sink:
        yield _Output(sink, out_path)
