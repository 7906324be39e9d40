"""Allocation-free real FFT of power-of-two length for the per-hop path (Numba).

`FFTPlan(n)` holds the tables made once (bit reversal, twiddles) and a scratch buffer; `rfft_into` and
`irfft_into` write into caller-owned arrays and follow numpy's conventions (`np.fft.rfft` unnormalised,
`np.fft.irfft` scaled by 1/n, imaginary parts of the DC and Nyquist bins ignored). The real transform of
length n is one complex transform of length n/2 plus a split step.

Every kernel is compiled for fixed signatures when this module is imported (or
loaded from Numba's cache), so no call ever compiles: frames are float64, spectra complex128 (or
complex64 for `rfft`), tables as `FFTPlan` makes them, all C-contiguous.
"""

from __future__ import annotations

import numpy as np
from realtime.engine.jit import njit


class FFTPlan:
    """Tables and scratch for real transforms of length `n` (power of two, >= 4)."""

    def __init__(self, n: int) -> None:
        if n < 4 or n & (n - 1):
            raise ValueError(f"FFT length must be a power of two >= 4, got {n}")
        half = n // 2
        bits = half.bit_length() - 1
        index = np.arange(half)
        reversed_index = np.zeros(half, dtype=np.int64)
        for b in range(bits):
            reversed_index |= ((index >> b) & 1) << (bits - 1 - b)
        self.n = n
        self.bit_reverse = reversed_index
        self.twiddles = np.exp(-2j * np.pi * np.arange(half // 2) / half)  # (n/4,) for the complex FFT
        self.split = np.exp(-2j * np.pi * np.arange(half + 1) / n)  # (n/2 + 1,) for the real split
        self.scratch = np.zeros(half, dtype=np.complex128)

    def rfft_into(self, frame: np.ndarray, spectrum: np.ndarray) -> None:
        """`spectrum[:] = np.fft.rfft(frame)`; frame (n,) real, spectrum (n/2 + 1,) complex."""
        _rfft(frame, spectrum, self.bit_reverse, self.twiddles, self.split, self.scratch)

    def irfft_into(self, spectrum: np.ndarray, frame: np.ndarray) -> None:
        """`frame[:] = np.fft.irfft(spectrum, n)`; spectrum (n/2 + 1,) complex, frame (n,) real."""
        _irfft(spectrum, frame, self.bit_reverse, self.twiddles, self.split, self.scratch)


_TABLES = "int64[::1], complex128[::1], complex128[::1], complex128[::1]"  # bit_reverse, twiddles, split, z


@njit("void(complex128[::1], int64[::1], complex128[::1])", cache=True, nogil=True)
def _fft_in_place(z: np.ndarray, bit_reverse: np.ndarray, twiddles: np.ndarray) -> None:
    """Iterative radix-2 forward FFT of z (m,) complex128 in place; m = len(bit_reverse)."""
    m = z.shape[0]
    for i in range(m):
        j = bit_reverse[i]
        if j > i:
            z[i], z[j] = z[j], z[i]
    size = 2
    while size <= m:
        half = size // 2
        stride = m // size
        for start in range(0, m, size):
            for k in range(half):
                w = twiddles[k * stride]
                a = z[start + k]
                b = z[start + k + half] * w
                z[start + k] = a + b
                z[start + k + half] = a - b
        size *= 2


@njit([f"void(float64[::1], {spectrum}[::1], {_TABLES})" for spectrum in ("complex64", "complex128")],
      cache=True, nogil=True)
def _rfft(frame, spectrum, bit_reverse, twiddles, split, z) -> None:
    half = z.shape[0]
    for k in range(half):
        z[k] = complex(frame[2 * k], frame[2 * k + 1])
    _fft_in_place(z, bit_reverse, twiddles)
    for k in range(half + 1):
        zk = z[k % half]
        zc = z[(half - k) % half].conjugate()
        even = 0.5 * (zk + zc)
        odd = -0.5j * (zk - zc)
        spectrum[k] = even + split[k] * odd


@njit(f"void(complex128[::1], float64[::1], {_TABLES})", cache=True, nogil=True)
def _irfft(spectrum, frame, bit_reverse, twiddles, split, z) -> None:
    half = z.shape[0]
    for k in range(half):
        xk = spectrum[k]
        xc = spectrum[half - k].conjugate()
        if k == 0:
            xk = complex(spectrum[0].real, 0.0)
            xc = complex(spectrum[half].real, 0.0)
        even = 0.5 * (xk + xc)
        odd = 0.5 * (xk - xc) * split[k].conjugate()
        # conj trick: ifft(Z) = conj(fft(conj(Z))) / m
        z[k] = (even + 1j * odd).conjugate()
    _fft_in_place(z, bit_reverse, twiddles)
    scale = 1.0 / half
    for k in range(half):
        value = z[k].conjugate() * scale
        frame[2 * k] = value.real
        frame[2 * k + 1] = value.imag
