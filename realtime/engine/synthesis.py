"""Synthesis stage: the complex spectrum of a frame in, a finalised hop of samples out (per channel).

Inverse rfft, the synthesis window of the framing (`realtime.engine.windows.stft_windows`: the Hann
window's dual, or the asymmetric framing's short window) and overlap-add over the window's support, the
last L samples of the frame (`synthesis_span`: fft_size for Hann, 2 * hop for the asymmetric framing); the
hop that no later frame overlaps any more is written out. With the engine's hop clock, analysis and
synthesis delay the signal by L - 1 samples: this stage counts L - hop of them, the clock the other
hop - 1. A stereo pair restored as mid and side is turned back into left M + S and right M - S here.
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.fft import _TABLES, FFTPlan, _irfft
from realtime.engine.stage import HopBuffers
from realtime.engine.windows import stft_windows, synthesis_span


class SynthesisStage:
    """Per-hop inverse FFT and overlap-add for (channels,) independent streams, allocation-free."""

    name = "synthesis"

    def __init__(self, fft_size: int, hop: int, stereo: str = "channels", window: str = "hann") -> None:
        """stereo: `model.stereo` of the config, 'mid_side' turns mid and side back into a stereo pair;
        window: the framing (`stft.window`)."""
        self.fft_size, self.hop, self.stereo = fft_size, hop, stereo
        self.span = synthesis_span(fft_size, hop, window)
        self.plan = FFTPlan(fft_size)
        self.window = stft_windows(fft_size, hop, window)[1]
        self.segment = np.zeros(fft_size)
        self.spectrum = np.zeros(fft_size // 2 + 1, dtype=np.complex128)
        self.mid_side = False
        self.prepare(1)

    @property
    def latency_samples(self) -> int:
        """span - hop samples at the model rate (see the module docstring)."""
        return self.span - self.hop

    def prepare(self, channels: int) -> None:
        """Allocate the overlap-add tail of `channels` streams."""
        self.accumulator = np.zeros((channels, self.span))  # the window's support, the frame's last samples
        self.mid_side = channels == 2 and self.stereo == "mid_side"

    def reset(self) -> None:
        """Forget the overlap-add tail."""
        self.accumulator[:] = 0.0

    def push_frame(self, spectra: np.ndarray, hop_out: np.ndarray) -> None:
        """Overlap-add spectra (C, F) c64; write the finalised hop_out (C, hop) f32."""
        p = self.plan
        _synthesise(spectra, self.accumulator, self.window, self.segment, self.spectrum, hop_out,
                    p.bit_reverse, p.twiddles, p.split, p.scratch)

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.phased -> buffers.hop_out (left and right again, for a pair restored as mid and side)."""
        self.push_frame(buffers.phased, buffers.hop_out)
        if self.mid_side:
            _from_mid_side(buffers.hop_out)


@njit(f"void(complex64[:, ::1], float64[:, ::1], float64[::1], float64[::1], complex128[::1], float32[:, ::1], "
      f"{_TABLES})", cache=True, nogil=True)
def _synthesise(spectra, accumulator, window, segment, spectrum, hop_out,
                bit_reverse, twiddles, split, scratch) -> None:
    channels, hop = hop_out.shape
    size = accumulator.shape[1]
    offset = segment.shape[0] - size  # the synthesis window is zero before the frame's last `size` samples
    for c in range(channels):
        for k in range(spectrum.shape[0]):
            spectrum[k] = spectra[c, k]
        _irfft(spectrum, segment, bit_reverse, twiddles, split, scratch)
        for i in range(size):
            accumulator[c, i] += segment[offset + i] * window[offset + i]
        for i in range(hop):
            hop_out[c, i] = accumulator[c, i]
        for i in range(size - hop):
            accumulator[c, i] = accumulator[c, i + hop]
        for i in range(size - hop, size):
            accumulator[c, i] = 0.0


@njit("void(float32[:, ::1])", cache=True, nogil=True)
def _from_mid_side(x) -> None:
    """x (2, n) mid, side -> left M + S, right M - S, in place."""
    for i in range(x.shape[1]):
        mid, side = x[0, i], x[1, i]
        x[0, i] = mid + side
        x[1, i] = mid - side
