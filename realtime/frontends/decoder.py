"""Files libsndfile cannot read (AAC in .m4a/.mp4/.aac, WMA, AC-3, WebM/Matroska, ...), decoded by FFmpeg
through PyAV, streaming.

`open_decoded(path)` opens the file's best audio stream and decodes up to its first frame, which fixes the
rate and channels; `DecodedFile.blocks()` then yields the whole stream as (channels, n <= BLOCK_FRAMES)
float32 blocks, one packet at a time, so memory does not grow with the file. The samples are the ones
`ffmpeg -i IN OUT.wav` writes: FFmpeg's decoders drop an encoder's priming the way its command line does
(MP4 edit lists, Opus pre-skip), and nothing is trimmed or padded here.

Errors are one line (GapfillError): a stream that cannot be decoded is "corrupt or truncated at
HH:MM:SS.mmm"; containers that announce their length (MP4/M4A/MOV, Matroska/WebM, ASF/WMA) are checked
against it, so that a file cut short is an error rather than a short output; raw streams (ADTS .aac, .ac3)
only estimate their length, like MP3, and are not. A stream whose rate or channels change midway is refused.

PyAV is imported only when a file needs it (`pip install av`; `PYAV_HINT` says so when it is missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from realtime.engine.config import BLOCK_SAMPLES
from realtime.errors import GapfillError

if TYPE_CHECKING:
    from realtime.frontends.audiofile import Progress

BLOCK_FRAMES = BLOCK_SAMPLES
PYAV_HINT = "AAC/M4A, WMA, WebM and other formats libsndfile cannot read need PyAV: pip install av"
LENGTH_ANNOUNCING_CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "asf")
"""FFmpeg demuxers whose header holds the length of the stream (checked against what was decoded)."""
TRUNCATION_TOLERANCE_S = 0.25
"""A decoded stream this much shorter than its container announces (s) is truncated; codec delays and the
container's rounding are far below it."""
_SUBTYPES = {"s16": "PCM_16", "s32": "PCM_32", "flt": "FLOAT", "dbl": "DOUBLE", "u8": "PCM_U8"}
"""libsndfile's name for each FFmpeg sample format (planar or not): what the output keeps where it can."""
_INTEGER_SCALES = {"s16": 2.0**-15, "s32": 2.0**-31, "s64": 2.0**-63}


def pyav_available() -> bool:
    """Whether PyAV can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def timestamp(frames: int, sample_rate: int) -> str:
    """A position in a stream as HH:MM:SS.mmm (the readers' error messages)."""
    minutes, seconds = divmod(frames / sample_rate, 60.0)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}:{seconds:06.3f}"


def _reason(exc: Exception) -> str:
    """FFmpeg's reason for an error, lower case, without the errno and the call that failed."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".").lower()


def open_decoded(path: str) -> DecodedFile | None:
    """The best audio stream of `path` as a `DecodedFile`, or None when FFmpeg does not recognise the file.

    Raises GapfillError for a file it recognises but cannot use (no audio, a corrupt first frame).
    """
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError):
        return None
    try:
        stream = container.streams.best("audio")
        if stream is None:
            raise GapfillError(f"cannot read '{path}': it contains no audio")
        return DecodedFile(path, container, stream)
    except BaseException:
        container.close()
        raise


class DecodedFile:
    """An audio stream decoded by FFmpeg: `samplerate` (Hz), `channels`, `frames` (the container's length
    in frames, an estimate for raw streams; 0 when unknown), `subtype` (libsndfile's name for its sample
    format), `codec` (FFmpeg's codec name), `bit_rate` (bit/s as the stream or container announces it, or
    None); `blocks()` decodes it, `tell()` counts the frames decoded so far."""

    def __init__(self, path: str, container: Any, stream: Any) -> None:
        import av

        self.path = path
        self._container, self._stream = container, stream
        self._errors = (av.error.FFmpegError, OSError)
        self._decoder = self._decoded_frames()
        self._position = 0  # frames decoded so far
        self.samplerate = 0  # until the first frame gives it
        first = self._next_frame()
        if first is None:
            raise GapfillError(f"cannot read '{path}': it contains no audio")
        self._first: Any = first
        self.samplerate = int(first.sample_rate)
        self.channels = len(first.layout.channels)
        self.subtype = _SUBTYPES.get(first.format.name.rstrip("p"), "FLOAT")
        self.codec = str(stream.codec_context.name)
        self.bit_rate: float | None = float(stream.bit_rate or stream.codec_context.bit_rate or 0) or None
        announced_s = (float(stream.duration * stream.time_base) if stream.duration
                       else container.duration / 1e6 if container.duration else 0.0)
        self.frames = round(announced_s * self.samplerate)
        self._checked_length = container.format.name in LENGTH_ANNOUNCING_CONTAINERS and self.frames > 0

    def _decoded_frames(self) -> Iterator[Any]:
        """The stream's decoded frames with samples, the decoder flushed at the end."""
        for packet in self._container.demux(self._stream):
            for frame in packet.decode():
                if frame.samples:
                    yield frame

    def _next_frame(self) -> Any:
        """The next decoded frame, or None at the end; a decoding error is one line."""
        try:
            return next(self._decoder, None)
        except self._errors as exc:
            where = timestamp(self._position, self.samplerate or 1)
            raise GapfillError(
                f"cannot read '{self.path}': corrupt or truncated at {where} ({_reason(exc)})"
            ) from None

    def tell(self) -> int:
        """Frames decoded so far."""
        return self._position

    def blocks(self, progress: Progress | None = None) -> Iterator[np.ndarray]:
        """The whole stream as (channels, n) float32 blocks, n = BLOCK_FRAMES but for the last, each valid
        until the next step; raises GapfillError for a corrupt, truncated or changing stream."""
        block = np.zeros((self.channels, BLOCK_FRAMES), np.float32)
        filled = 0
        frame, self._first = self._first, None
        while frame is not None:
            self._check_format(frame)
            samples = _planar_float32(frame, self.channels)
            used = 0
            while used < samples.shape[1]:
                take = min(BLOCK_FRAMES - filled, samples.shape[1] - used)
                block[:, filled : filled + take] = samples[:, used : used + take]
                filled += take
                used += take
                if filled == BLOCK_FRAMES:
                    yield block
                    filled = 0
            self._position += samples.shape[1]
            if progress:
                progress.update(self._position)
            frame = self._next_frame()
        if filled:
            yield block[:, :filled]
        if self._checked_length and self._position < self.frames - TRUNCATION_TOLERANCE_S * self.samplerate:
            raise GapfillError(f"cannot read '{self.path}': truncated at {timestamp(self._position, self.samplerate)}"
                               f" (the container announces {timestamp(self.frames, self.samplerate)})")

    def _check_format(self, frame: Any) -> None:
        """Refuse a frame whose rate or channels differ from the first's."""
        rate, channels = frame.sample_rate, len(frame.layout.channels)
        if (rate, channels) == (self.samplerate, self.channels):
            return
        change = (f"sample rate changes ({self.samplerate} -> {rate} Hz)" if rate != self.samplerate
                  else f"channels change ({self.channels} -> {channels})")
        raise GapfillError(f"cannot read '{self.path}': the {change} at {timestamp(self._position, self.samplerate)}")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> DecodedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _planar_float32(frame: Any, channels: int) -> np.ndarray:
    """A decoded frame's samples as (channels, n) float32 in [-1, 1): integers scaled by 2**-(bits - 1),
    unsigned 8-bit centred first."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:
        data = data.reshape(frame.samples, channels).T
    kind = frame.format.name.rstrip("p")
    if kind == "u8":
        return (data.astype(np.float32) - 128.0) * np.float32(1 / 128)
    if kind in _INTEGER_SCALES:
        return (data * _INTEGER_SCALES[kind]).astype(np.float32)
    return data.astype(np.float32, copy=False)
