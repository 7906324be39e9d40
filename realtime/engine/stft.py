"""Whole-signal STFT and its inverse, frame for frame what the analysis and synthesis stages compute.

For metrics, benchmarks and training. Conventions, shared with the engine (see docs/CONTRACTS.md):
- analysis window: periodic Hann of `fft_size` N samples; synthesis window: its dual for hop H, so
  analysis followed by synthesis reconstructs perfectly;
- frame k covers input samples [k*H + H - N, k*H + H) (zeros before the start), the frame completed by
  the k-th full hop, and its spectrum is `np.fft.rfft(window * x[start:start + N])`, F = N/2 + 1 bins;
- streaming with a hop clock delays the signal by N - 1 samples; `istft_offline` reproduces that delay.
"""

from __future__ import annotations

import numpy as np

from realtime.engine.windows import stft_windows, synthesis_span


def stft_offline(signal: np.ndarray, fft_size: int, hop: int, window: str = "hann") -> np.ndarray:
    """Spectra of a whole mono signal (samples,) -> (frames, fft_size // 2 + 1) complex64.

    frames = len(signal) // hop; frame k is exactly the engine's k-th frame with the framing `window`.
    """
    signal = np.asarray(signal, dtype=np.float64)
    frames = len(signal) // hop
    padded = np.concatenate([np.zeros(fft_size - hop), signal[: frames * hop]])
    starts = np.arange(frames)[:, None] * hop
    segments = padded[starts + np.arange(fft_size)[None, :]]
    return np.fft.rfft(segments * stft_windows(fft_size, hop, window)[0], axis=1).astype(np.complex64)


def istft_offline(spectra: np.ndarray, fft_size: int, hop: int, window: str = "hann") -> np.ndarray:
    """Overlap-add synthesis of (frames, F) spectra -> (frames * hop,) float64, delayed as the engine is.

    Output sample t corresponds to input sample t - (L - 1) of `stft_offline`'s signal, L the synthesis
    window's support (`synthesis_span`: fft_size for Hann).
    """
    frames = spectra.shape[0]
    span = synthesis_span(fft_size, hop, window)
    segments = (np.fft.irfft(spectra, fft_size, axis=1) * stft_windows(fft_size, hop, window)[1])[:, fft_size - span:]
    accumulated = np.zeros(frames * hop + span)
    for k in range(frames):
        accumulated[k * hop : k * hop + span] += segments[k]
    # Frame k is finalised after hop k and emitted from the end of hop k on: shift by hop - 1.
    out = np.zeros(frames * hop)
    out[hop - 1 :] = accumulated[: frames * hop - hop + 1]
    return out
