"""The `Restorer` processor: any host block in, the same number of restored samples out, fixed latency.

Life cycle (pedalboard/JUCE style): `prepare(sample_rate, channels, max_block)` allocates everything;
`process(block)` takes (channels, n) float32 for any n >= 0 and returns n samples; `flush()` returns the
tail at end of stream; `reset()` forgets the past; `latency_samples` is the true delay at the host rate.

Inside, at the model rate (48 kHz): host samples fill a hop buffer; each full hop runs
analysis -> model -> gate -> phase -> synthesis and yields one finalised hop, from which the next hop's
output samples are read one sample ahead, so the delay is fft_size - 1 samples plus the look-ahead
frames of the model and phase stages. Other host rates are resampled in and out in streaming fashion
and the round trip is padded to a whole number of host samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from realtime.config import EngineConfig, load_config
from realtime.errors import GapfillError
from realtime.gate import CodecGate
from realtime.model import MODEL_RATE_HZ, PassThroughModel, load_model
from realtime.phase import PhaseStage
from realtime.resample import StreamingResampler, round_trip_padding
from realtime.stft import StreamingAnalysis, StreamingSynthesis

SUPPORTED_RATES_HZ = (16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000)
MAX_CHANNELS = 8


class Restorer:
    """Streaming restorer; one instance per stream, channels processed independently."""

    supported_rates = SUPPORTED_RATES_HZ
    max_channels = MAX_CHANNELS

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.fft_size, self.hop = config.fft_size, config.hop
        self.model = load_model(config.model["path"], config.model["threads"], self.fft_size, self.hop)
        self.gate_enabled = bool(config.gate["enabled"]) and not isinstance(self.model, PassThroughModel)
        self.gate = CodecGate(config.gate, MODEL_RATE_HZ, self.fft_size, self.hop)
        self.phase = PhaseStage(config.phase, self.fft_size, self.hop)
        self.sample_rate: int | None = None
        self.channels = 0
        self.nonfinite_count = 0

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> "Restorer":
        """A restorer built from the YAML file at `path` (None: the shipped defaults)."""
        return cls(load_config(path))

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
        if sample_rate not in SUPPORTED_RATES_HZ:
            rates = ", ".join(str(r) for r in SUPPORTED_RATES_HZ)
            raise GapfillError(f"sample rate {sample_rate} Hz is not supported (supported: {rates})")
        if not 1 <= channels <= MAX_CHANNELS:
            raise GapfillError(f"{channels} channels are not supported (1 to {MAX_CHANNELS})")
        if max_block < 1:
            raise GapfillError(f"block size must be at least 1 sample, got {max_block}")
        self.sample_rate, self.channels, self.max_block = sample_rate, channels, max_block
        bins = self.fft_size // 2 + 1
        depth = self.model.lookahead_frames + 1

        self.model.prepare(channels)
        self.gate.prepare(channels)
        self.phase.prepare(channels)
        self._analysis = StreamingAnalysis(self.fft_size, self.hop, channels)
        self._synthesis = StreamingSynthesis(self.fft_size, self.hop, channels)
        self._hop_in = np.zeros((channels, self.hop), np.float32)
        self._hop_out = np.zeros((channels, self.hop), np.float32)
        self._spectra = np.zeros((depth, channels, bins), np.complex64)  # ring over model look-ahead
        self._magnitudes = np.zeros((depth, channels, bins), np.float32)
        self._estimate = np.zeros((channels, bins), np.float32)
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
        self._flush_in = np.zeros((channels, max_block), np.float32)
        self._latency_parts = self._split_latency()
        self.reset()
        self._warm_up()

    def _warm_up(self) -> None:
        """Run two hops of silence through every stage, then forget them.

        The first call of each stage loads Numba kernels from the cache and runs onnxruntime once (about
        0.5 s); doing it here keeps that stall out of the first real `process()` call.
        """
        remaining = 2 * self.hop * self.sample_rate // MODEL_RATE_HZ + 2
        while remaining > 0:
            n = min(self.max_block, remaining)
            self.process(self._flush_in[:, :n])
            remaining -= n
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
    def process(self, block: np.ndarray) -> np.ndarray:
        """Restore block (channels, n) float32, n <= max_block; returns (channels, n), valid until the next call.

        Non-finite input samples are replaced by 0 and counted in `nonfinite_count`.
        """
        self._require_prepared()
        if block.ndim != 2 or block.shape[0] != self.channels or block.shape[1] > self.max_block:
            raise ValueError(
                f"block must be ({self.channels}, n <= {self.max_block}), got {tuple(block.shape)}"
            )
        n = block.shape[1]
        out = self._out[:, :n]
        if self._downsampler is None:
            self._run_core(block, out)
        else:
            up = self._upsampler.process(block)
            core_out = self._core_out[:, : up.shape[1]]
            self._run_core(up, core_out)
            delayed = self._delay_by_pad(core_out)
            down = self._downsampler.process(delayed)
            _fifo_exchange(self._fifo, self._fifo_state, down, out)
        self.nonfinite_count = int(self._counters[1])
        return out

    def flush(self) -> np.ndarray:
        """Output for `latency_samples` of silence after the last block: the tail, (channels, latency)."""
        self._require_prepared()
        tail = np.zeros((self.channels, self._latency), np.float32)
        done = 0
        while done < self._latency:
            n = min(self.max_block, self._latency - done)
            tail[:, done : done + n] = self.process(self._flush_in[:, :n])
            done += n
        return tail

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
        """One hop: analysis -> model -> gate -> phase -> synthesis into `_hop_out`."""
        depth = self._spectra.shape[0]
        now = self._frame_index % depth
        aligned = (self._frame_index + 1) % depth  # the frame the model's output belongs to
        self._analysis.push_hop(self._hop_in, self._spectra[now], self._magnitudes[now])
        self.model.process(self._magnitudes[now], self._estimate)
        if self.gate_enabled:
            self.gate.process(self._magnitudes[aligned], self._estimate, self._gated)
            magnitudes = self._gated
        else:
            magnitudes = self._estimate
        self.phase.process(magnitudes, self._spectra[aligned], self._phased)
        self._synthesis.push_frame(self._phased, self._hop_out)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
