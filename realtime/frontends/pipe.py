"""Raw PCM front end (`gapfill stream`): interleaved little-endian PCM on stdin -> restored PCM on stdout.

Formats are named as ffmpeg's `-f`: f32le, s16le, s24le. Integers map to floats as i / 2**(bits - 1)
and back with rounding and clipping (never wrap-around). The reader takes whatever a read returns (one
`read` system call, no waiting for a full buffer), keeps the bytes of a partial frame for the next read,
and output is written to the file descriptor as soon as it exists.

Delay compensation (`realtime.engine.restorer.compensated`): the first `latency_samples` of output are dropped
and the tail from `Restorer.flush()` is appended, so output sample t lines up with input sample t and
there are exactly as many output samples as input samples. With an input rate other than the
restorer's (`gapfill stream --output-rate`), the input is first resampled to the restorer's rate
(`realtime.engine.resample.resample_blocks`, delay compensated too): n * out_rate / in_rate samples out.

End of stream: at EOF all output is written; bytes of a partial last frame are reported in
`StreamResult.trailing_bytes` (the CLI then exits with status 2). SIGINT stops reading; what was read
is processed and written, tail included. A closed stdout (EPIPE) ends the stream quietly.
"""

from __future__ import annotations

import io
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from realtime.engine.config import BLOCK_SAMPLES
from realtime.errors import GapfillError
from realtime.frontends.pcm_formats import PCM_FORMATS

if TYPE_CHECKING:  # the engine is imported when a stream runs, not when the command line is parsed
    from realtime.engine.restorer import Restorer

MAX_READ_FRAMES = BLOCK_SAMPLES  # frames per read, and the Restorer's max_block


class PcmCodec:
    """Interleaved little-endian PCM bytes <-> (channels, frames) float32, in buffers preallocated for
    up to `max_frames` frames per call."""

    def __init__(self, pcm_format: str, channels: int, max_frames: int) -> None:
        self.sample_bytes = PCM_FORMATS[pcm_format]
        self.channels = channels
        self.frame_bytes = self.sample_bytes * channels
        self.max_frames = max_frames
        samples = max_frames * channels
        self._planar = np.zeros(samples, np.float32)  # (channels, n) views for the Restorer
        self._floats = np.zeros(samples, np.float32)  # interleaved scratch
        self._ints = np.zeros(samples, "<i2" if self.sample_bytes == 2 else "<i4")
        self._quads = np.zeros((samples, 4), np.uint8)  # s24: a sample's 3 bytes in the top of an int32
        self._triples = np.zeros((samples, 3), np.uint8)  # s24 output bytes
        self._beyond = np.zeros(samples, bool)
        self.clipped = 0
        """Output samples clipped at full scale by an integer format so far."""

    def decode(self, raw: memoryview) -> np.ndarray:
        """Whole frames of `raw` -> (channels, frames) float32 view, valid until the next call."""
        n = len(raw) // self.frame_bytes
        m = n * self.channels
        planar = self._planar[:m].reshape(self.channels, n)
        if self.sample_bytes == 4:
            planar[...] = np.frombuffer(raw, "<f4", m).reshape(n, self.channels).T
        elif self.sample_bytes == 2:
            ints = np.frombuffer(raw, "<i2", m).reshape(n, self.channels).T
            np.multiply(ints, np.float32(2.0**-15), out=planar, dtype=np.float32)
        else:
            self._quads[:m, 1:] = np.frombuffer(raw, np.uint8, 3 * m).reshape(m, 3)
            ints = self._quads[:m].view("<i4").reshape(n, self.channels).T  # sample << 8
            np.multiply(ints, np.float32(2.0**-31), out=planar, dtype=np.float32)
        return planar

    def encode(self, block: np.ndarray) -> memoryview:
        """block (channels, n <= max_frames) float32 -> interleaved bytes, valid until the next call."""
        n = block.shape[1]
        m = n * self.channels
        floats = self._floats[:m]
        if self.sample_bytes == 4:
            floats.reshape(n, self.channels)[...] = block.T
            return floats.data.cast("B")
        bits = 8 * self.sample_bytes
        full_scale = float(2 ** (bits - 1))
        np.multiply(block.T, np.float32(full_scale), out=floats.reshape(n, self.channels))
        beyond = self._beyond[:m]
        np.greater_equal(floats, full_scale - 0.5, out=beyond)    # would round past the largest code
        self.clipped += int(np.count_nonzero(beyond))
        np.less(floats, -full_scale - 0.5, out=beyond)            # ... past the smallest
        self.clipped += int(np.count_nonzero(beyond))
        np.clip(floats, -full_scale, full_scale - 1.0, out=floats)
        np.rint(floats, out=floats)
        ints = self._ints[:m]
        ints[...] = floats
        if self.sample_bytes == 2:
            return ints.data.cast("B")
        triples = self._triples[:m]
        triples[...] = ints.view(np.uint8).reshape(m, 4)[:, :3]
        return triples.data.cast("B")


@dataclass
class StreamResult:
    """What happened in one `run_stream`: frames read, samples replaced, how it ended."""

    frames_in: int = 0
    nonfinite_samples: int = 0
    clipped_samples: int = 0  # output samples beyond full scale an integer format clipped
    trailing_bytes: int = 0  # bytes of a partial frame left at end of input (dropped)
    interrupted: bool = False  # stopped by SIGINT
    broken_pipe: bool = False  # stdout was closed by the reader


class _Interrupted(Exception):
    """Raised by the SIGINT handler while a read is blocking."""


class _FrameReader:
    """Blocks of whole frames from a file descriptor, one read system call each; stops at EOF or SIGINT."""

    def __init__(self, fd: int, codec: PcmCodec) -> None:
        self._file = io.FileIO(fd, "rb", closefd=False)
        self._codec = codec
        self._buffer = memoryview(bytearray((codec.max_frames + 1) * codec.frame_bytes))
        self._read_size = codec.max_frames * codec.frame_bytes
        self.carry = 0  # bytes of a partial frame at the start of the buffer
        self.frames = 0
        self.interrupted = False
        self._reading = False

    def on_sigint(self, signum: int, frame: object) -> None:
        """SIGINT handler: interrupt a blocking read, or stop before the next one."""
        self.interrupted = True
        if self._reading:
            self._reading = False  # a second SIGINT while unwinding must not raise again
            raise _Interrupted

    def blocks(self) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks, 1 <= n <= max_frames, each valid until the next step."""
        frame_bytes, buffer = self._codec.frame_bytes, self._buffer
        while not self.interrupted:
            try:
                self._reading = True
                count = self._file.readinto(buffer[self.carry : self.carry + self._read_size])
            except _Interrupted:
                return
            finally:
                self._reading = False
            if not count:
                return
            total = self.carry + count
            whole = total - total % frame_bytes
            if whole:
                self.frames += whole // frame_bytes
                yield self._codec.decode(buffer[:whole])
            self.carry = total - whole
            buffer[: self.carry] = buffer[whole:total]


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def run_stream(
    restorer: Restorer,
    pcm_format: str,
    channels: int,
    compensate: bool = True,
    fd_in: int = 0,
    fd_out: int = 1,
    *,
    input_rate: int | None = None,
) -> StreamResult:
    """Restore raw PCM from `fd_in` to `fd_out` until EOF, SIGINT or a closed output.

    `restorer` must be prepared for `channels`; its rate is the output's. input_rate: the input's rate
    in Hz when it differs (resampled first, delay compensated; needs `compensate`). On SIGINT, what was
    read is processed and written (with its tail when compensating) before returning.
    """
    from realtime.engine.resample import resample_blocks
    from realtime.engine.restorer import compensated

    codec = PcmCodec(pcm_format, channels, MAX_READ_FRAMES)
    reader = _FrameReader(fd_in, codec)
    blocks: Iterator[np.ndarray] = reader.blocks()
    if input_rate is not None and input_rate != restorer.sample_rate:
        if not compensate:
            raise GapfillError("--no-compensate works at the input rate only (leave out --output-rate)")
        blocks = resample_blocks(blocks, channels, input_rate, restorer.sample_rate, MAX_READ_FRAMES)
    result = StreamResult()
    previous = signal.signal(signal.SIGINT, reader.on_sigint)
    try:
        for out in compensated(restorer, blocks, compensate):
            for start in range(0, out.shape[1], codec.max_frames):
                _write_all(fd_out, codec.encode(out[:, start : start + codec.max_frames]))
    except BrokenPipeError:
        result.broken_pipe = True
    finally:
        signal.signal(signal.SIGINT, previous)
    result.frames_in = reader.frames
    result.trailing_bytes = 0 if reader.interrupted else reader.carry
    result.interrupted = reader.interrupted
    result.nonfinite_samples = restorer.nonfinite_count
    result.clipped_samples = codec.clipped
    return result
