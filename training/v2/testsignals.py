"""Test signals as identity pairs: tones and sweeps, which users pass through any tool and must get back.

The corpus has no pure tones; a network that has never seen one may call the empty bins around a sine
codec-made holes (a clean 1 kHz tone engaged the gate with v2 at step 30596). With probability
P_TEST_SIGNAL a training crop is replaced by a test signal as both sides of the pair (decoded = clean; it
then gets the usual augmentation: gain, noise floor, quantisation): one to three steady sines at
frequencies drawn log-uniformly from FREQUENCY_RANGE_HZ, each at a level in LEVEL_RANGE_DBFS, or one
logarithmic sweep across that range over the crop.
"""

from __future__ import annotations

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ

P_TEST_SIGNAL = 0.01
FREQUENCY_RANGE_HZ = (30.0, 20000.0)
LEVEL_RANGE_DBFS = (-40.0, -3.0)            # peak level of each sine, dB re full scale


def test_signal(samples: int, rng: np.random.Generator) -> np.ndarray:
    """A test signal (module doc) of `samples` samples at MODEL_RATE_HZ, float32, peak under full scale."""
    t = np.arange(samples) / MODEL_RATE_HZ
    lo, hi = np.log(FREQUENCY_RANGE_HZ[0]), np.log(FREQUENCY_RANGE_HZ[1])
    if rng.random() < 0.75:
        tones = int(rng.integers(1, 4))
        freqs = np.exp(rng.uniform(lo, hi, tones))
        levels = 10 ** (rng.uniform(*LEVEL_RANGE_DBFS, tones) / 20) / tones
        phases = rng.uniform(0, 2 * np.pi, tones)
        x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip(levels, freqs, phases))
    else:
        duration = samples / MODEL_RATE_HZ
        start, stop = sorted(np.exp(rng.uniform(lo, hi, 2)))
        rate = np.log(stop / start) / duration
        x = 10 ** (rng.uniform(*LEVEL_RANGE_DBFS) / 20) * np.sin(2 * np.pi * start * np.expm1(rate * t) / rate)
    return np.asarray(x, np.float32)
