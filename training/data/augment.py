"""Speech widened: speed, pitch and formant shifts, EQ tilt and small rooms (numpy/scipy, soxr).

`augment(x, seed)` draws one recipe from the seed (`draw_recipe`) and applies it; the recipe is what the
manifest records as a segment's `augmentation`. Signals are float32 (channels, samples) at 48 kHz.
"""

from __future__ import annotations

import random

import numpy as np
import soxr
from scipy import signal

from realtime.engine.config import MODEL_RATE_HZ
from training.data import dsp

WSOLA_FRAME = 1536          # samples (32 ms): WSOLA's analysis frame; output hop is half of it
WSOLA_TOLERANCE = 480       # samples (10 ms): how far a frame may move to continue the last one smoothly
ENVELOPE_FFT, ENVELOPE_HOP = 2048, 512
ENVELOPE_LIFTER = 60        # cepstral coefficients kept for the spectral envelope (1.25 ms: above any pitch)
MAX_ENVELOPE_GAIN_DB = 20.0


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times faster, as a tape: duration / factor, every frequency * factor (soxr VHQ)."""
    y = soxr.resample(np.ascontiguousarray(x.T), MODEL_RATE_HZ * factor, MODEL_RATE_HZ, quality="VHQ")
    return np.ascontiguousarray(np.asarray(y, np.float32).reshape(-1, x.shape[0]).T)


def stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """Time-stretched by `factor` (>1 longer) at the same pitch: WSOLA, each frame taken where it best
    continues the previous one (cross-correlation of the channel mean), Hann windows at 50 % overlap."""
    channels, n = x.shape
    hop_out = WSOLA_FRAME // 2
    hop_in = hop_out / factor
    n_out = int(round(n * factor))
    frames = n_out // hop_out + 1
    pad = WSOLA_TOLERANCE + WSOLA_FRAME
    src = np.pad(x.astype(np.float64), ((0, 0), (pad, 2 * pad)))
    mono = src.mean(axis=0)
    window = signal.windows.hann(WSOLA_FRAME, sym=False)
    out = np.zeros((channels, frames * hop_out + WSOLA_FRAME))
    previous = pad
    for k in range(frames):
        target = pad + int(round(k * hop_in))
        if k == 0:
            position = target
        else:
            follow = mono[previous + hop_out: previous + hop_out + WSOLA_FRAME]
            region = mono[target - WSOLA_TOLERANCE: target + WSOLA_TOLERANCE + WSOLA_FRAME]
            similarity = signal.fftconvolve(region, follow[::-1], mode="valid")
            position = target - WSOLA_TOLERANCE + int(np.argmax(similarity))
        out[:, k * hop_out: k * hop_out + WSOLA_FRAME] += src[:, position: position + WSOLA_FRAME] * window
        previous = position
    # the first half-frame had one window only: the output starts at the second frame's centre
    return out[:, hop_out: hop_out + n_out].astype(np.float32)


def shift_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch (and with it the formants) moved by `semitones`, duration kept: stretch, then speed up."""
    ratio = 2 ** (semitones / 12)
    y = change_speed(stretch(x, ratio), ratio)
    n = x.shape[1]
    return np.pad(y, ((0, 0), (0, max(0, n - y.shape[1]))))[:, :n]


def shift_formants(x: np.ndarray, ratio: float) -> np.ndarray:
    """The spectral envelope (cepstrally smoothed, per STFT frame) moved by `ratio` in frequency, the pitch
    and phases kept; the gain applied is held within +-MAX_ENVELOPE_GAIN_DB."""
    n = x.shape[1]
    _, _, spec = signal.stft(x, nperseg=ENVELOPE_FFT, noverlap=ENVELOPE_FFT - ENVELOPE_HOP, axis=-1)
    log_mag = np.log(np.abs(spec) + 1e-9)                                  # (C, F, T)
    cepstrum = np.fft.irfft(log_mag, axis=1)
    cepstrum[:, ENVELOPE_LIFTER: -ENVELOPE_LIFTER + 1] = 0.0
    envelope = np.fft.rfft(cepstrum, axis=1).real[:, : log_mag.shape[1]]   # log envelope (C, F, T)
    bins = np.arange(log_mag.shape[1], dtype=np.float64)
    source = np.clip(bins / ratio, 0, bins[-1])
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, len(bins) - 1)
    frac = (source - low)[None, :, None]
    moved = envelope[:, low] * (1 - frac) + envelope[:, high] * frac
    limit = MAX_ENVELOPE_GAIN_DB / 20 * np.log(10)
    gain = np.exp(np.clip(moved - envelope, -limit, limit))
    _, y = signal.istft(spec * gain, nperseg=ENVELOPE_FFT, noverlap=ENVELOPE_FFT - ENVELOPE_HOP,
                        time_axis=-1, freq_axis=1)
    return np.pad(y, ((0, 0), (0, max(0, n - y.shape[1]))))[:, :n].astype(np.float32)


def draw_recipe(seed: str) -> dict:
    """One augmentation from `seed`: speed 0.9-1.1 always; with some probability a pitch shift (+-3
    semitones), a formant shift (0.88-1.14), an EQ tilt (+-1.5 dB/octave), a small room (RT60 0.15-0.6 s)."""
    rng = random.Random(f"augment:{seed}")
    recipe: dict = {"speed": round(rng.uniform(0.9, 1.1), 3)}
    if rng.random() < 0.6:
        recipe["pitch_semitones"] = round(rng.choice([-1, 1]) * rng.uniform(0.5, 3.0), 2)
    if rng.random() < 0.6:
        recipe["formant_ratio"] = round(rng.uniform(0.88, 1.14), 3)
    if rng.random() < 0.7:
        recipe["tilt_db_per_octave"] = round(rng.uniform(-1.5, 1.5), 2)
    if rng.random() < 0.5:
        recipe["room_rt60_s"] = round(rng.uniform(0.15, 0.6), 3)
        recipe["room_drr_db"] = round(rng.uniform(2.0, 12.0), 1)
        recipe["room_seed"] = rng.randrange(2 ** 31)
    return recipe


def apply_recipe(x: np.ndarray, recipe: dict) -> np.ndarray:
    """x (C, n) through the recipe's steps in order (speed, pitch, formants, tilt, room), at x's RMS level
    (lowered if that would put a peak above 0.97)."""
    y = change_speed(x, recipe["speed"])
    if "pitch_semitones" in recipe:
        y = shift_pitch(y, recipe["pitch_semitones"])
    if "formant_ratio" in recipe:
        y = shift_formants(y, recipe["formant_ratio"])
    if "tilt_db_per_octave" in recipe:
        y = dsp.tilt(y, recipe["tilt_db_per_octave"])
    if "room_rt60_s" in recipe:
        impulse = dsp.room_impulse(np.random.default_rng(recipe["room_seed"]), recipe["room_rt60_s"],
                                   recipe["room_drr_db"])
        y = dsp.reverberate(y, impulse)
    gain = dsp.db_to_gain(dsp.rms_db(x) - dsp.rms_db(y))
    gain = min(gain, 0.97 / max(float(np.abs(y).max()), 1e-9))
    return (y * np.float32(gain)).astype(np.float32)


def augment(x: np.ndarray, seed: str) -> tuple[np.ndarray, dict]:
    """(augmented x, the recipe drawn from seed)."""
    recipe = draw_recipe(seed)
    return apply_recipe(x, recipe), recipe
