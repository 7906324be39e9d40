"""Clean crops whose own band ends in a cliff, as identity pairs: what a band-limited source looks like.

A recording resampled from 16-32 kHz or low-passed in mastering has a steady cliff like a codec's low-pass
but nothing codec-made below it, and must pass unchanged (the engine's gate leaves it alone only if the
model does not call its bins codec-made). With probability P_BAND_LIMITED a training crop's clean signal is
band-limited (`band_limit`) and becomes both sides of the pair: decoded = clean, so the labels say nothing
is codec-made and the targets say leave it as it is (the crop then gets the usual augmentation: gain,
noise floor, quantisation).

Two kinds, equally likely: a zero-phase Butterworth low-pass of order ORDER_RANGE at a cutoff drawn from
CUTOFF_RANGE_HZ, or a round trip through a lower sample rate (SOURCE_RATES_HZ) by a resampler of
evaluation/chains.py (its cliff just under that rate's Nyquist frequency).
"""

from __future__ import annotations

import numpy as np

from evaluation.chains import resample
from realtime.engine.config import MODEL_RATE_HZ

P_BAND_LIMITED = 0.08
CUTOFF_RANGE_HZ = (6000.0, 20000.0)
ORDER_RANGE = (8, 24)                       # Butterworth order, inclusive (zero phase: twice that)
SOURCE_RATES_HZ = (16000, 22050, 24000, 32000)
RESAMPLERS = ("soxr_vhq", "soxr_mq", "scipy")


def band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One clean channel (n,) float32 at MODEL_RATE_HZ -> the same band-limited (module doc), (n,) float32."""
    if rng.random() < 0.5:
        from scipy.signal import butter, sosfiltfilt

        order = int(rng.integers(ORDER_RANGE[0], ORDER_RANGE[1] + 1))
        sos = butter(order, rng.uniform(*CUTOFF_RANGE_HZ), fs=MODEL_RATE_HZ, output="sos")
        return sosfiltfilt(sos, x.astype(np.float64)).astype(np.float32)
    rate = int(rng.choice(SOURCE_RATES_HZ))
    how = str(rng.choice(RESAMPLERS))
    down = resample(np.ascontiguousarray(x[None], np.float32), MODEL_RATE_HZ, rate, how)
    back = resample(down, rate, MODEL_RATE_HZ, how)[0, : len(x)]
    return np.pad(back, (0, len(x) - len(back))).astype(np.float32)
