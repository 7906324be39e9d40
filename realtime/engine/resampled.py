"""The resampling wrapper: runs a model-rate processor (the hop chain) at any supported host rate.

Like pedalboard's `Resample`, it wraps the whole chain without touching it: host blocks are resampled
up to the model rate (`StreamingResampler`), run through the inner processor, delayed by a pad of
0 <= pad < lcm(host, model) / host model-rate samples and resampled back, so that the round trip is an
exact whole number of host samples (`round_trip_padding`). The down-resampler's output can trail its
input by a few samples at small blocks; a FIFO primed with that many samples of silence (the margin,
found by counting at block size 1) keeps one output sample per input sample, and the latency is the round
trip plus the margin.

Bypass at the host rate: where the inner chain's output is its input delayed bit for bit (its `exact`
mask: the bypass stage) over the whole support of a down-resampled sample (the down-resampler's
`taps_per_phase` model-rate samples, after the pad), that sample is the resampler round trip of the host
input, which differs from the input by the filters' band edge (above 0.45 of the lower rate) and ripple. It
is replaced by the host input of the round trip's delay before, kept in a ring, so that what the engine
leaves alone comes out bit for bit at every rate. As the two differ by more than rounding, the switch
crossfades linearly over BYPASS_FADE_S in either direction; the silence before a reset counts as exact.

The output ceiling at the host rate: the inner chain's ceiling stage holds its model-rate output within
max(ceiling, |input|), but resampling back down moves peaks between samples (a loud restored signal at
44.1 kHz passed the ceiling by up to 7 % of full scale). With `ceiling` set, each host output sample is held
to the same rule against the host input it stands for (`realtime.engine.ceiling.limit`).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.ceiling import limit
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.resample import StreamingResampler, round_trip_padding

BYPASS_FADE_S = 0.002
"""Crossfade (s) between the resampled output and the host input it stands for, as the inner chain's
bypass starts or stops (module docstring)."""


class ModelRateProcessor(Protocol):
    """What the wrapper needs of the processor it wraps (the hop chain)."""

    exact: np.ndarray
    """(1, max_block) f32 after `process`: 1 where the output sample is the input, delayed, bit for bit."""

    @property
    def latency_samples(self) -> int: ...
    def prepare(self, channels: int, max_block: int) -> None: ...
    def reset(self) -> None: ...
    def process(self, block: np.ndarray, out: np.ndarray) -> None: ...


class Resampled:
    """`inner` (at the model rate) run at `host_rate` Hz: `process(block, out)` one host sample out per
    host sample in, delayed by `latency_samples` host samples."""

    def __init__(self, inner: ModelRateProcessor, host_rate: int, ceiling: float = math.inf) -> None:
        """ceiling: linear (1 = full scale), the level past which the output may not take a sample the host
        input left under it; inf: off."""
        self.inner, self.host_rate, self.ceiling = inner, host_rate, ceiling
        self.upsampler = StreamingResampler(host_rate, MODEL_RATE_HZ)
        self.downsampler = StreamingResampler(MODEL_RATE_HZ, host_rate)
        self.margin = 0
        self.fade_samples = max(1, round(host_rate * BYPASS_FADE_S))
        """The bypass crossfade in host samples."""

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
        pad, self._round_trip = round_trip_padding(self.host_rate, self.inner.latency_samples)
        self.margin = self._availability_margin(channels)
        self._pad_ring = np.zeros((channels, pad), np.float32)
        self._pad_state = np.zeros(1, np.int64)
        self._padded = np.zeros((channels, inner_max), np.float32)
        self._exact_ring = np.zeros((1, pad), np.float32)  # the inner chain's exact mask, through the same pad
        self._exact_state = np.zeros(1, np.int64)
        self._exact_padded = np.zeros((1, inner_max), np.float32)
        self._inner_out = np.zeros((channels, inner_max), np.float32)
        # host input for the bypass: output sample j (before the FIFO) stands for input j - round trip, which
        # trails the newest input by at most the round trip, the margin and a block
        self._history = np.zeros((channels, self._round_trip + self.margin + max_block + 1), np.float32)
        self._stands_for = np.zeros((channels, self.downsampler.max_output(inner_max)), np.float32)
        self._bypass_state = np.zeros(5, np.int64)  # see _prefer_input
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
        """Forget all history: resamplers, inner processor, pad line, bypass (the silent past exact); the
        FIFO primed with the margin."""
        self.inner.reset()
        self.upsampler.reset()
        self.downsampler.reset()
        self._pad_ring[:] = 0.0
        self._pad_state[:] = 0
        self._exact_ring[:] = 1.0
        self._exact_state[:] = 0
        self._history[:] = 0.0
        self._bypass_state[:] = (self.downsampler.taps_per_phase, 0, 0, self.fade_samples, 0)
        self._fifo[:] = 0.0
        self._fifo_state[:] = (0, self.margin)  # primed with `margin` samples of silence

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """block (C, m <= max_block) f32 at the host rate -> out (C, m) f32."""
        up = self.upsampler.process(block)
        n = up.shape[1]
        inner_out = self._inner_out[:, :n]
        self.inner.process(up, inner_out)
        padded, exact = self._delay_by_pad(inner_out, self.inner.exact[:, :n])
        down = self.downsampler.process(padded)
        stands_for = self._stands_for[:, : down.shape[1]]
        _prefer_input(block, down, exact, self._history, self._bypass_state, self.downsampler.up,
                      self.downsampler.down, self.downsampler.taps_per_phase, self._round_trip, self.fade_samples,
                      stands_for)
        if self.ceiling != math.inf:
            limit(down, stands_for, self.ceiling)
        _fifo_exchange(self._fifo, self._fifo_state, down, out)

    def _delay_by_pad(self, block: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Delay block (C, m) and its exact mask (1, m) by the round-trip pad (model-rate samples) through
        preallocated lines."""
        if self._pad_ring.shape[1] == 0:
            return block, exact
        delayed, delayed_exact = self._padded[:, : block.shape[1]], self._exact_padded[:, : block.shape[1]]
        _delay_line(self._pad_ring, self._pad_state, block, delayed)
        _delay_line(self._exact_ring, self._exact_state, exact, delayed_exact)
        return delayed, delayed_exact


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


@njit("void(float32[:, :], float32[:, :], float32[:, :], float32[:, ::1], int64[::1], int64, int64, int64, int64, "
      "int64, float32[:, :])", cache=True, nogil=True)
def _prefer_input(block, resampled, exact, history, state, up, down, taps, round_trip, fade, stands_for) -> None:
    """Where the down-resampler's output stands for the host input, put that input there, crossfaded.

    block (C, n) f32: this call's host input (into the ring `history` (C, capacity), non-finite as 0);
    resampled (C, m) f32: this call's down-resampled samples, overwritten; exact (1, r) f32: the mask of the
    r model-rate samples they were resampled from (1: the inner chain's input delayed bit for bit). Output
    j reads model-rate inputs up to floor(j * down / up) (counted from the reset) and `taps` before it;
    while all were exact the crossfade position moves toward `fade`, else toward 0, and the sample becomes
    the host input of `round_trip` samples before it, weighted position / fade. state: [exact inputs in a
    row (at most taps), inputs counted, outputs made, crossfade position, host samples written]. stands_for
    (C, m) f32 <- the host input each output sample stands for.
    """
    channels, capacity = history.shape
    run, consumed, produced, position, written = state[0], state[1], state[2], state[3], state[4]
    for i in range(block.shape[1]):
        slot = (written + i) % capacity
        for c in range(channels):
            value = block[c, i]
            history[c, slot] = value if np.isfinite(value) else 0.0
    counted = 0
    for j in range(resampled.shape[1]):
        newest = (produced + j) * down // up - consumed
        while counted <= newest:
            run = min(run + 1, taps) if exact[0, counted] > 0.0 else 0
            counted += 1
        position = min(position + 1, fade) if run >= taps else max(position - 1, 0)
        source = produced + j - round_trip
        for c in range(channels):
            stands_for[c, j] = history[c, source % capacity] if source >= 0 else 0.0
        if position > 0:
            weight = position / fade
            for c in range(channels):
                value = stands_for[c, j]
                if position == fade:
                    resampled[c, j] = value
                else:
                    resampled[c, j] = weight * value + (1.0 - weight) * resampled[c, j]
    while counted < exact.shape[1]:
        run = min(run + 1, taps) if exact[0, counted] > 0.0 else 0
        counted += 1
    state[0], state[1], state[2] = run, consumed + exact.shape[1], produced + resampled.shape[1]
    state[3], state[4] = position, written + block.shape[1]


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
