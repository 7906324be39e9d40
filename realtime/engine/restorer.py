"""The `Restorer` processor: any host block in, the same number of restored samples out, fixed latency.

    from realtime import restore
    restored = restore(audio, 44_100)          # (samples,) or (channels, samples), same shape back, aligned

Life cycle (pedalboard/JUCE style): `prepare(sample_rate, channels, max_block)` allocates everything;
`process(block, out=None)` takes (channels, n) float32 or float64 for any n >= 0 and returns n samples
(a new array, or `out` when given: the allocation-free form every front end uses); `flush()` returns the
tail at end of stream; `reset()` forgets the past; `latency_samples` is the true delay at the host rate.
`compensated` and `restore` drop the latency and append the tail, so output sample t is input sample t.

Real time: every Numba kernel of the signal path has fixed signatures, compiled when its module is
imported (or loaded from the cache), and releases the GIL; `prepare` runs every stage once (onnxruntime's
first run), so no `process` call after it compiles or stalls, whatever the block's size or layout.

Inside, at the model rate (48 kHz): host samples fill a hop buffer; each full hop runs
analysis -> model -> gate -> phase -> synthesis and yields one finalised hop, from which the next hop's
output samples are read one sample ahead, so the delay is fft_size - 1 samples plus the look-ahead
frames of the model and phase stages. Other host rates are resampled in and out in streaming fashion
and the round trip is padded to a whole number of host samples. A stereo stream is restored as mid
(L + R) / 2 and side (L - R) / 2 and turned back to left and right after synthesis (`model.stereo`
mid_side, the default; `channels` restores left and right apart); other channel counts channel by channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt
from numba import njit

from realtime.engine.config import BLOCK_SAMPLES, MODEL_RATE_HZ, EngineConfig, load_config
from realtime.errors import GapfillError
from realtime.engine.gate import CodecGate
from realtime.engine.model import PassThroughModel, load_model
from realtime.engine.level import InputLevel
from realtime.engine.phase import PhaseStage
from realtime.engine.resample import StreamingResampler, round_trip_padding
from realtime.engine.stft import StreamingAnalysis, StreamingSynthesis

SUPPORTED_RATES_HZ = (16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000)
MAX_CHANNELS = 8

ConfigSource = Union[str, Path, EngineConfig, Mapping[str, Mapping[str, Any]], None]
"""What `restore` takes as `config`: a YAML path, a loaded config, overrides of the defaults, or None."""
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Restorer:
    """Streaming restorer; one instance per stream, channels (or a stereo pair's mid and side) restored
    independently."""

    supported_rates = SUPPORTED_RATES_HZ
    max_channels = MAX_CHANNELS

    def __init__(self, config: EngineConfig | None = None) -> None:
        """A restorer with `config` (None: the shipped defaults); it loads the model, `prepare` does the rest."""
        config = load_config(None) if config is None else config
        self.config = config
        self.fft_size, self.hop = config.fft_size, config.hop
        self.model = load_model(config.model["path"], config.model["threads"], self.fft_size, self.hop)
        passthrough = isinstance(self.model, PassThroughModel)
        self.gate_enabled = bool(config.gate["enabled"]) and not passthrough
        self.gate = CodecGate(config.gate, MODEL_RATE_HZ, self.fft_size, self.hop)
        boost = 0.0 if passthrough else config.model["max_boost_db"]
        self.level = InputLevel(config.model["input_level_db"], boost, config.gate["active_db"], MODEL_RATE_HZ,
                                self.fft_size, self.hop)
        self.phase = PhaseStage(config.phase, self.fft_size, self.hop)
        self._mid_side = False        # this stream is a stereo pair restored as mid and side (set by prepare)
        self.sample_rate: int | None = None
        self.channels = self.max_block = 0
        self.nonfinite_count = 0

    @classmethod
    def from_config(cls, path: str | Path | None = None,
                    overrides: Mapping[str, Mapping[str, Any]] | None = None) -> "Restorer":
        """A restorer built from the YAML file at `path` (None: the shipped defaults) and `overrides`
        (section -> key -> value, validated like the file: `{"phase": {"method": "rtpghi"}}`)."""
        return cls(load_config(path, overrides))

    # -- latency ---------------------------------------------------------------------------------
    @property
    def engine_latency_samples(self) -> int:
        """Delay at the model rate, in samples: STFT framing plus model and phase look-ahead."""
        return self.fft_size - 1 + self.hop * (self.model.lookahead_frames + self.phase.lookahead_frames)

    @property
    def latency_samples(self) -> int:
        """True input-to-output delay at the host rate, in samples (after `prepare`)."""
        self._require_prepared()
        return self._latency

    @property
    def latency_parts(self) -> dict[str, int]:
        """The latency broken into parts, in samples at the host rate; the parts sum to the total."""
        self._require_prepared()
        return dict(self._latency_parts)

    # -- life cycle ------------------------------------------------------------------------------
    def prepare(self, sample_rate: int, channels: int, max_block: int) -> None:
        """Allocate every buffer for `channels` streams at `sample_rate` Hz and blocks up to `max_block`."""
        check_sample_rate(sample_rate)
        if not 1 <= channels <= MAX_CHANNELS:
            raise GapfillError(f"{channels} channels are not supported (1 to {MAX_CHANNELS})")
        if max_block < 1:
            raise GapfillError(f"block size must be at least 1 sample, got {max_block}")
        self.sample_rate, self.channels, self.max_block = sample_rate, channels, max_block
        self._mid_side = channels == 2 and self.config.model["stereo"] == "mid_side"
        bins = self.fft_size // 2 + 1
        depth = self.model.lookahead_frames + 1

        self.model.prepare(channels)
        self.gate.prepare(channels)
        self.level.prepare(channels)
        self.phase.prepare(channels)
        self._analysis = StreamingAnalysis(self.fft_size, self.hop, channels)
        self._synthesis = StreamingSynthesis(self.fft_size, self.hop, channels)
        self._hop_in = np.zeros((channels, self.hop), np.float32)
        self._hop_out = np.zeros((channels, self.hop), np.float32)
        self._spectra = np.zeros((depth, channels, bins), np.complex64)  # ring over model look-ahead
        self._magnitudes = np.zeros((depth, channels, bins), np.float32)
        self._model_in = np.zeros((channels, bins), np.float32)
        self._estimate = np.zeros((channels, bins), np.float32)
        self._confidence = np.zeros((channels, bins), np.float32)
        self._gated = np.zeros((channels, bins), np.float32)
        self._phased = np.zeros((channels, bins), np.complex64)
        self._counters = np.zeros(2, np.int64)  # [hop fill, non-finite samples replaced]

        engine_latency = self.engine_latency_samples
        if sample_rate == MODEL_RATE_HZ:
            self._upsampler = self._downsampler = None
            self._core_max = max_block
            self._latency = engine_latency
        else:
            self._upsampler = StreamingResampler(sample_rate, MODEL_RATE_HZ)
            self._downsampler = StreamingResampler(MODEL_RATE_HZ, sample_rate)
            self._upsampler.prepare(channels, max_block)
            self._core_max = self._upsampler.max_output(max_block)
            self._downsampler.prepare(channels, self._core_max)
            pad, chain = round_trip_padding(sample_rate, engine_latency)
            self._margin = self._availability_margin()
            self._pad_ring = np.zeros((channels, pad), np.float32)
            self._pad_state = np.zeros(1, np.int64)
            self._padded = np.zeros((channels, self._core_max), np.float32)
            self._latency = chain + self._margin
            capacity = max_block + self._downsampler.max_output(self._core_max) + self._margin + 1
            self._fifo = np.zeros((channels, capacity), np.float32)
            self._fifo_state = np.zeros(2, np.int64)  # [read index, samples held]
        self._core_out = np.zeros((channels, self._core_max), np.float32)
        self._out = np.zeros((channels, max_block), np.float32)
        self._staged = np.zeros((channels, max_block), np.float32)  # float64 / read-only input, as float32
        self._flush_in = np.zeros((channels, max_block), np.float32)
        self._latency_parts = self._split_latency()
        self.reset()
        self._warm_up()

    def _warm_up(self) -> None:
        """Run two hops of silence through every stage, in whole and partial blocks, then forget them.

        onnxruntime's first run (and any kernel of a stage without fixed signatures, compiled at its first
        call for the stage's fixed buffer types) happens here, not in the first real `process()` call.
        """
        remaining = 2 * self.hop * self.sample_rate // MODEL_RATE_HZ + 2
        while remaining > 0:
            n = min(self.max_block, remaining)
            self._process_piece(self._flush_in[:, :n], self._out[:, :n])
            self._process_piece(self._flush_in[:, :1], self._out[:, :1])
            remaining -= n + 1
        self.reset()

    def _split_latency(self) -> dict[str, int]:
        """Latency parts at the host rate; resampling takes what is left after the engine parts (0 at 48 kHz)."""
        scale = self.sample_rate / MODEL_RATE_HZ
        stft = round((self.fft_size - 1) * scale)
        model = round(self.hop * self.model.lookahead_frames * scale)
        phase = round(self.hop * self.phase.lookahead_frames * scale)
        return {"stft": stft, "model_lookahead": model, "phase_lookahead": phase,
                "resampling": self._latency - stft - model - phase}

    def _availability_margin(self) -> int:
        """Host samples by which the resampled chain's output can trail its input at block size 1.

        Counts only: a stream of single samples goes through both resamplers for a few periods of
        their polyphase pattern, and the worst shortfall of produced against consumed is the margin.
        """
        produced, worst = 0, 0
        one = np.zeros((self.channels, 1), np.float32)
        for consumed in range(1, 4 * self.sample_rate // np.gcd(self.sample_rate, MODEL_RATE_HZ) + 4096):
            up = self._upsampler.process(one)
            produced += self._downsampler.process(up).shape[1]
            worst = max(worst, consumed - produced)
        self._upsampler.reset()
        self._downsampler.reset()
        return worst

    def reset(self) -> None:
        """Forget all signal history: the next sample is processed as if the stream just began."""
        self._require_prepared()
        self.model.reset()
        self.gate.reset()
        self.level.reset()
        self.phase.reset()
        self._analysis.reset()
        self._synthesis.reset()
        for buffer in (self._hop_in, self._hop_out, self._spectra, self._magnitudes):
            buffer[...] = 0
        self._counters[:] = 0
        self._frame_index = 0
        if self._downsampler is not None:
            self._upsampler.reset()
            self._downsampler.reset()
            self._pad_ring[:] = 0.0
            self._pad_state[:] = 0
            self._fifo[:] = 0.0
            self._fifo_state[:] = (0, self._margin)  # primed with `margin` samples of silence
        self.nonfinite_count = 0

    # -- processing ------------------------------------------------------------------------------
    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Restore block (channels, n), float32 or float64, any layout, any n >= 0 (longer than
        `max_block`: processed in pieces). Returns (channels, n) float32: `out` when given (float32,
        writable, that shape; may be `block` itself), else a new array. With a float32 writable block
        and `out`, nothing is allocated.

        Non-finite input samples are replaced by 0 and counted in `nonfinite_count`.
        """
        self._require_prepared()
        if (not isinstance(block, np.ndarray) or block.ndim != 2 or block.shape[0] != self.channels
                or block.dtype not in _FLOATS):
            raise ValueError(f"Restorer.process: block must be a ({self.channels}, n) float32 or float64 array, "
                             f"got {_describe(block)}")
        n = block.shape[1]
        if out is None:
            out = np.empty((self.channels, n), np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (self.channels, n)
              or not out.flags.writeable):
            raise ValueError(f"Restorer.process: out must be a writable ({self.channels}, {n}) float32 array, "
                             f"got {_describe(out)}")
        staged = block.dtype != np.float32 or not (block.flags.writeable and block.flags.aligned)
        if n <= self.max_block:
            self._process_piece(block, out, staged)
        else:
            for start in range(0, n, self.max_block):
                stop = min(n, start + self.max_block)
                self._process_piece(block[:, start:stop], out[:, start:stop], staged)
        self.nonfinite_count = int(self._counters[1])
        return out

    def _process_piece(self, block: np.ndarray, out: np.ndarray, staged: bool = False) -> None:
        """block (C, m <= max_block) -> out (C, m) float32; `staged`: copy block to float32 first."""
        if staged:
            piece = self._staged[:, : block.shape[1]]
            np.copyto(piece, block, casting="same_kind")
            block = piece
        if self._downsampler is None:
            self._run_core(block, out)
        else:
            up = self._upsampler.process(block)
            core_out = self._core_out[:, : up.shape[1]]
            self._run_core(up, core_out)
            delayed = self._delay_by_pad(core_out)
            down = self._downsampler.process(delayed)
            _fifo_exchange(self._fifo, self._fifo_state, down, out)

    def flush(self) -> np.ndarray:
        """Output for `latency_samples` of silence after the last block: the tail, a new (channels, latency) array."""
        self._require_prepared()
        tail = np.zeros((self.channels, self._latency), np.float32)
        for start in range(0, self._latency, self.max_block):
            stop = min(self._latency, start + self.max_block)
            self.process(self._flush_in[:, : stop - start], out=tail[:, start:stop])
        return tail

    def restore(self, audio: npt.ArrayLike, sample_rate: int, max_block: int = BLOCK_SAMPLES) -> np.ndarray:
        """A whole signal, (samples,) or (channels, samples) float32/float64 at `sample_rate` Hz, restored:
        same shape and dtype, delay compensated (output sample t is input sample t). Prepares the
        restorer (or only resets it when it is already prepared for this rate, channels and block)."""
        signal = np.asarray(audio)
        if signal.dtype not in _FLOATS or signal.ndim not in (1, 2):
            raise ValueError("restore: audio must be (samples,) or (channels, samples) float32 or float64, "
                             f"got {_describe(signal)}")
        planar = signal.reshape(1, -1) if signal.ndim == 1 else signal
        channels, n = planar.shape
        if channels > MAX_CHANNELS >= n:
            raise ValueError(f"restore: audio must be (channels, samples), got {signal.shape}: transpose a "
                             "(frames, channels) array such as soundfile's")
        if (self.sample_rate, self.channels, self.max_block) == (sample_rate, channels, max_block):
            self.reset()
        else:
            self.prepare(sample_rate, channels, max_block)
        out = np.empty((channels, n), np.float32)
        position = 0
        for piece in compensated(self, (planar[:, start : start + max_block] for start in range(0, n, max_block))):
            out[:, position : position + piece.shape[1]] = piece
            position += piece.shape[1]
        return out.reshape(signal.shape).astype(signal.dtype, copy=False)

    def codec_report(self) -> dict[str, Any]:
        """What the codec gate detected since the last `reset`: `engaged` (bool), `cutoff_hz` (float or
        None), `engaged_after_s` (s from stream start to the first engagement, or None), `restored_share`
        (share of active frames the gate restored anything in, 0..1), `gate_enabled` (False with the
        pass-through model, which has nothing to add) and `model_input_gain_db` (the gain the level stage
        gives the model's input now, dB; 0 when off)."""
        report = dict(self.gate.report())
        report["gate_enabled"] = self.gate_enabled
        report["model_input_gain_db"] = round(self.level.gain_db, 2)
        return report

    def _delay_by_pad(self, block: np.ndarray) -> np.ndarray:
        """Delay block (C, m) by the round-trip pad (model-rate samples) through a preallocated line."""
        if self._pad_ring.shape[1] == 0:
            return block
        delayed = self._padded[:, : block.shape[1]]
        _delay_line(self._pad_ring, self._pad_state, block, delayed)
        return delayed

    def _run_core(self, block: np.ndarray, out: np.ndarray) -> None:
        """Model-rate engine: block (C, n) -> out (C, n), hop-clocked, delay engine_latency_samples."""
        n = block.shape[1]
        position = 0
        while position < n:
            position = _exchange(block, position, self._hop_in, self._hop_out, out, self._counters)
            if self._counters[0] == self.hop:
                self._process_hop()
                out[:, position - 1] = self._hop_out[:, 0]
                self._counters[0] = 0

    def _process_hop(self) -> None:
        """One hop: analysis -> (level ->) model -> gate -> phase -> synthesis into `_hop_out`."""
        depth = self._spectra.shape[0]
        now = self._frame_index % depth
        aligned = (self._frame_index + 1) % depth  # the frame the model's output belongs to
        if self._mid_side:
            _to_mid_side(self._hop_in)
        self._analysis.push_hop(self._hop_in, self._spectra[now], self._magnitudes[now])
        if self.level.enabled:
            self.level.scale_in(self._magnitudes[now], self._model_in)
            self.model.process(self._model_in, self._estimate, self._confidence)
            self.level.scale_out(self._estimate)
        else:
            self.model.process(self._magnitudes[now], self._estimate, self._confidence)
        if self.gate_enabled:
            self.gate.process(self._magnitudes[aligned], self._estimate, self._confidence, self._gated)
            magnitudes = self._gated
        else:
            magnitudes = self._estimate
        self.phase.process(magnitudes, self._spectra[aligned], self._phased)
        self._synthesis.push_frame(self._phased, self._hop_out)
        if self._mid_side:
            _from_mid_side(self._hop_out)
        self._frame_index += 1

    def describe(self) -> dict[str, Any]:
        """Model, STFT, phase and latency facts for `gapfill info` (latency needs `prepare`)."""
        facts: dict[str, Any] = {
            "model": self.model.describe(),
            "model_rate_hz": MODEL_RATE_HZ,
            "stft": {"fft_size": self.fft_size, "hop": self.hop, "bins": self.fft_size // 2 + 1,
                     "window": "hann (periodic), dual synthesis window"},
            "phase": dict(self.config.phase),
            "gate": {"enabled": self.gate_enabled},
            "stereo": self.config.model["stereo"],
            "input_level": {"enabled": self.level.enabled, "target_db": self.config.model["input_level_db"],
                            "max_boost_db": self.config.model["max_boost_db"]},
            "config": self.config.source,
            "supported_rates_hz": list(SUPPORTED_RATES_HZ),
            "max_channels": MAX_CHANNELS,
        }
        if self.sample_rate is not None:
            facts["sample_rate_hz"] = self.sample_rate
            facts["latency_samples"] = self._latency
            facts["latency_ms"] = 1000.0 * self._latency / self.sample_rate
            facts["latency_parts"] = dict(self._latency_parts)
        return facts

    def _require_prepared(self) -> None:
        if self.sample_rate is None:
            raise RuntimeError("Restorer.prepare() must be called first")


def check_sample_rate(sample_rate: int) -> None:
    """Raise a one-line GapfillError unless `sample_rate` (Hz) is one of SUPPORTED_RATES_HZ."""
    if sample_rate not in SUPPORTED_RATES_HZ:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES_HZ)
        raise GapfillError(f"sample rate {sample_rate} Hz is not supported (supported: {rates})")


def _describe(array: Any) -> str:
    """'float64 (2, 100) array' or the type's name: what a caller gave, for a one-line error."""
    if isinstance(array, np.ndarray):
        return f"{array.dtype} {array.shape} array"
    return type(array).__name__


def compensated(restorer: Restorer, blocks: Iterable[np.ndarray], compensate: bool = True) -> Iterator[np.ndarray]:
    """Restore blocks (channels, n) of any length; yield output blocks (channels, m) float32, each valid
    until the next step (one buffer, allocated here, is reused).

    compensate: drop the first `restorer.latency_samples` of output and end with the flushed tail, so
    the output has as many samples as the input, aligned; otherwise one output sample per input sample
    (delayed by the latency) and no tail.
    """
    skip = restorer.latency_samples if compensate else 0
    buffer = np.empty((restorer.channels, restorer.max_block), np.float32)
    for block in blocks:
        for start in range(0, block.shape[1], restorer.max_block):
            piece = block[:, start : start + restorer.max_block]
            out = restorer.process(piece, out=buffer[:, : piece.shape[1]])
            dropped = min(skip, out.shape[1])
            skip -= dropped
            if out.shape[1] > dropped:
                yield out[:, dropped:]
    if compensate:
        yield restorer.flush()[:, skip:]


def restore(audio: npt.ArrayLike, sample_rate: int, config: ConfigSource = None) -> np.ndarray:
    """Restore a whole signal in one call: (samples,) or (channels, samples), float32 or float64, at
    `sample_rate` Hz (one of SUPPORTED_RATES_HZ) -> the same shape and dtype, aligned sample for sample.

    config: a YAML file, an `EngineConfig`, overrides of the defaults (`{"phase": {"method": "rtpghi"}}`)
    or None (the shipped model and settings).
    """
    if isinstance(config, EngineConfig):
        restorer = Restorer(config)
    elif isinstance(config, Mapping):
        restorer = Restorer.from_config(None, config)
    else:
        restorer = Restorer.from_config(config)
    return restorer.restore(audio, sample_rate)


# Fixed signatures, compiled at import: host blocks and outputs may be any float32 views (C, F or strided).
@njit("int64(float32[:, :], int64, float32[:, ::1], float32[:, ::1], float32[:, :], int64[::1])",
      cache=True, nogil=True)
def _exchange(block, position, hop_in, hop_out, out, counters) -> int:
    """Move samples from block[:, position:] into hop_in until the hop is full or the block ends.

    For each sample taken, writes the output sample one ahead in the last finalised hop
    (hop_out[fill + 1]); the sample that completes a hop is written by the caller after processing.
    Non-finite samples become 0 and are counted in counters[1]. Returns the new position.
    """
    channels, n = block.shape
    hop = hop_in.shape[1]
    fill = counters[0]
    take = min(n - position, hop - fill)
    for i in range(take):
        for c in range(channels):
            value = block[c, position + i]
            if not np.isfinite(value):
                value = 0.0
                counters[1] += 1
            hop_in[c, fill + i] = value
            if fill + i + 1 < hop:
                out[c, position + i] = hop_out[c, fill + i + 1]
    counters[0] = fill + take
    return position + take


@njit("void(float32[:, ::1])", cache=True, nogil=True)
def _to_mid_side(x) -> None:
    """x (2, n) left, right -> mid (L + R) / 2, side (L - R) / 2, in place."""
    for i in range(x.shape[1]):
        left, right = x[0, i], x[1, i]
        x[0, i] = 0.5 * (left + right)
        x[1, i] = 0.5 * (left - right)


@njit("void(float32[:, ::1])", cache=True, nogil=True)
def _from_mid_side(x) -> None:
    """x (2, n) mid, side -> left M + S, right M - S, in place."""
    for i in range(x.shape[1]):
        mid, side = x[0, i], x[1, i]
        x[0, i] = mid + side
        x[1, i] = mid - side


@njit("void(float32[:, ::1], int64[::1], float32[:, :], float32[:, :])", cache=True, nogil=True)
def _delay_line(ring, state, block, out) -> None:
    """out (C, m) <- block (C, m) delayed by ring.shape[1] samples; state[0] is the ring index."""
    channels, length = ring.shape
    index = state[0]
    for i in range(block.shape[1]):
        for c in range(channels):
            out[c, i] = ring[c, index]
            ring[c, index] = block[c, i]
        index = (index + 1) % length
    state[0] = index


@njit("void(float32[:, ::1], int64[::1], float32[:, :], float32[:, :])", cache=True, nogil=True)
def _fifo_exchange(fifo, state, incoming, out) -> None:
    """Append incoming (C, r) to the ring fifo, then read out (C, n) from it (state: [read, held])."""
    channels, capacity = fifo.shape
    read, held = state[0], state[1]
    write = (read + held) % capacity
    for i in range(incoming.shape[1]):
        for c in range(channels):
            fifo[c, (write + i) % capacity] = incoming[c, i]
    held += incoming.shape[1]
    for i in range(out.shape[1]):
        for c in range(channels):
            out[c, i] = fifo[c, (read + i) % capacity]
    if held < out.shape[1]:
        raise RuntimeError("resampled output fell behind its latency margin")
    state[0] = (read + out.shape[1]) % capacity
    state[1] = held - out.shape[1]
