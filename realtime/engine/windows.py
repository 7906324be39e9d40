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


def asymmetric_windows(fft_size: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Low-latency analysis and synthesis windows, each (fft_size,) float64 (Mauler and Martin 2011;
    Wang et al. 2022).

    Analysis: a square-root Hann rise over the first fft_size - hop samples and a square-root Hann fall
    over the last hop samples, so the spectrum keeps the frequency resolution of a long frame.
    Synthesis: zero except on the last 2 * hop samples, where analysis times synthesis is a periodic Hann
    of 2 * hop samples, whose copies at hop spacing sum to 1. The delay of analysis plus synthesis is set
    by the synthesis window: 2 * hop - 1 samples with a hop clock, whatever fft_size is.
    """
    if fft_size < 2 * hop:
        raise ValueError(f"asymmetric windows need fft_size >= 2 * hop, got {fft_size} and {hop}")
    rise = fft_size - hop
    analysis = np.zeros(fft_size)
    analysis[:rise] = np.sqrt(analysis_window(2 * rise)[:rise])
    analysis[rise:] = np.sqrt(analysis_window(2 * hop)[hop:])
    synthesis = np.zeros(fft_size)
    tail = slice(fft_size - 2 * hop, fft_size)
    synthesis[tail] = analysis_window(2 * hop) / analysis[tail]
    return analysis, synthesis
