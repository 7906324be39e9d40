"""What a user could reach for instead of gapfill, applied offline to a decoded mono signal (samples,).

Spectra are taken at the metrics' resolution (evaluation/metrics.py: FFT_SIZE, HOP).

- `treble_shelf`: a tone control: +6 dB high shelf at 4 kHz (RBJ cookbook, slope 1), applied zero-phase
  through its magnitude response.
- `noise_fill`: a crude bandwidth extension: above the codec cutoff, each STFT frame gets noise whose level
  continues the top octave below the cutoff, falling 6 dB per octave; below the cutoff nothing changes.
- `detect_cutoff_hz`: the cutoff as a user's tool finds it, blind (from the decoded signal alone): the top
  of the highest bin whose median power over active frames (within 60 dB of the loudest frame) is within
  70 dB of the loudest bin (above LAME's low-pass only the decoder's and resampler's floor is left, about
  85 dB down); None when that is above 20 kHz.
"""

from __future__ import annotations

import numpy as np

from evaluation.metrics import FFT_SIZE, HOP
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.stft import istft_offline, stft_offline

SHELF_GAIN_DB, SHELF_CORNER_HZ = 6.0, 4_000.0
FILL_SLOPE_DB_PER_OCTAVE = -6.0
CUTOFF_RANGE_DB, ACTIVE_RANGE_DB, FULL_BAND_HZ = 70.0, 60.0, 20_000.0


def detect_cutoff_hz(x: np.ndarray) -> float | None:
    """The codec low-pass in Hz seen in decoded mono x (samples,), or None (full band)."""
    p = np.abs(stft_offline(np.asarray(x, np.float64), FFT_SIZE, HOP).astype(np.complex128)) ** 2
    energy = p.sum(axis=1)
    if energy.max() <= 0:
        return None
    spectrum = np.median(p[energy > energy.max() * 10 ** (-ACTIVE_RANGE_DB / 10)], axis=0)
    audible = np.nonzero(spectrum > spectrum.max() * 10 ** (-CUTOFF_RANGE_DB / 10))[0]
    cutoff = (audible[-1] + 0.5) * MODEL_RATE_HZ / FFT_SIZE
    return None if cutoff >= FULL_BAND_HZ else float(cutoff)


def shelf_response(freqs_hz: np.ndarray, gain_db: float = SHELF_GAIN_DB, corner_hz: float = SHELF_CORNER_HZ,
                   rate: int = MODEL_RATE_HZ) -> np.ndarray:
    """|H(f)| of the RBJ high shelf (slope S = 1) at freqs_hz."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * corner_hz / rate
    alpha = np.sin(w0) / 2 * np.sqrt(2.0)
    cos = np.cos(w0)
    b = np.array([a * ((a + 1) + (a - 1) * cos + 2 * np.sqrt(a) * alpha), -2 * a * ((a - 1) + (a + 1) * cos),
                  a * ((a + 1) + (a - 1) * cos - 2 * np.sqrt(a) * alpha)])
    den = np.array([(a + 1) - (a - 1) * cos + 2 * np.sqrt(a) * alpha, 2 * ((a - 1) - (a + 1) * cos),
                    (a + 1) - (a - 1) * cos - 2 * np.sqrt(a) * alpha])
    z = np.exp(-1j * 2 * np.pi * freqs_hz / rate)
    return np.abs((b[0] + b[1] * z + b[2] * z**2) / (den[0] + den[1] * z + den[2] * z**2))


def treble_shelf(x: np.ndarray) -> np.ndarray:
    """x (samples,) with the treble shelf applied (zero-phase), float32."""
    n = len(x)
    size = 1 << int(np.ceil(np.log2(n + 1)))
    spectrum = np.fft.rfft(x, size) * shelf_response(np.fft.rfftfreq(size, 1.0 / MODEL_RATE_HZ))
    return np.fft.irfft(spectrum, size)[:n].astype(np.float32)


def noise_fill(x: np.ndarray, cutoff_hz: float | None, seed: int = 0) -> np.ndarray:
    """x (samples,) with noise above cutoff_hz (None: unchanged), float32, aligned with x."""
    if cutoff_hz is None:
        return np.asarray(x, np.float32).copy()
    n = len(x)
    padded = np.concatenate([np.asarray(x, np.float64), np.zeros(FFT_SIZE + HOP)])
    spectra = stft_offline(padded, FFT_SIZE, HOP).astype(np.complex128)
    freqs = np.arange(spectra.shape[1]) * MODEL_RATE_HZ / FFT_SIZE
    top = int(np.ceil(cutoff_hz * FFT_SIZE / MODEL_RATE_HZ))
    octave = slice(int(top // 2), top)
    level = np.sqrt(np.mean(np.abs(spectra[:, octave]) ** 2, axis=1, keepdims=True))
    above = freqs[top:]
    slope = (above / cutoff_hz) ** (FILL_SLOPE_DB_PER_OCTAVE / 20 / np.log10(2))
    rng = np.random.default_rng(seed)
    phase = np.exp(2j * np.pi * rng.random((spectra.shape[0], len(above))))
    spectra[:, top:] = level * slope * phase
    out = istft_offline(spectra, FFT_SIZE, HOP)  # output t <-> input t - (FFT_SIZE - 1)
    return out[FFT_SIZE - 1 : FFT_SIZE - 1 + n].astype(np.float32)
