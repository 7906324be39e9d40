"""Strength stage: how far each restored bin moves from the decoded magnitude toward the restored one.

Between the phase stage and synthesis, per bin of the frame the phase stage wrote (frame k minus the
phase look-ahead), with the decoded spectrum d of the same frame and the restored spectrum r:

    |out| = (1 - s) |d| + s |r|    with the phase of r (of d where r is 0)

s = `strength` (0..1), in linear magnitude: LSD and ViSQOL move from the first step on, where in the log
domain they barely moved below s = 0.5 (a codec's holes and the band above its cutoff are near zero, so a
geometric mean with them stays near zero; README, Results, Strength). At s = 1 the restored spectrum passes
untouched (the engine's output bit for bit); at s = 0 the decoded spectrum itself is synthesised. Bins the
gate kept have |r| = |d| and stay.

It also says whether the frame it hands to synthesis is unmodified (`HopBuffers.unmodified`): 1 when, in
every channel and bin, |out - d| <= UNMODIFIED_ULPS float32 ulps of the channel's largest |d| (plus as many
of float32's smallest subnormal steps), which the decoded spectrum passed through the phase stage's decoded
or completion method meets (s = 0 always does; so does a gate that keeps every bin). That is the float
rounding of the frame's own analysis and synthesis, which spreads over all bins in proportion to the
frame's largest: a bin far below it, say the onset of a low-passed clip rising out of digital silence
through subnormal levels, cannot be held to ulps of its own magnitude. The bypass stage then outputs the
input itself (bypass.py), so strength 0 is the input delayed by the latency, bit for bit.

`set_strength` may be called at any time, from any thread: the value sits in a one-element array that the hop
kernel reads once per hop (a live front end's keys change it while the worker thread runs the engine).
Adds no delay; `process_hop` allocates nothing.
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers
from realtime.errors import GapfillError

UNMODIFIED_ULPS = 4.0
"""How far (float32 ulps of the channel's largest decoded bin) a bin may lie from the decoded one and count as
unmodified: float rounding (the completion phase method's float32 phase and polar round trip move a kept
bin by up to about 2.5 ulps of its own magnitude)."""
_TOLERANCE_SQUARED = (UNMODIFIED_ULPS * float(np.finfo(np.float32).eps)) ** 2
_SUBNORMAL_SQUARED = (UNMODIFIED_ULPS * float(np.finfo(np.float32).smallest_subnormal)) ** 2


class StrengthStage:
    """Mixes the phase stage's restored spectra (C, F) c64 with the decoded spectra of the same frames."""

    name = "strength"
    latency_samples = 0

    def __init__(self, strength: float, fft_size: int, phase_lookahead_frames: int) -> None:
        """strength: 0..1 (`model.strength`); phase_lookahead_frames: how many frames the phase stage's
        output trails the aligned decoded frame (0 or 1)."""
        self._strength = np.zeros(1, np.float64)
        self.set_strength(strength)
        self.bins = fft_size // 2 + 1
        self.phase_lookahead_frames = int(phase_lookahead_frames)
        self.prepare(1)

    @property
    def strength(self) -> float:
        """0 (the decoded input, delayed) .. 1 (fully restored)."""
        return float(self._strength[0])

    def set_strength(self, strength: float) -> None:
        """Use `strength` (0..1; GapfillError otherwise) from the next hop on."""
        if not 0.0 <= strength <= 1.0:
            raise GapfillError(f"strength must be a number between 0 and 1, got {strength!r}")
        self._strength[0] = strength

    def prepare(self, channels: int) -> None:
        """Allocate the delay line of decoded spectra, (phase look-ahead frames, C, F) complex64."""
        self._delayed = np.zeros((self.phase_lookahead_frames, channels, self.bins), np.complex64)

    def reset(self) -> None:
        """Forget the delayed decoded frames (silence)."""
        self._delayed[...] = 0

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.phased <- each bin's magnitude `strength` of the way from the decoded to the restored;
        buffers.unmodified <- whether that is the decoded frame within float rounding."""
        _mix(self._strength, buffers.phased, buffers.aligned_spectra, self._delayed, buffers.unmodified,
             _TOLERANCE_SQUARED)


@njit("void(float64[::1], complex64[:, ::1], complex64[:, ::1], complex64[:, :, ::1], int64[::1], float64)",
      cache=True, nogil=True)
def _mix(strength, phased, aligned, delayed, unmodified, tolerance_squared) -> None:
    """phased (C, F) <- its mix with the decoded frame of the same time: aligned (C, F) delayed by
    delayed.shape[0] frames (the delay line then takes `aligned`); unmodified[0] <- 1 when every bin of
    the result lies within sqrt(tolerance_squared) |d|max (the channel's largest decoded bin, plus the
    subnormal allowance) of the decoded bin d, else 0."""
    s = strength[0]
    depth = delayed.shape[0]
    channels, bins = phased.shape
    same = 1
    for c in range(channels):
        peak_squared = 0.0
        for m in range(bins):
            d = delayed[0, c, m] if depth > 0 else aligned[c, m]
            peak_squared = max(peak_squared, np.float64(d.real) ** 2 + np.float64(d.imag) ** 2)
            if s <= 0.0:
                phased[c, m] = d
            elif s < 1.0:
                r = phased[c, m]
                ad, ar = abs(d), abs(r)
                mag = ad + s * (ar - ad)
                if ar > 0.0:
                    phased[c, m] = r * np.float32(mag / ar)
                elif ad > 0.0:
                    phased[c, m] = d * np.float32(mag / ad)
        allowed_squared = tolerance_squared * peak_squared + _SUBNORMAL_SQUARED
        for m in range(bins):
            if same == 0:
                break
            d = delayed[0, c, m] if depth > 0 else aligned[c, m]
            d_re, d_im = np.float64(d.real), np.float64(d.imag)
            re, im = np.float64(phased[c, m].real) - d_re, np.float64(phased[c, m].imag) - d_im
            if re * re + im * im > allowed_squared:
                same = 0
        for k in range(depth - 1):
            for m in range(bins):
                delayed[k, c, m] = delayed[k + 1, c, m]
        if depth > 0:
            for m in range(bins):
                delayed[depth - 1, c, m] = aligned[c, m]
    unmodified[0] = same
