"""Test signals made from a seed, so a benchmark runs anywhere (no corpus, no audio files).

- `program_material`: music-like audio with the features that cost the engine the most: dense harmonics
  up to 20 kHz, noise bursts (hi-hats), fast onsets, silence gaps; (channels, samples) float32 in [-1, 1].
- `speech_like`: a voiced source with moving formants, unvoiced fricative bursts and pauses.
- `click_train`: unit clicks at irregular gaps, so cross-correlation has one unambiguous peak.
"""

from __future__ import annotations

import numpy as np


def program_material(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Music-like test audio, (channels, round(seconds * rate)) float32, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    out = np.zeros((channels, n))
    note_s = 0.25
    for c in range(channels):
        voice = np.zeros(n)
        for start in np.arange(0.0, seconds, note_s):
            a, b = int(start * rate), min(n, int((start + note_s) * rate))
            if b <= a:
                continue
            f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            local = t[a:b] - start
            envelope = np.exp(-local * rng.uniform(2.0, 12.0)) * np.minimum(1.0, local * 400.0)
            for k in range(1, int(20_000 / f0) + 1):
                voice[a:b] += envelope * np.sin(2 * np.pi * k * f0 * local + rng.uniform(0, 2 * np.pi)) / k
        hats = rng.standard_normal(n) * np.exp(-(t % 0.125) * 60.0)
        hats = np.diff(hats, prepend=0.0)  # tilt towards the top octave
        gaps = (t % 3.0) > 2.7  # 0.3 s of silence every 3 s
        out[c] = np.where(gaps, 0.0, voice / 4.0 + 0.15 * hats)
    peak = np.max(np.abs(out)) or 1.0
    return (0.5 * out / peak).astype(np.float32)


def speech_like(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Speech-like mono test audio, (1, samples) float32, peak 0.5: formant-filtered pulse train + fricatives."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 120.0 * (1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    source = np.zeros(n)
    for k in range(1, 60):
        source += np.sin(k * phase) * (k * f0 < rate / 2 - 1000)
    spectrum = np.fft.rfft(source)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    shaped = np.zeros_like(spectrum)
    for formant, width in ((700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0), (3400.0, 250.0)):
        shaped += spectrum / (1.0 + ((freqs - formant) / width) ** 2)
    voiced = np.fft.irfft(shaped, n)
    fricative = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * (freqs > 3000), n)
    syllable = (t * 4.0) % 1.0
    voiced_gate = (syllable < 0.6) & ((t % 2.5) < 2.1)
    fricative_gate = (syllable > 0.65) & (syllable < 0.8) & ((t % 2.5) < 2.1)
    x = voiced * voiced_gate / (np.std(voiced) + 1e-9) + 0.3 * fricative * fricative_gate / (np.std(fricative) + 1e-9)
    return (0.5 * x / (np.max(np.abs(x)) or 1.0)).astype(np.float32)[None, :]


def click_train(rate: int, channels: int, clicks: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clicks of 0.5 at irregular gaps (30..90 ms): ((channels, samples) float32, click positions).

    The signal ends 50 ms after the last click; callers append the silence the latency needs.
    """
    rng = np.random.default_rng(seed)
    gaps = rng.integers(int(0.03 * rate), int(0.09 * rate), clicks)
    positions = int(0.05 * rate) + np.concatenate([[0], np.cumsum(gaps[:-1])])
    signal = np.zeros((channels, positions[-1] + int(0.05 * rate)), np.float32)
    signal[:, positions] = 0.5
    return signal, positions
