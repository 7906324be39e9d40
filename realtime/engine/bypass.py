"""Bypass stage: where the engine changed nothing, output the input itself, delayed, bit for bit.

Analysis and synthesis reconstruct a frame the stages left alone only to float rounding (about 1e-7 of full
scale), and so do mid and side turned back into left and right. The last stage, after synthesis, removes that
rounding: it keeps the raw input hops (`HopBuffers.hop_in`, as they came) of the last D + 1 hops, D = the
other stages' latency / hop, hands the oldest on (`HopBuffers.hop_delayed`), and while every frame that
overlaps the output hop (the last `synthesis_span / hop` frames, `realtime.engine.windows.synthesis_span`) was
unmodified (`HopBuffers.unmodified`, from the strength stage) it overwrites `hop_out` with the input hop of D
hops ago, which is what synthesis approximated: the switch in either direction is a step of float rounding, so
no crossfade is needed. The silent past before a reset counts as unmodified. `HopBuffers.bypassed` says
which hops it replaced. Adds no delay; `process_hop` allocates nothing.
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers


class BypassStage:
    """Replaces `hop_out` by the input hop of `delay_samples` ago while no frame under it was modified."""

    name = "bypass"
    latency_samples = 0

    def __init__(self, hop: int, span: int, delay_samples: int) -> None:
        """hop: samples per hop; span: the synthesis window's support (samples, a multiple of hop);
        delay_samples: the other stages' latency (samples, a multiple of hop), by which synthesis's output
        hop trails the input hop of the same call."""
        if delay_samples % hop or span % hop:
            raise ValueError(f"bypass: the stages' latency ({delay_samples}) and the synthesis span ({span}) "
                             f"must be whole hops of {hop}")
        self.hop = hop
        self.delay_hops = delay_samples // hop
        self.frames_needed = span // hop
        """Unmodified frames in a row that make an output hop exact: every frame overlapping it."""
        self.prepare(1)

    def prepare(self, channels: int) -> None:
        """Allocate the ring of the last delay_hops + 1 input hops, (D + 1, C, hop) f32."""
        self._ring = np.zeros((self.delay_hops + 1, channels, self.hop), np.float32)
        self._state = np.zeros(2, np.int64)  # [ring slot of this hop's input, unmodified frames in a row]
        self.reset()

    def reset(self) -> None:
        """Forget the input (silence) and count the silent past as unmodified."""
        self._ring[...] = 0
        self._state[:] = (0, self.frames_needed)

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.hop_delayed <- the input hop of delay_hops ago; buffers.hop_out <- the same while the last
        frames_needed frames were unmodified; buffers.bypassed <- whether it did."""
        _bypass(buffers.hop_in, buffers.hop_out, buffers.hop_delayed, buffers.unmodified, buffers.bypassed,
                self._ring, self._state, self.frames_needed)


@njit("void(float32[:, ::1], float32[:, ::1], float32[:, ::1], int64[::1], int64[::1], float32[:, :, ::1], "
      "int64[::1], int64)", cache=True, nogil=True)
def _bypass(hop_in, hop_out, hop_delayed, unmodified, bypassed, ring, state, frames_needed) -> None:
    """ring[slot] <- hop_in; hop_delayed <- ring[slot + 1] (the hop of ring.shape[0] - 1 hops ago), and
    hop_out <- the same when this and the frames_needed - 1 frames before were unmodified; state: [slot,
    unmodified frames in a row]."""
    slot = state[0]
    channels, hop = hop_in.shape
    for c in range(channels):
        for i in range(hop):
            ring[slot, c, i] = hop_in[c, i]
    run = min(state[1] + 1, frames_needed) if unmodified[0] == 1 else 0
    oldest = (slot + 1) % ring.shape[0]
    for c in range(channels):
        for i in range(hop):
            hop_delayed[c, i] = ring[oldest, c, i]
    if run >= frames_needed:
        for c in range(channels):
            for i in range(hop):
                hop_out[c, i] = ring[oldest, c, i]
        bypassed[0] = 1
    else:
        bypassed[0] = 0
    state[0] = oldest
    state[1] = run
