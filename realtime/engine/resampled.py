"""The resampling wrapper: runs a model-rate processor (the hop chain) at any supported host rate.

Like pedalboard's `Resample`, it wraps the whole chain without touching it: host blocks are resampled
up to the model rate (`StreamingResampler`), run through the inner processor, delayed by a pad of
0 <= pad < lcm(host, model) / host model-rate samples and resampled back, so that the round trip is an
exact whole number of host samples (`round_trip_padding`). The down-resampler's output can trail its
input by a few samples at small blocks; a FIFO primed with that many samples of silence (the margin,
found by counting at block size 1) keeps one output sample per input sample, and the latency is the round
trip plus the margin.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.resample import StreamingResampler, round_trip_padding

class ModelRateProcessor(Protocol):
    """What the wrapper needs of the processor it wraps (the hop chain)."""

    @property
    def latency_samples(self) -> int: ...
    def prepare(self, channels: int, max_block: int) -> None: ...
    def reset(self) -> None: ...
    def process(self, block: np.ndarray, out: np.ndarray) -> None: ...


class Resampled:
    """`inner` (at the model rate) run at `host_rate` Hz: `process(block, out)` one host sample out per
    host sample in, delayed by `latency_samples` host samples."""

    def __init__(self, inner: ModelRateProcessor, host_rate: int) -> None:
        self.inner, self.host_rate = inner, host_rate
        self.upsampler = StreamingResampler(host_rate, MODEL_RATE_HZ)
        self.downsampler = StreamingResampler(MODEL_RATE_HZ, host_rate)
        self.margin = 0

    @property
    def latency_samples(self) -> int:
        """Input-to-output delay in host samples: the exact round trip plus the FIFO's margin."""
        return round_trip_padding(self.host_rate, self.inner.latency_samples)[1] + self.margin

    def prepare(self, channels: int, max_block: int) -> None:
        """Allocate both resamplers, the pad line and the FIFO for blocks of up to `max_block` host samples."""
        self.upsampler.prepare(channels, max_block)
        inner_max = self.upsampler.max_output(max_block)
        self.downsampler.prepare(channels, inner_max)
        self.inner.prepare(channels, inner_max)
        pad, _ = round_trip_padding(self.host_rate, self.inner.latency_samples)
        self.margin = self._availability_margin(channels)
        self._pad_ring = np.zeros((channels, pad), np.float32)
        self._pad_state = np.zeros(1, np.int64)
        self._padded = np.zeros((channels, inner_max), np.float32)
        self._inner_out = np.zeros((channels, inner_max), np.float32)
        capacity = max_block + self.downsampler.max_output(inner_max) + self.margin + 1
        self._fifo = np.zeros((channels, capacity), np.float32)
        self._fifo_state = np.zeros(2, np.int64)  # [read index, samples held]
        self.reset()

    def _availability_margin(self, channels: int) -> int:
        """Host samples by which the resampled chain's output can trail its input at block size 1.

        Counts only: a stream of single samples goes through both resamplers for a few periods of
        their polyphase pattern, and the worst shortfall of produced against consumed is the margin.
        """
        produced, worst = 0, 0
        one = np.zeros((channels, 1), np.float32)
        for consumed in range(1, 4 * self.host_rate // np.gcd(self.host_rate, MODEL_RATE_HZ) + 4096):
            up = self.upsampler.process(one)
            produced += self.downsampler.process(up).shape[1]
            worst = max(worst, consumed - produced)
        self.upsampler.reset()
        self.downsampler.reset()
        return worst

    def reset(self) -> None:
        """Forget all history: resamplers, inner processor, pad line; the FIFO primed with the margin."""
        self.inner.reset()
        self.upsampler.reset()
        self.downsampler.reset()
        self._pad_ring[:] = 0.0
        self._pad_state[:] = 0
        self._fifo[:] = 0.0
        self._fifo_state[:] = (0, self.margin)  # primed with `margin` samples of silence

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """block (C, m <= max_block) f32 at the host rate -> out (C, m) f32."""
        up = self.upsampler.process(block)
        inner_out = self._inner_out[:, : up.shape[1]]
        self.inner.process(up, inner_out)
        down = self.downsampler.process(self._delay_by_pad(inner_out))
        _fifo_exchange(self._fifo, self._fifo_state, down, out)

    def _delay_by_pad(self, block: np.ndarray) -> np.ndarray:
        """Delay block (C, m) by the round-trip pad (model-rate samples) through a preallocated line."""
        if self._pad_ring.shape[1] == 0:
            return block
        delayed = self._padded[:, : block.shape[1]]
        _delay_line(self._pad_ring, self._pad_state, block, delayed)
        return delayed


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
