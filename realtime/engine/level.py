"""Model input level: quiet input is scaled up to a level the model restores well, its estimate back down.

The shipped model restores quiet input worse than the same input played louder (README, Quality: the
-20 and -30 dB chains). Per hop, for every channel, the frame level is 10 log10(sum_k |X_k|^2 / R^2)
in dB re a full-scale sine (R = `full_scale_magnitude`, N/4 for the Hann framing, N = fft_size); active frames (largest bin above `active_db` re full scale,
the gate's silence threshold) update its running mean in dB (plain average over the first frames, then
exponential with time constant LEVEL_TIME_S). The gain, one for all channels so a stereo pair keeps its
balance, is target_db minus the loudest channel's mean level, clipped to 0..max_boost_db: input is only
ever boosted, never attenuated. The model sees magnitudes times that gain; the model stage divides its
magnitude estimate by it (`undo_gain`) and uses its confidence as it is. The gate and the phase stage see
the decoded magnitudes unscaled, so whatever the gate keeps stays bit-exact; max_boost_db 0 turns the
stage off. (A model with
look-ahead has its estimate divided by the gain of the newest hop, one that moves slowly; the shipped model
is causal, so input and estimate take the same gain.)
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers
from realtime.engine.windows import full_scale_magnitude

LEVEL_TIME_S = 3.0
# state entries: [active frames, gain (linear)], then the running mean level (dB) of each channel
_ACTIVE_FRAMES, _GAIN, _LEVELS = 0, 1, 2
# parameter vector entries
_P_ACTIVE, _P_ALPHA, _P_TARGET, _P_MAX_BOOST, _P_FULL_SCALE, _P_SIZE = range(6)


class InputLevel:
    """The level stage: `scale_in(magnitudes, scaled)`, (C, F) f32, per hop; see the module doc."""

    name = "level"
    latency_samples = 0

    def __init__(self, target_db: float, max_boost_db: float, active_db: float, sample_rate: int,
                 fft_size: int, hop: int, window: str = "hann") -> None:
        """target_db: model input level to reach (dB re full scale); max_boost_db: largest gain (dB, >= 0);
        active_db: frames whose largest bin is below this (dB re full scale) leave the level alone."""
        p = np.zeros(_P_SIZE, np.float64)
        p[_P_ACTIVE] = active_db
        p[_P_ALPHA] = 1.0 / max(1.0, LEVEL_TIME_S * sample_rate / hop)
        p[_P_TARGET] = target_db
        p[_P_MAX_BOOST] = max_boost_db
        p[_P_FULL_SCALE] = full_scale_magnitude(fft_size, window, hop)
        self.enabled = max_boost_db > 0.0
        self._params = p
        self.prepare(1)

    def prepare(self, channels: int) -> None:
        """Allocate the state for `channels` streams."""
        self._state = np.zeros(_LEVELS + channels, np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the level: gain 0 dB until the first active frame."""
        self._state[:] = 0.0
        self._state[_GAIN] = 1.0

    def statistics(self) -> np.ndarray:
        """A copy of the running levels and the gain so far."""
        return self._state.copy()

    def start_from(self, statistics: np.ndarray) -> None:
        """Continue from `statistics()` taken at the end of the stream's head (`Restorer.decide_ahead`)."""
        self._state[:] = statistics

    @property
    def gain_db(self) -> float:
        """The gain applied to the model input now (dB, 0..max_boost_db)."""
        return float(20.0 * np.log10(self._state[_GAIN]))

    def scale_in(self, magnitudes: np.ndarray, scaled: np.ndarray) -> None:
        """Update the level from this hop's magnitudes (C, F) f32; scaled (C, F) f32 <- magnitudes * gain."""
        _scale_in(magnitudes, scaled, self._state, self._params)

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.model_in <- the newest magnitudes times the gain; buffers.model_gain <- the gain (linear).
        Off: model_in is a copy of the newest magnitudes and the gain stays 1."""
        if self.enabled:
            _scale_in(buffers.newest_magnitudes, buffers.model_in, self._state, self._params)
            buffers.model_gain[0] = self._state[_GAIN]
        else:
            np.copyto(buffers.model_in, buffers.newest_magnitudes)


def undo_gain(estimate: np.ndarray, gain: np.ndarray) -> None:
    """estimate (C, F) f32 /= gain[0] (linear, the level stage's gain), in place: the model stage's
    estimate back at the decoded level."""
    _undo_gain(estimate, gain)


@njit("void(float32[:, ::1], float32[:, ::1], float64[::1], float64[::1])", cache=True, nogil=True)
def _scale_in(mag, scaled, state, p):
    channels, bins = mag.shape
    full_scale = p[_P_FULL_SCALE]
    active = full_scale * 10.0 ** (p[_P_ACTIVE] / 20.0)
    peak = 0.0
    for c in range(channels):
        for k in range(bins):
            if mag[c, k] > peak:
                peak = mag[c, k]
    if peak > active:
        state[_ACTIVE_FRAMES] += 1.0
        alpha = max(p[_P_ALPHA], 1.0 / state[_ACTIVE_FRAMES])
        loudest = -1e9
        for c in range(channels):
            power = 0.0
            for k in range(bins):
                power += mag[c, k] * mag[c, k]
            level = 10.0 * np.log10(max(power, 1e-30) / (full_scale * full_scale))
            state[_LEVELS + c] += alpha * (level - state[_LEVELS + c])
            loudest = max(loudest, state[_LEVELS + c])
        boost = min(p[_P_MAX_BOOST], max(0.0, p[_P_TARGET] - loudest))
        state[_GAIN] = 10.0 ** (boost / 20.0)
    gain = np.float32(state[_GAIN])
    for c in range(channels):
        for k in range(bins):
            scaled[c, k] = mag[c, k] * gain


@njit("void(float32[:, ::1], float64[::1])", cache=True, nogil=True)
def _undo_gain(estimate, gain):
    inverse = np.float32(1.0 / gain[0])
    channels, bins = estimate.shape
    for c in range(channels):
        for k in range(bins):
            estimate[c, k] *= inverse
