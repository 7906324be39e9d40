"""Codec gate: keep what the codec kept, take the model's estimate only where the codec left nothing.

Per channel and hop (all in place, no allocation in `process`):

1. Cutoff tracking. A bin is *present* when the decoded magnitude is above `floor_db` (dB re the
   magnitude of a full-scale sine, N/4). The frame's cutoff is the highest present bin; on frames whose
   peak is above `active_db`, the tracked cutoff (starting at `max_cutoff_hz`, undecided) moves towards
   the frame's cutoff by at most `cutoff_slew_hz_per_s`, so it settles on their median and a stray frame
   (a click, the decoder's start-up transient) barely moves it. At 4 kHz/s a 32 kbit/s stream is fully
   gated after 0.25 s; full-band input never is. Measured on the validation data with floor_db = -120 (per-frame top bin,
   1st-99th percentile): LAME 24k mono / 32k stereo 7.1-7.6 kHz, 32k mono 9.8-10.5 kHz, 64k stereo
   10.7-11.4 kHz, 48k mono 14-15.2 kHz, 64k/128k mono 21.6-24 kHz, clean sources 13.1-20.2 kHz.
   (The MP3 lowpass itself is lower, e.g. ~8.3 kHz at 32k mono; between it and the tracked cutoff the
   decoded bins are near -110 dB and the hole rule below hands them to the prediction.)
2. Activity. If the tracked cutoff is at or above `max_cutoff_hz` the input is treated as full band
   (clean audio, 64-128 kbit/s MP3) and passes unchanged; below it the gate fades in over
   `max_cutoff_hz - 1 kHz .. max_cutoff_hz` and, in time, at most by 1 / ATTACK_FRAMES per hop.
   Frames whose peak is below `active_db` (silence) change neither the cutoff nor the activity.
3. Per bin, in the log domain, out = decoded^(1 - w) * predicted^w with w = activity * max(
   above-cutoff weight (0 -> 1 over `crossfade_hz` ending at the cutoff), hole weight (0 where the
   prediction exceeds the decoded by <= hole_db - 6 dB, 1 from hole_db on)).
   Where w = 0 the output is the decoded magnitude bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

HOLE_RAMP_DB = 6.0
ATTACK_FRAMES = 8


class CodecGate:
    """`process(decoded_mag (C, F) f32, predicted_mag (C, F) f32, out_mag (C, F) f32)`; see module doc."""

    def __init__(self, settings: dict[str, Any], sample_rate: int, fft_size: int, hop: int) -> None:
        """settings: the validated `gate:` section of the config (see default.yaml for each key)."""
        s = settings
        self.settings = s
        self.sample_rate, self.fft_size = int(sample_rate), int(fft_size)
        bins_per_hz = self.fft_size / self.sample_rate
        full_scale = self.fft_size / 4.0                       # |rfft| of a full-scale sine, Hann window
        self._floor = float(full_scale * 10 ** (s["floor_db"] / 20))
        self._active = float(full_scale * 10 ** (s["active_db"] / 20))
        self._max_cut = float(s["max_cutoff_hz"] * bins_per_hz)
        self._ramp = float(1000.0 * bins_per_hz)
        self._slew = float(s["cutoff_slew_hz_per_s"] * bins_per_hz * hop / self.sample_rate)
        self._xfade = max(1.0, float(s["crossfade_hz"] * bins_per_hz))
        self._hole_hi = float(s["hole_db"]) / 20 * np.log(10)  # in nepers (natural log of magnitude)
        self._hole_lo = float(s["hole_db"] - HOLE_RAMP_DB) / 20 * np.log(10)
        self._attack = 1.0 / ATTACK_FRAMES
        self.prepare(1)

    def prepare(self, channels: int) -> None:
        """Allocate per-channel state for `channels` streams."""
        self.cutoff_bins = np.zeros(channels, np.float64)     # tracked cutoff (bins)
        self.activity = np.zeros(channels, np.float64)        # 0 = pass through, 1 = fully gated
        self.reset()

    def reset(self) -> None:
        """Forget the tracked cutoff and fade the gate out (pass-through until the first active frame)."""
        self.cutoff_bins[:] = self._max_cut                   # undecided: neither codec nor full band
        self.activity[:] = 0.0

    @property
    def cutoff_hz(self) -> np.ndarray:
        return self.cutoff_bins * self.sample_rate / self.fft_size

    def process(self, decoded_mag: np.ndarray, predicted_mag: np.ndarray, out_mag: np.ndarray) -> None:
        """out_mag (C, F) f32 <- gated mix of decoded_mag and predicted_mag (C, F) f32."""
        _gate(decoded_mag, predicted_mag, out_mag, self.cutoff_bins, self.activity, self._floor, self._active,
              self._max_cut, self._ramp, self._slew, self._xfade, self._hole_lo, self._hole_hi, self._attack)


@njit(cache=True, nogil=True)
def _gate(dec, pred, out, cutoff, activity, floor, active, max_cut, ramp, slew, xfade, hole_lo, hole_hi,
          attack):
    channels, bins = dec.shape
    tiny = 1e-12
    for c in range(channels):
        # 1. frame cutoff and peak
        top = 0
        peak = 0.0
        for k in range(bins):
            m = dec[c, k]
            if m > floor:
                top = k + 1
            if m > peak:
                peak = m
        a = activity[c]
        if peak > active:                   # quiet frames change neither cutoff nor activity
            step = top - cutoff[c]          # follow the frame band edges at a limited slew: the estimate
            cutoff[c] += min(slew, max(-slew, step))   # settles on their median; outliers barely move it
            # 2. activity (fades in as the cutoff falls from max_cut to max_cut - ramp; slope per hop limited)
            target = (max_cut - cutoff[c]) / ramp
            target = min(1.0, max(0.0, target))
            if target > a:
                a = min(target, a + attack)
            else:
                a = max(target, a - attack)
            activity[c] = a
        # 3. per-bin mix
        if a <= 0.0:
            for k in range(bins):
                out[c, k] = dec[c, k]
            continue
        kc = cutoff[c]
        for k in range(bins):
            d = dec[c, k]
            p = pred[c, k]
            # above-cutoff weight: 0 at kc - xfade, 1 at kc
            wa = (k + 1.0 - (kc - xfade)) / xfade
            wa = min(1.0, max(0.0, wa))
            # hole weight: how far the prediction exceeds the decoded (nepers)
            g = np.log(p + tiny) - np.log(d + tiny)
            wh = (g - hole_lo) / (hole_hi - hole_lo)
            wh = min(1.0, max(0.0, wh))
            w = a * max(wa, wh)
            if w <= 0.0:
                out[c, k] = d
            elif w >= 1.0:
                out[c, k] = p
            else:
                out[c, k] = np.exp((1.0 - w) * np.log(d + tiny) + w * np.log(p + tiny))
