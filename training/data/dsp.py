"""Signal processing for building data (numpy/scipy): EQ, panning, a bus compressor, a brick-wall limiter and
synthetic room impulse responses. Signals are float (channels, samples) at 48 kHz unless stated.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from realtime.engine.config import MODEL_RATE_HZ

CONTROL_BLOCK = 32          # samples per step of the compressor's and limiter's slow envelopes


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms_db(x: np.ndarray) -> float:
    """RMS of all samples of x in dB re full scale (-240 for silence)."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-24))


def crest_db(x: np.ndarray) -> float:
    """Peak over RMS of all samples of x, in dB."""
    return float(20 * np.log10(max(float(np.abs(x).max()), 1e-12))) - rms_db(x)


# -- EQ ----------------------------------------------------------------------------------------------
def biquad(kind: str, freq_hz: float, gain_db: float = 0.0, q: float = 0.707) -> np.ndarray:
    """(1, 6) second-order section of an RBJ-cookbook filter at 48 kHz: 'peak', 'lowshelf', 'highshelf',
    'highpass' or 'lowpass' (the last two Butterworth; q and gain unused)."""
    if kind in ("highpass", "lowpass"):
        return signal.butter(2, freq_hz, btype=kind, fs=MODEL_RATE_HZ, output="sos")
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq_hz / MODEL_RATE_HZ
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        s = 1 if kind == "lowshelf" else -1
        root = 2 * np.sqrt(a) * alpha
        b = [a * ((a + 1) - s * (a - 1) * cos + root), s * 2 * a * ((a - 1) - s * (a + 1) * cos),
             a * ((a + 1) - s * (a - 1) * cos - root)]
        den = [(a + 1) + s * (a - 1) * cos + root, -s * 2 * ((a - 1) + s * (a + 1) * cos),
               (a + 1) + s * (a - 1) * cos - root]
    else:
        raise ValueError(f"unknown filter kind {kind!r}")
    return np.array([b + den]) / den[0]


def equalize(x: np.ndarray, bands: list[tuple]) -> np.ndarray:
    """x filtered by each (kind, freq_hz, gain_db, q) of `bands` in turn (see `biquad`)."""
    if not bands:
        return x
    sos = np.concatenate([biquad(*band) for band in bands])
    return signal.sosfilt(sos, x, axis=-1).astype(np.float32)


def tilt(x: np.ndarray, db_per_octave: float, pivot_hz: float = 1000.0) -> np.ndarray:
    """x with a spectral tilt of `db_per_octave` around `pivot_hz` (zero phase, whole-signal FFT; the gain is
    held constant below 50 Hz and above 20 kHz)."""
    n = x.shape[-1]
    f = np.clip(np.fft.rfftfreq(n, 1 / MODEL_RATE_HZ), 50.0, 20_000.0)
    gain = 10 ** (db_per_octave * np.log2(f / pivot_hz) / 20)
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * gain, n, axis=-1).astype(np.float32)


# -- stereo ------------------------------------------------------------------------------------------
def pan(x: np.ndarray, position: float, width: float = 1.0) -> np.ndarray:
    """A stem placed in a stereo image: mono x (1, n) panned at `position` (-1 left .. +1 right, constant
    power, unity at the centre); stereo x (2, n) with its side scaled by `width` and balanced by `position`."""
    angle = (position + 1) * np.pi / 4
    gains = np.array([[np.cos(angle)], [np.sin(angle)]], np.float32) * np.float32(np.sqrt(2))
    if x.shape[0] == 1:
        return x * gains
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2 * width
    return np.stack([mid + side, mid - side]) * gains


# -- dynamics ----------------------------------------------------------------------------------------
def _smooth_blocks(target: np.ndarray, attack_s: float, release_s: float) -> np.ndarray:
    """One value per CONTROL_BLOCK: a one-pole follower of `target` (per block) that falls with time constant
    attack_s and rises with release_s."""
    block_s = CONTROL_BLOCK / MODEL_RATE_HZ
    fall, rise = np.exp(-block_s / max(attack_s, 1e-6)), np.exp(-block_s / max(release_s, 1e-6))
    out = np.empty_like(target)
    state = float(target[0])
    for i, t in enumerate(target.tolist()):
        coeff = fall if t < state else rise
        state = t + coeff * (state - t)
        out[i] = state
    return out


def _per_sample(blocks: np.ndarray, n: int) -> np.ndarray:
    """Block values (at block centres) interpolated to n samples."""
    centres = np.arange(len(blocks)) * CONTROL_BLOCK + CONTROL_BLOCK / 2
    return np.interp(np.arange(n), centres, blocks)


def compress(x: np.ndarray, threshold_db: float, ratio: float, attack_s: float = 0.02,
             release_s: float = 0.2, knee_db: float = 6.0) -> np.ndarray:
    """Stereo-linked feed-forward compressor: block RMS of the loudest channel, soft knee, gain smoothed
    with attack/release time constants (s)."""
    n = x.shape[1]
    blocks = -(-n // CONTROL_BLOCK)
    padded = np.pad(x, ((0, 0), (0, blocks * CONTROL_BLOCK - n)))
    power = np.mean(padded.reshape(x.shape[0], blocks, CONTROL_BLOCK) ** 2, axis=2).max(axis=0)
    level = 10 * np.log10(power + 1e-12)
    over = level - threshold_db
    knee = np.clip((over + knee_db / 2) ** 2 / (2 * knee_db), 0, None)
    over = np.where(np.abs(over) <= knee_db / 2, knee, np.maximum(over, 0))
    reduction_db = _smooth_blocks(-over * (1 - 1 / ratio), attack_s, release_s)
    return (x * 10 ** (_per_sample(reduction_db, n) / 20)).astype(np.float32)


def soft_clip(x: np.ndarray, level: float) -> np.ndarray:
    """level * tanh(x / level): the saturating clipper of loud masters (about linear well below `level`)."""
    return (level * np.tanh(x / level)).astype(np.float32)


def _window_min(a: np.ndarray, span: int) -> np.ndarray:
    """out[i] = min(a[i : i + span]) for every full window (len(a) - span + 1 values)."""
    centred = ndimage.minimum_filter1d(a, span, mode="nearest")       # window [i - span//2, i - span//2 + span)
    return centred[span // 2: span // 2 + len(a) - span + 1]


def limit(x: np.ndarray, ceiling_db: float = -0.3, lookahead_s: float = 0.003, hold_s: float = 0.01,
          release_s: float = 0.1) -> np.ndarray:
    """Brick-wall limiter (offline, zero delay): no sample of the result exceeds the ceiling.

    The gain each sample needs is min(1, ceiling/|x|) over the channels; the gain applied at n is the mean
    over the `lookahead` samples up to n of the least needed gain in [j - hold, j + lookahead), which is at
    most the need at every sample (it ramps down before a peak over `lookahead_s`), then released
    towards 1 with time constant `release_s`, never above that ramp."""
    ceiling = db_to_gain(ceiling_db)
    n = x.shape[1]
    look, hold = max(1, int(lookahead_s * MODEL_RATE_HZ)), int(hold_s * MODEL_RATE_HZ)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x).max(axis=0), 1e-12))
    least = _window_min(np.pad(need, (hold, look - 1), constant_values=1.0), hold + look)  # over [j-hold, j+look)
    ramp = np.convolve(np.pad(least, (look - 1, 0), constant_values=1.0), np.ones(look) / look, mode="valid")
    blocks = -(-n // CONTROL_BLOCK)
    block_min = np.pad(ramp, (0, blocks * CONTROL_BLOCK - n), constant_values=1.0).reshape(blocks, -1).min(1)
    released = _smooth_blocks(block_min, 0.0, release_s)
    gain = np.minimum(ramp, _per_sample(released, n))
    return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)


# -- rooms -------------------------------------------------------------------------------------------
def room_impulse(rng: np.random.Generator, rt60_s: float, drr_db: float, channels: int = 1,
                 hf_decay_ratio: float = 0.5) -> np.ndarray:
    """(channels, samples) synthetic room impulse response: a unit direct path, 4-10 early reflections in
    the first 3-30 ms and an exponentially decaying noise tail (reaching -60 dB at rt60_s; above 4 kHz at
    hf_decay_ratio times that), reflections and tail together `drr_db` below the direct path in energy.
    Channels get independent reflections and tails (a decorrelated stereo room)."""
    n = int(min(1.2 * rt60_s, 2.0) * MODEL_RATE_HZ) + 1
    t = np.arange(n) / MODEL_RATE_HZ
    noise = rng.standard_normal((channels, n))
    split = signal.butter(4, 4000, btype="low", fs=MODEL_RATE_HZ, output="sos")
    low = signal.sosfiltfilt(split, noise, axis=1)
    tail = low * np.exp(-6.91 * t / rt60_s) + (noise - low) * np.exp(-6.91 * t / (rt60_s * hf_decay_ratio))
    onset = int(0.003 * MODEL_RATE_HZ)
    tail[:, :onset] *= np.linspace(0, 1, onset)
    for c in range(channels):
        for _ in range(rng.integers(4, 11)):
            k = int(rng.uniform(0.003, 0.030) * MODEL_RATE_HZ)
            tail[c, k] += rng.choice([-1, 1]) * rng.uniform(0.5, 2.0) * np.sqrt(np.mean(tail[c] ** 2) * n / 50)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.mean(np.sum(tail ** 2, axis=1)))
    tail[:, 0] += 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """x (C, n) convolved with impulse (C or 1, m), cut to n samples (C follows the wider of the two)."""
    y = signal.fftconvolve(x, impulse, axes=1)[:, : x.shape[1]]
    return y.astype(np.float32)
