"""Ceiling stage: what the restoration adds never takes an output sample past full scale.

Restoring a loud decoded signal adds the band above the cutoff and fills holes; summed with the input, the
output can pass full scale where the input did not (on test mixes normalised to full scale: model v1 up to
1.12 x, v2 up to 1.6 x), and an integer file or a sound card clips it, input and restoration alike. After
the bypass stage, per hop at the model rate, the output is y = d + e: d the input of the chain's latency ago
(`HopBuffers.hop_delayed`), e what the restoration added. Each sample takes the largest gain g in 0..1 on e
that keeps |d + g e| within A = max(ceiling, |d|) in every channel (ceiling = 10 ** (ceiling_db / 20); the
input's own overs are left as they are, never made larger); one gain for all channels, so a stereo image
stays where it is. The gain holds for that sample alone: held over a release time, as a limiter does, it
took the fill out of loud music far beyond its peaks (6 test mixes at 32-48 kbit/s, model v1: a 50 ms
release changed half the samples, LSD +0.68 dB, ViSQOL -0.071; per sample 0.05 % of them, LSD -0.12 dB,
ViSQOL -0.0003; README, Results, Output ceiling). Samples at gain 1 are left bit for bit, so a
hop that adds nothing (bypassed, or under the ceiling) is unchanged. At other host rates the resampling
wrapper applies the same rule to its host-rate output against the host input (realtime/engine/resampled.py):
resampling back down moves peaks between samples. Adds no delay; `process_hop` allocates nothing.
"""

from __future__ import annotations

import math

from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers


class CeilingStage:
    """Scales what the restoration added to `hop_out` at each sample where the sum would pass the ceiling."""

    name = "ceiling"
    latency_samples = 0

    def __init__(self, ceiling_db: float | None) -> None:
        """ceiling_db: the ceiling in dB re full scale (`model.ceiling_db`), None: off."""
        self.ceiling = math.inf if ceiling_db is None else 10.0 ** (ceiling_db / 20.0)

    def prepare(self, channels: int) -> None:
        """Nothing to allocate: the stage keeps no state."""

    def reset(self) -> None:
        """Nothing to forget."""

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.hop_out <- buffers.hop_delayed plus the restoration's part of hop_out, scaled at each
        sample where the sum would pass the ceiling."""
        if self.ceiling != math.inf:
            limit(buffers.hop_out, buffers.hop_delayed, self.ceiling)


@njit(["void(float32[:, ::1], float32[:, ::1], float64)", "void(float32[:, :], float32[:, :], float64)"],
      cache=True, nogil=True)
def limit(hop_out, hop_delayed, ceiling) -> None:
    """hop_out (C, n) <- hop_delayed + g (hop_out - hop_delayed), per sample the largest g in 0..1 that
    keeps every channel within max(ceiling, |hop_delayed|); hop_delayed (C, n) the input the output stands
    for. The resampling wrapper holds its host-rate output to the same ceiling with it."""
    channels, hop = hop_out.shape
    for i in range(hop):
        gain = 1.0
        for c in range(channels):
            d = float(hop_delayed[c, i])
            e = float(hop_out[c, i]) - d
            allowed = max(ceiling, abs(d))
            if abs(d + e) > allowed:  # then e != 0 and |d| <= allowed: the largest g with |d + g e| <= allowed
                gain = min(gain, (allowed - d) / e if e > 0.0 else (allowed + d) / -e)
        if gain < 1.0:
            for c in range(channels):
                d = float(hop_delayed[c, i])
                hop_out[c, i] = d + gain * (float(hop_out[c, i]) - d)
