"""The STFT windows and the level reference every stage, metric and the training code share.

- analysis window: periodic Hann of `fft_size` N samples;
- synthesis window: its dual for hop H (analysis times synthesis, summed over the overlapping frames, is 1);
- full scale: the rfft magnitude of a full-scale sine under the analysis window, N/4; levels in dB
  "re full scale" are 20 log10(magnitude / full_scale_magnitude(N)).
"""

from __future__ import annotations

import numpy as np


def analysis_window(fft_size: int) -> np.ndarray:
    """Periodic Hann window, shape (fft_size,), float64."""
    n = np.arange(fft_size)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / fft_size)


def synthesis_window(fft_size: int, hop: int) -> np.ndarray:
    """Dual window of `analysis_window` for `hop`: sum over frames of analysis*synthesis is 1."""
    window = analysis_window(fft_size)
    overlap = np.zeros(hop)
    for start in range(0, fft_size, hop):
        overlap += window[start : start + hop] ** 2
    return window / np.tile(overlap, fft_size // hop)


def full_scale_magnitude(fft_size: int) -> float:
    """|rfft| of a full-scale sine under the periodic Hann analysis window of `fft_size` samples: N / 4."""
    return fft_size / 4.0
