"""The STFT windows and the level reference every stage, metric and the training code share.

Two framings (config `stft.window`, recorded in a model's metadata):
- 'hann': analysis window a periodic Hann of `fft_size` N samples, synthesis window its dual for hop H
  (analysis times synthesis, summed over the overlapping frames, is 1); the synthesis window spans the
  whole frame, so analysis plus synthesis delay the signal by N - 1 samples with a hop clock;
- 'asymmetric': a long analysis window with a short synthesis window of 2 H samples at the frame's end
  (`asymmetric_windows`): the frequency resolution of N samples at a delay of 2 H - 1.
`synthesis_span(...)` is the synthesis window's support (the last L samples of the frame; the delay is
L - 1). Full scale: the rfft magnitude of a full-scale sine under the analysis window (N/4 for Hann);
levels in dB "re full scale" are 20 log10(magnitude / full_scale_magnitude(N, window)).
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


WINDOWS = ("hann", "asymmetric")
"""The framings the engine runs (config `stft.window`)."""


def stft_windows(fft_size: int, hop: int, window: str = "hann") -> tuple[np.ndarray, np.ndarray]:
    """(analysis, synthesis) windows of `window` (one of WINDOWS), each (fft_size,) float64."""
    if window == "hann":
        return analysis_window(fft_size), synthesis_window(fft_size, hop)
    if window == "asymmetric":
        return asymmetric_windows(fft_size, hop)
    raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")


def synthesis_span(fft_size: int, hop: int, window: str = "hann") -> int:
    """L, the samples at the end of a frame where the synthesis window is not zero: N for Hann, 2 H for
    the asymmetric framing. With a hop clock, analysis and synthesis delay the signal by L - 1 samples."""
    return fft_size if window == "hann" else 2 * hop


def synthesis_centre(fft_size: int, hop: int, window: str = "hann") -> float:
    """The middle of the synthesis window's support, in samples from the frame's start: fft_size / 2 for
    Hann, fft_size - hop for the asymmetric framing. The phase stage places what it synthesises there."""
    return fft_size - synthesis_span(fft_size, hop, window) / 2.0


def full_scale_magnitude(fft_size: int, window: str = "hann", hop: int = 0) -> float:
    """|rfft| of a full-scale sine under the analysis window of `window` and `fft_size` samples: half the
    window's sum, N / 4 for the periodic Hann window. The asymmetric window depends on `hop` too."""
    if window == "hann":
        return fft_size / 4.0
    return float(stft_windows(fft_size, hop, window)[0].sum() / 2.0)


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
