"""Analysis stage: a hop of samples in, the windowed spectrum of the newest frame out (per channel).

Frame k covers input samples [k*H + H - N, k*H + H) (zeros before the start), N = fft_size, H = hop: the
frame completed by the k-th full hop, windowed by the analysis window of the framing (`realtime.engine.windows.stft_windows`) and transformed
by the allocation-free rfft (numpy's convention). A stereo pair restored as mid and side (`model.stereo:
mid_side`) is turned into mid (L + R) / 2 and side (L - R) / 2 here, before framing, in the stage's own
buffer: `HopBuffers.hop_in` keeps the input as it came (the bypass stage's source). Adds no delay.
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.fft import _TABLES, FFTPlan, _rfft
from realtime.engine.stage import HopBuffers
from realtime.engine.windows import stft_windows


class AnalysisStage:
    """Per-hop framing and windowed FFT for (channels,) independent streams, allocation-free."""

    name = "analysis"
    latency_samples = 0

    def __init__(self, fft_size: int, hop: int, stereo: str = "channels", window: str = "hann") -> None:
        """stereo: `model.stereo` of the config, 'mid_side' turns a stereo pair into mid and side; window:
        the framing (`stft.window`)."""
        self.fft_size, self.hop, self.stereo = fft_size, hop, stereo
        self.plan = FFTPlan(fft_size)
        self.window = stft_windows(fft_size, hop, window)[0]
        self.windowed = np.zeros(fft_size)
        self.mid_side = False
        self.prepare(1)

    def prepare(self, channels: int) -> None:
        """Allocate the input history of `channels` streams."""
        self.frame = np.zeros((channels, self.fft_size))  # last fft_size input samples per channel
        self.mid_side = channels == 2 and self.stereo == "mid_side"
        self.mid_side_hop = np.zeros((2 if self.mid_side else 0, self.hop), np.float32)  # (2, hop): mid, side

    def reset(self) -> None:
        """Forget the input history (silence before the next sample)."""
        self.frame[:] = 0.0

    def push_hop(self, hop_samples: np.ndarray, spectra: np.ndarray, magnitudes: np.ndarray) -> None:
        """Shift in hop_samples (C, hop) f32, write spectra (C, F) c64 and magnitudes (C, F) f32."""
        p = self.plan
        _analyse(hop_samples, self.frame, self.window, self.windowed, spectra, magnitudes,
                 p.bit_reverse, p.twiddles, p.split, p.scratch)

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.hop_in (as mid and side for a pair; hop_in itself unchanged) -> the newest spectra and
        magnitudes."""
        hop_in = buffers.hop_in
        if self.mid_side:
            _to_mid_side(hop_in, self.mid_side_hop)
            hop_in = self.mid_side_hop
        self.push_hop(hop_in, buffers.newest_spectra, buffers.newest_magnitudes)


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


@njit("void(float32[:, ::1], float32[:, ::1])", cache=True, nogil=True)
def _to_mid_side(x, out) -> None:
    """x (2, n) left, right -> out (2, n) mid (L + R) / 2, side (L - R) / 2."""
    for i in range(x.shape[1]):
        left, right = x[0, i], x[1, i]
        out[0, i] = 0.5 * (left + right)
        out[1, i] = 0.5 * (left - right)
