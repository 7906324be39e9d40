"""The hop chain: the engine at the model rate, its stages in order, one hop at a time.

    analysis -> level -> model -> gate -> phase -> strength -> synthesis -> bypass -> ceiling
                                                                    (realtime/engine/stage.py: the protocol)

Host samples fill a hop buffer (`HopBuffers.hop_in`); each full hop runs every stage once and yields one
finalised hop (`hop_out`), from which the next hop's output samples are read one sample ahead. That hop
clock delays the signal by hop - 1 samples; the stages add their own `latency_samples` (synthesis the
frame's span beyond its newest hop, model and phase their look-ahead), and the chain's latency is the
sum: fft_size - 1 + hop * (model and phase look-ahead frames) with the shipped settings. Beside each
output sample the chain says whether it is the input delayed bit for bit (`exact`, from
`HopBuffers.bypassed`; the resampling wrapper uses it). An observer attached with `observe` sees every
stage of every hop (`HopObserver`); with none attached the loop calls nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers, HopObserver, Stage

HOP_CLOCK = "hop_clock"
"""The name of the hop clock's part of the latency (hop - 1 samples)."""


class HopChain:
    """Stages run hop by hop at the model rate: `process(block, out)` for any block length, fixed delay."""

    def __init__(self, stages: Sequence[Stage], fft_size: int, hop: int, model_lookahead_frames: int) -> None:
        """stages: in signal order, each reading what the ones before it wrote into the `HopBuffers`."""
        self.stages = tuple(stages)
        self.fft_size, self.hop, self.model_lookahead_frames = fft_size, hop, model_lookahead_frames
        self.observer: HopObserver | None = None
        self.buffers = HopBuffers(1, fft_size, hop, model_lookahead_frames)
        self.counters = np.zeros(2, np.int64)  # [hop fill, non-finite samples replaced since reset]
        self.exact = np.zeros((1, 0), np.float32)
        """(1, max_block) f32: after `process(block, out)`, exact[0, i] is 1 where out[:, i] is the input of
        `latency_samples` before, bit for bit (a bypassed hop, or the silence before the stream), else 0."""

    @property
    def latency_parts(self) -> dict[str, int]:
        """Delay of the hop clock and of each stage, in samples at the model rate, in signal order."""
        return {HOP_CLOCK: self.hop - 1, **{stage.name: stage.latency_samples for stage in self.stages}}

    @property
    def latency_samples(self) -> int:
        """Input-to-output delay in samples at the model rate: the sum of `latency_parts`."""
        return sum(self.latency_parts.values())

    @property
    def nonfinite_count(self) -> int:
        """Non-finite input samples replaced by 0 since the last reset."""
        return int(self.counters[1])

    def prepare(self, channels: int, max_block: int) -> None:
        """Allocate the hop buffers and every stage's state for `channels` streams (any block length)."""
        self.buffers = HopBuffers(channels, self.fft_size, self.hop, self.model_lookahead_frames)
        self.exact = np.zeros((1, max_block), np.float32)
        for stage in self.stages:
            stage.prepare(channels)
        self.reset()

    def reset(self) -> None:
        """Forget all signal history in the buffers and every stage."""
        for stage in self.stages:
            stage.reset()
        self.buffers.reset()
        self.counters[:] = 0

    def observe(self, observer: HopObserver | None) -> None:
        """Attach `observer` to every stage of every hop from now on (None: detach)."""
        self.observer = observer

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """block (C, n <= max_block) f32 at the model rate -> out (C, n) f32, delayed by `latency_samples`;
        `exact[0, :n]` says which output samples are the input itself."""
        n = block.shape[1]
        buffers, counters, exact = self.buffers, self.counters, self.exact
        if n > exact.shape[1]:
            raise ValueError(f"HopChain.process: block of {n} samples, prepared for at most {exact.shape[1]}")
        position = 0
        while position < n:
            position = _exchange(block, position, buffers.hop_in, buffers.hop_out, buffers.bypassed, out, exact,
                                 counters)
            if counters[0] == self.hop:
                self._process_hop()
                out[:, position - 1] = buffers.hop_out[:, 0]
                exact[0, position - 1] = buffers.bypassed[0]
                counters[0] = 0

    def _process_hop(self) -> None:
        """One hop through every stage, hop_in -> hop_out."""
        buffers, observer = self.buffers, self.observer
        buffers.bypassed[0] = 0  # until a bypass stage says otherwise
        if observer is None:
            for stage in self.stages:
                stage.process_hop(buffers)
        else:
            for stage in self.stages:
                observer.stage_started(stage.name)
                stage.process_hop(buffers)
                observer.stage_finished(stage.name, buffers)
        buffers.frame_index += 1


# Fixed signatures, compiled at import: host blocks and outputs may be any float32 views (C, F or strided).
@njit("int64(float32[:, :], int64, float32[:, ::1], float32[:, ::1], int64[::1], float32[:, :], float32[:, ::1], "
      "int64[::1])", cache=True, nogil=True)
def _exchange(block, position, hop_in, hop_out, bypassed, out, exact, counters) -> int:
    """Move samples from block[:, position:] into hop_in until the hop is full or the block ends.

    For each sample taken, writes the output sample one ahead in the last finalised hop
    (hop_out[fill + 1]) and whether that hop was bypassed (exact[0]); the sample that completes a hop is
    written by the caller after processing. Non-finite samples become 0 and are counted in counters[1].
    Returns the new position.
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
        if fill + i + 1 < hop:
            exact[0, position + i] = bypassed[0]
    counters[0] = fill + take
    return position + take
