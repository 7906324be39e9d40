"""File front end (`gapfill restore`): any audio file -> a restored WAV or FLAC file.

Input (`open_audio`): what libsndfile reads (WAV, FLAC, OGG, Opus, MP3, AIFF, ...) through soundfile, and
whatever else FFmpeg decodes (AAC in .m4a/.mp4/.aac, WMA, AC-3, WebM/Matroska, ...) through PyAV
(realtime.frontends.decoder). Either is an `AudioSource`, streamed in blocks of BLOCK_FRAMES (hours of
audio never sit in memory) through a delay-compensated `Restorer`, so output sample t lines up with input
sample t and both have the same duration and channels.

Output rate (`output_rate`): 48 kHz, the model rate, for inputs below 44.1 kHz (a 32 kbit/s MP3 is often
stored at 16 or 22.05 kHz, and the band the model restores above that file's Nyquist frequency would
not fit in it), else the input's rate; `rate="keep"` keeps the input's, an integer chooses a supported
rate. The input is then read through `read_blocks`, which resamples it to the output rate in streaming
fashion (delay compensated, frames * out_rate / in_rate samples rounded half up) and restored at that rate.

The output is written to a hidden temporary file beside it (`realtime.atomic`: `.NAME.partial-XXXXXXXX.wav`
for NAME.wav) and renamed over it only when complete; on any error or Ctrl-C the temporary file is removed.

Output sample format: the input's own when the output format has it (WAV: PCM_16, PCM_24, FLOAT;
FLAC: PCM_16, PCM_24); otherwise FLOAT for WAV (lossless for whatever the model produces) and PCM_24
for FLAC (its finest). Samples beyond +-1 are clipped (never wrapped) for integer formats and kept
in FLOAT.

Truncation: a WAV whose data chunk is shorter than its header says, or a file that yields fewer frames
than its header promises, is an error. MP3 is exempt from the second check: libsndfile estimates an
MP3's length when it has no Xing header (the decoder's own rules are in realtime.frontends.decoder).
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Protocol

import numpy as np
import soundfile as sf

from realtime.atomic import atomic_write
from realtime.engine.config import BLOCK_SAMPLES, MODEL_RATE_HZ
from realtime.errors import GapfillError
from realtime.frontends.coding import file_coding, tell_restorer
from realtime.frontends.decoder import PYAV_HINT, open_decoded, pyav_available, timestamp

if TYPE_CHECKING:  # the engine is imported when a file is restored, not when the command line is parsed
    from realtime.engine.restorer import Restorer

BLOCK_FRAMES = BLOCK_SAMPLES
FULL_BAND_RATE_HZ = 44_100
"""Inputs below this rate (Hz) are restored into MODEL_RATE_HZ files by default."""
OUTPUT_RATE_POLICY = (
    f"restore writes {MODEL_RATE_HZ} Hz (the model rate) for inputs below {FULL_BAND_RATE_HZ} Hz, so that the "
    "band restored above their Nyquist frequency survives, else the input's rate (--rate keep|R to choose); "
    "stream and live keep the input's rate (stream --output-rate R to choose)"
)
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_KEPT_SUBTYPES = {"WAV": ("PCM_16", "PCM_24", "FLOAT"), "FLAC": ("PCM_16", "PCM_24")}
_DEFAULT_SUBTYPES = {"WAV": "FLOAT", "FLAC": "PCM_24"}
_WAV_DATA_SIZE = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data sizes written by streaming encoders (e.g. ffmpeg to a pipe)
_CODECS = {"MPEG_LAYER_I": "mp1", "MPEG_LAYER_II": "mp2", "MPEG_LAYER_III": "mp3", "VORBIS": "vorbis",
           "OPUS": "opus"}
"""FFmpeg's codec name for libsndfile's lossy subtypes (others: the format's name, lower case)."""
_UNRECOGNISED = "not an audio file libsndfile can read (unknown format or corrupt data)"
_UNREADABLE = "not an audio file libsndfile or FFmpeg can read (unknown format, or corrupt or truncated data)"


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
        return _UNRECOGNISED
    return text.strip().rstrip(".")


class Progress(Protocol):
    """What a reader reports its progress to (frames read so far)."""

    def update(self, done_frames: int) -> None: ...


class AudioSource(Protocol):
    """An open input file: `samplerate` (Hz), `channels`, `frames` (the length its header announces, an
    estimate for some formats), `subtype` (libsndfile's name of its sample format), `codec` (FFmpeg's name
    of its codec: mp3, aac, vorbis, flac, pcm_s16le, ...), `bit_rate` (bit/s of the audio where the file
    announces it, else None); `blocks` reads it all as (channels, n <= BLOCK_FRAMES) float32 blocks, `tell`
    counts the frames read."""

    samplerate: int
    channels: int
    frames: int
    subtype: str
    codec: str
    bit_rate: float | None

    def blocks(self, progress: Progress | None = None) -> Iterator[np.ndarray]: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> AudioSource: ...
    def __exit__(self, *exc: object) -> None: ...


def open_audio(path: str) -> AudioSource:
    """Open an audio file for reading: libsndfile's formats, else FFmpeg's through PyAV. Every problem
    becomes `GapfillError("cannot read 'path': ...")`."""
    _check_readable(path)
    try:
        return SoundFileSource(path, _open_soundfile(path))
    except sf.LibsndfileError as exc:
        reason = _reason(exc)
    if not pyav_available():
        hint = f"; {PYAV_HINT}" if reason == _UNRECOGNISED else ""
        raise GapfillError(f"cannot read '{path}': {reason}{hint}")
    decoded = open_decoded(path)
    if decoded is None:
        raise GapfillError(f"cannot read '{path}': {_UNREADABLE if reason == _UNRECOGNISED else reason}")
    return decoded


def open_input(path: str) -> sf.SoundFile:
    """Open a file libsndfile reads, as a SoundFile; every problem becomes `GapfillError("cannot read
    'path': ...")`."""
    _check_readable(path)
    try:
        return _open_soundfile(path)
    except sf.LibsndfileError as exc:
        raise GapfillError(f"cannot read '{path}': {_reason(exc)}") from None


def _check_readable(path: str) -> None:
    """Raise a one-line GapfillError unless `path` is a file this process can open."""
    if os.path.isdir(path):
        raise GapfillError(f"cannot read '{path}': it is a directory")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise GapfillError(f"cannot read '{path}': {_reason(exc)}") from None


def _open_soundfile(path: str) -> sf.SoundFile:
    """libsndfile's SoundFile for `path` (its warnings on fd 2 muted); raises LibsndfileError when it cannot
    open it, GapfillError when its length is unusable."""
    with _c_stderr_muted():
        source = sf.SoundFile(path)
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


def output_rate(input_rate: int, choice: int | str | None = None) -> int:
    """The rate (Hz) `restore_file` writes: see OUTPUT_RATE_POLICY; choice None (automatic), 'keep' or Hz."""
    if choice == "keep":
        return input_rate
    if choice is None:
        return MODEL_RATE_HZ if input_rate < FULL_BAND_RATE_HZ else input_rate
    return int(choice)


def read_blocks(source: AudioSource, rate: int, progress: Progress | None = None) -> Iterator[np.ndarray]:
    """The whole of `source` as (channels, n) float32 blocks at `rate` Hz, each valid until the next step:
    its own blocks, or resampled (delay compensated, frames * rate / source rate samples, half up)."""
    blocks = source.blocks(progress)
    if rate == source.samplerate:
        return blocks
    from realtime.engine.resample import resample_blocks

    return resample_blocks(blocks, source.channels, source.samplerate, rate, BLOCK_FRAMES)


class SoundFileSource:
    """A file libsndfile reads, as an `AudioSource` (its SoundFile's rate, channels, frames and subtype)."""

    def __init__(self, path: str, soundfile: sf.SoundFile) -> None:
        self.path, self.soundfile = path, soundfile
        self.samplerate, self.channels = soundfile.samplerate, soundfile.channels
        self.frames, self.subtype = soundfile.frames, soundfile.subtype
        self.codec = _CODECS.get(soundfile.subtype, soundfile.format.lower())
        self.bit_rate: float | None = None   # libsndfile does not say

    def blocks(self, progress: Progress | None = None) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks of the whole file, n <= BLOCK_FRAMES, each valid until the next step."""
        source, path = self.soundfile, self.path
        frames = np.zeros((BLOCK_FRAMES, source.channels), np.float32)
        planar = np.zeros(BLOCK_FRAMES * source.channels, np.float32)
        total = 0
        while True:
            try:
                with _c_stderr_muted():
                    data = source.read(BLOCK_FRAMES, dtype="float32", always_2d=True, out=frames)
            except sf.LibsndfileError as exc:
                where = timestamp(total, source.samplerate)
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
            where = timestamp(total, source.samplerate)
            raise GapfillError(
                f"cannot read '{path}': truncated at {where} (the header announces {source.frames} frames)"
            )

    def tell(self) -> int:
        """Frames read so far."""
        return self.soundfile.tell()

    def close(self) -> None:
        self.soundfile.close()

    def __enter__(self) -> SoundFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TerminalProgress:
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


@dataclass(frozen=True)
class FileResult:
    """What one `restore_file` did: paths, rates (Hz), frames, latency (samples at the output rate),
    the codec gate's report (`Restorer.codec_report()`), the file's lossy coding (`coding.Coding.to_json`;
    None for lossless and PCM audio), non-finite samples replaced, output samples beyond full scale clipped
    by an integer sample format, wall time (s)."""

    input: str
    output: str
    input_rate_hz: int
    output_rate_hz: int
    channels: int
    input_frames: int
    output_frames: int
    latency_samples: int
    codec: dict[str, Any]
    coding: dict[str, Any] | None
    nonfinite_samples: int
    clipped_samples: int
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        """The `gapfill restore --stats-json` record."""
        return {
            "input": self.input, "output": self.output,
            "rates": {"input_hz": self.input_rate_hz, "output_hz": self.output_rate_hz,
                      "why": OUTPUT_RATE_POLICY},
            "channels": self.channels,
            "frames": {"input": self.input_frames, "output": self.output_frames},
            "latency": {"samples": self.latency_samples,
                        "ms": round(1000.0 * self.latency_samples / self.output_rate_hz, 3),
                        "compensated": True},
            "codec_report": self.codec, "coding": self.coding, "nonfinite_samples": self.nonfinite_samples,
            "clipped_samples": self.clipped_samples, "wall_s": round(self.wall_s, 3),
        }


def restore_file(
    restorer: Restorer | None, in_path: str, out_path: str, force: bool = False, show_progress: bool = False,
    *, rate: int | str | None = None,
) -> FileResult:
    """Restore `in_path` into `out_path` (.wav or .flac): same channels and duration, aligned, at
    `output_rate(input rate, rate)` Hz (rate None: automatic, 'keep', or Hz). restorer None: the defaults.

    With `gate.coded_input: auto` the gate takes the stream as decoded from a lossy codec at a low bit rate
    (its cliff the codec's) or at a high one (its cliff the source's own) where the file's coding says so
    (realtime.frontends.coding). Raises GapfillError for anything the user can fix; leaves no output file
    unless it succeeds.
    """
    from realtime.engine.restorer import Restorer, check_sample_rate, compensated

    started = time.perf_counter()
    fmt = output_format(out_path)
    if not force and os.path.lexists(out_path):
        raise GapfillError(f"'{out_path}' exists; use --force to overwrite it")
    restorer = Restorer() if restorer is None else restorer
    with open_audio(in_path) as source:
        coding = file_coding(in_path, source)
        if restorer.config.gate["coded_input"] == "auto":
            tell_restorer(restorer, coding)
        out_rate = output_rate(source.samplerate, rate)
        try:
            check_sample_rate(source.samplerate)
            restorer.prepare(out_rate, source.channels, BLOCK_FRAMES)
        except GapfillError as exc:
            raise GapfillError(f"cannot restore '{in_path}': {exc}") from None
        subtype = output_subtype(source.subtype, fmt)
        progress = None
        if show_progress:
            progress = _TerminalProgress(f"restoring '{in_path}'", source.frames, source.samplerate)
        written = clipped = 0
        try:
            with atomic_write(out_path) as temp:
                with _open_output(str(temp), out_path, out_rate, source.channels, fmt, subtype) as sink:
                    for out in compensated(restorer, read_blocks(source, out_rate, progress)):
                        sink.write(out)
                        written += out.shape[1]
                    clipped = sink.clipped
                if not force and os.path.exists(out_path):
                    raise GapfillError(f"'{out_path}' appeared while restoring; use --force to overwrite it")
        except OSError as exc:  # creating the temporary file, or renaming it into place
            raise GapfillError(f"cannot write '{out_path}': {_reason(exc)}") from None
        finally:
            if progress:
                progress.close()
        return FileResult(
            input=in_path, output=out_path, input_rate_hz=source.samplerate, output_rate_hz=out_rate,
            channels=source.channels, input_frames=source.tell(), output_frames=written,
            latency_samples=restorer.latency_samples, codec=restorer.codec_report(),
            coding=None if coding is None else coding.to_json(), nonfinite_samples=restorer.nonfinite_count,
            clipped_samples=clipped, wall_s=time.perf_counter() - started,
        )


class _Output:
    """Writes (channels, n) float32 blocks to an open SoundFile through one preallocated interleaving buffer.

    For integer subtypes libsndfile clips to +-1 (soundfile turns SFC_SET_CLIPPING on for every file);
    `clipped` counts the samples it clips (always 0 for FLOAT).
    """

    def __init__(self, sink: sf.SoundFile, out_path: str) -> None:
        self._sink, self._out_path = sink, out_path
        self._frames = np.zeros((BLOCK_FRAMES, sink.channels), np.float32)
        self._beyond = np.zeros((BLOCK_FRAMES, sink.channels), bool)
        self._integer = sink.subtype != "FLOAT"
        self.clipped = 0

    def write(self, block: np.ndarray) -> None:
        for start in range(0, block.shape[1], BLOCK_FRAMES):
            chunk = block[:, start : start + BLOCK_FRAMES]
            frames = self._frames[: chunk.shape[1]]
            frames[...] = chunk.T
            if self._integer:
                self.clipped += _count_beyond_full_scale(frames, self._beyond[: chunk.shape[1]])
            try:
                self._sink.write(frames)
            except (OSError, sf.LibsndfileError) as exc:
                raise GapfillError(f"cannot write '{self._out_path}': {_reason(exc)}") from None


def _count_beyond_full_scale(samples: np.ndarray, scratch: np.ndarray) -> int:
    """How many of `samples` lie beyond +-1 (full scale), using the bool `scratch` of the same shape."""
    np.greater(samples, 1.0, out=scratch)
    count = int(np.count_nonzero(scratch))
    np.less(samples, -1.0, out=scratch)
    return count + int(np.count_nonzero(scratch))


@contextmanager
def _open_output(temp: str, out_path: str, rate: int, channels: int, fmt: str, subtype: str) -> Iterator[_Output]:
    """The temporary output file, at `rate` Hz with `channels`, as an `_Output`."""
    try:
        sink = sf.SoundFile(temp, "w", rate, channels, subtype, format=fmt)
    except (OSError, sf.LibsndfileError) as exc:
        raise GapfillError(f"cannot write '{out_path}': {_reason(exc)}") from None
    with sink:
        yield _Output(sink, out_path)
