"""Short-time Fourier analysis and overlap-add synthesis, streaming (per hop) and offline.

Conventions, shared by the engine, the training code and the tests (see docs/CONTRACTS.md):
- analysis window: periodic Hann of `fft_size` N samples; synthesis window: its dual for hop H, so
  analysis followed by synthesis reconstructs perfectly;
- frame k covers input samples [k*H + H - N, k*H + H) (zeros before the start), the frame completed by
  the k-th full hop, and its spectrum is `np.fft.rfft(window * x[start:start + N])`, F = N/2 + 1 bins;
- streaming with a hop clock delays the signal by N - 1 samples; `istft_offline` reproduces that delay.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from realtime.engine.fft import _TABLES, FFTPlan, _irfft, _rfft
from realtime.engine.windows import analysis_window, synthesis_window


def stft_offline(signal: np.ndarray, fft_size: int, hop: int) -> np.ndarray:
    """Spectra of a whole mono signal (samples,) -> (frames, fft_size // 2 + 1) complex64.

    frames = len(signal) // hop; frame k is exactly the engine's k-th frame.
    """
    signal = np.asarray(signal, dtype=np.float64)
    frames = len(signal) // hop
    padded = np.concatenate([np.zeros(fft_size - hop), signal[: frames * hop]])
    starts = np.arange(frames)[:, None] * hop
    segments = padded[starts + np.arange(fft_size)[None, :]]
    return np.fft.rfft(segments * analysis_window(fft_size), axis=1).astype(np.complex64)


def istft_offline(spectra: np.ndarray, fft_size: int, hop: int) -> np.ndarray:
    """Overlap-add synthesis of (frames, F) spectra -> (frames * hop,) float64, delayed as the engine is.

    Output sample t corresponds to input sample t - (fft_size - 1) of `stft_offline`'s signal.
    """
    frames = spectra.shape[0]
    segments = np.fft.irfft(spectra, fft_size, axis=1) * synthesis_window(fft_size, hop)
    accumulated = np.zeros(frames * hop + fft_size)
    for k in range(frames):
        accumulated[k * hop : k * hop + fft_size] += segments[k]
    # Frame k is finalised after hop k and emitted from the end of hop k on: shift by hop - 1.
    out = np.zeros(frames * hop)
    out[hop - 1 :] = accumulated[: frames * hop - hop + 1]
    return out


class StreamingAnalysis:
    """Per-hop framing and windowed FFT for (channels,) independent streams, allocation-free."""

    def __init__(self, fft_size: int, hop: int, channels: int) -> None:
        self.plan = FFTPlan(fft_size)
        self.window = analysis_window(fft_size)
        self.frame = np.zeros((channels, fft_size))  # last fft_size input samples per channel
        self.windowed = np.zeros(fft_size)
        self.hop = hop

    def reset(self) -> None:
        """Forget the input history (silence before the next sample)."""
        self.frame[:] = 0.0

    def push_hop(self, hop_samples: np.ndarray, spectra: np.ndarray, magnitudes: np.ndarray) -> None:
        """Shift in hop_samples (C, hop) f32, write spectra (C, F) c64 and magnitudes (C, F) f32."""
        p = self.plan
        _analyse(hop_samples, self.frame, self.window, self.windowed, spectra, magnitudes,
                 p.bit_reverse, p.twiddles, p.split, p.scratch)


class StreamingSynthesis:
    """Per-hop inverse FFT and overlap-add for (channels,) independent streams, allocation-free."""

    def __init__(self, fft_size: int, hop: int, channels: int) -> None:
        self.plan = FFTPlan(fft_size)
        self.window = synthesis_window(fft_size, hop)
        self.accumulator = np.zeros((channels, fft_size))
        self.segment = np.zeros(fft_size)
        self.spectrum = np.zeros(fft_size // 2 + 1, dtype=np.complex128)

    def reset(self) -> None:
        """Forget the overlap-add tail."""
        self.accumulator[:] = 0.0

    def push_frame(self, spectra: np.ndarray, hop_out: np.ndarray) -> None:
        """Overlap-add spectra (C, F) c64; write the finalised hop_out (C, hop) f32."""
        p = self.plan
        _synthesise(spectra, self.accumulator, self.window, self.segment, self.spectrum, hop_out,
                    p.bit_reverse, p.twiddles, p.split, p.scratch)


# Fixed signatures (compiled at import, nothing compiles later): the hop of input may be any float32 view.
@njit(f"void(float32[:, :], float64[:, ::1], float64[::1], float64[::1], complex64[:, ::1], float32[:, ::1], "
      f"{_TABLES})", cache=True, nogil=True)
def _analyse(hop_samples, frame, window, windowed, spectra, magnitudes,
             bit_reverse, twiddles, split, scratch) -> None:
    channels, hop = hop_samples.shape
    size = frame.shape[1]
    for c in range(channels):
        for i in range(size - hop):
            frame[c, i] = frame[c, i + hop]
        for i in range(hop):
            frame[c, size - hop + i] = hop_samples[c, i]
        for i in range(size):
            windowed[i] = frame[c, i] * window[i]
        _rfft(windowed, spectra[c], bit_reverse, twiddles, split, scratch)
        for k in range(spectra.shape[1]):
            magnitudes[c, k] = abs(spectra[c, k])


@njit(f"void(complex64[:, ::1], float64[:, ::1], float64[::1], float64[::1], complex128[::1], float32[:, ::1], "
      f"{_TABLES})", cache=True, nogil=True)
def _synthesise(spectra, accumulator, window, segment, spectrum, hop_out,
                bit_reverse, twiddles, split, scratch) -> None:
    channels, hop = hop_out.shape
    size = accumulator.shape[1]
    for c in range(channels):
        for k in range(spectrum.shape[0]):
            spectrum[k] = spectra[c, k]
        _irfft(spectrum, segment, bit_reverse, twiddles, split, scratch)
        for i in range(size):
            accumulator[c, i] += segment[i] * window[i]
        for i in range(hop):
            hop_out[c, i] = accumulator[c, i]
        for i in range(size - hop):
            accumulator[c, i] = accumulator[c, i + hop]
        for i in range(size - hop, size):
            accumulator[c, i] = 0.0
