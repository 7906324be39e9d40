"""Clean crops whose own band ends in a cliff, as identity pairs: what a band-limited source looks like.

A recording resampled from 16-32 kHz or low-passed in mastering has a steady cliff like a codec's low-pass
but nothing codec-made below it, and must pass unchanged (the engine's gate leaves it alone only if the
model does not call its bins codec-made). With probability P_BAND_LIMITED a training crop's clean signal is
band-limited (`band_limit`) and becomes both sides of the pair: decoded = clean, so the labels say nothing
is codec-made and the targets say leave it as it is (the crop then gets the usual augmentation: gain,
noise floor, quantisation).

Two kinds, equally likely: a zero-phase Butterworth low-pass of order ORDER_RANGE at a cutoff drawn from
CUTOFF_RANGE_HZ, or a round trip through a lower sample rate (SOURCE_RATES_HZ) by a resampler of
evaluation/chains.py (its cliff just under that rate's Nyquist frequency). Where the crop's codec left a
cliff (`codec_cliff_hz`), MATCHED_SHARE of them are instead low-passed at that cliff (within
MATCHED_JITTER): the same source and the same cliff, coded and not, so that what tells them apart is only
what the codec did under the cliff (a classifier on the network's band inputs tells such pairs apart, AUC
0.95; the step-40728 network's confidence, trained with random cutoffs only, 0.60-0.74).
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
MATCHED_SHARE = 0.5
MATCHED_JITTER = 0.03                       # relative
CLIFF_FRAME = 1024                          # samples per frame of `codec_cliff_hz`'s spectra (hop: half)
CLIFF_DROP_DB = 20.0
CLIFF_WIDTH_HZ = 900.0
CLIFF_SEARCH_HZ = (4000.0, 20000.0)
CLIFF_CONTENT = 1e-4                        # the clean power above a cliff, share of the total, that makes it one


def _frame_powers(x: np.ndarray) -> np.ndarray:
    """(n,) samples -> (frames, CLIFF_FRAME // 2 + 1) power spectra of Hann frames of CLIFF_FRAME samples."""
    hop = CLIFF_FRAME // 2
    count = max(1, (len(x) - CLIFF_FRAME) // hop + 1)
    padded = np.pad(x.astype(np.float64), (0, max(0, CLIFF_FRAME - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(padded, CLIFF_FRAME)[::hop][:count]
    return np.abs(np.fft.rfft(frames * np.hanning(CLIFF_FRAME), axis=-1)) ** 2


def codec_cliff_hz(clean: np.ndarray, decoded: np.ndarray) -> float | None:
    """The lowest frequency (Hz) in CLIFF_SEARCH_HZ from which the decoded crop (n,) stays CLIFF_DROP_DB or
    more under the clean one (n,) over CLIFF_WIDTH_HZ (median power over frames: a click or the crop's edge
    does not hide it), where the clean crop has content above it (at least CLIFF_CONTENT of its mean
    power); None if there is no such cliff."""
    f_clean, f_decoded = _frame_powers(clean), _frame_powers(decoded)
    p_clean = f_clean.mean(axis=0)
    if p_clean.sum() <= 0.0:
        return None
    hz_per_bin = MODEL_RATE_HZ / CLIFF_FRAME
    low = np.median(f_decoded, axis=0) < np.median(f_clean, axis=0) * 10 ** (-CLIFF_DROP_DB / 10)
    width = int(round(CLIFF_WIDTH_HZ / hz_per_bin))
    above = np.cumsum(p_clean[::-1])[::-1] / p_clean.sum()
    for k in range(int(CLIFF_SEARCH_HZ[0] / hz_per_bin), int(CLIFF_SEARCH_HZ[1] / hz_per_bin)):
        if above[k] < CLIFF_CONTENT:
            return None
        if low[k: k + width].all():
            return k * hz_per_bin
    return None


def low_passed(x: np.ndarray, hz: float, order: int) -> np.ndarray:
    """(n,) samples at MODEL_RATE_HZ through a zero-phase Butterworth low-pass of `order` at `hz` (-6 dB
    there), (n,) float32."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, hz, fs=MODEL_RATE_HZ, output="sos")
    return sosfiltfilt(sos, np.asarray(x, np.float64)).astype(np.float32)


def band_limit(x: np.ndarray, rng: np.random.Generator, cliff_hz: float | None = None) -> np.ndarray:
    """One clean channel (n,) float32 at MODEL_RATE_HZ -> the same band-limited (module doc), (n,) float32;
    `cliff_hz`: the crop's codec cliff (`codec_cliff_hz`), if it has one."""
    matched = cliff_hz is not None and rng.random() < MATCHED_SHARE
    if matched or rng.random() < 0.5:
        order = int(rng.integers(ORDER_RANGE[0], ORDER_RANGE[1] + 1))
        jitter = rng.uniform(1 - MATCHED_JITTER, 1 + MATCHED_JITTER)
        return low_passed(x, cliff_hz * jitter if matched else rng.uniform(*CUTOFF_RANGE_HZ), order)
    rate = int(rng.choice(SOURCE_RATES_HZ))
    how = str(rng.choice(RESAMPLERS))
    down = resample(np.ascontiguousarray(x[None], np.float32), MODEL_RATE_HZ, rate, how)
    back = resample(down, rate, MODEL_RATE_HZ, how)[0, : len(x)]
    return np.pad(back, (0, len(x) - len(back))).astype(np.float32)
