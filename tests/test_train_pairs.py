"""MP3 training pairs are aligned to the sample (LAME + minimp3 delay removed at the MP3's own rate)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lameenc")
pytest.importorskip("miniaudio")
pytest.importorskip("soxr")

from realtime.train.pairs import REFERENCE, Codec, make_pair, measure_lag, shift  # noqa: E402


def _music_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """(2, samples) f32 at 48 kHz: chords with onsets and noise bursts, different per channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 48_000)
    t = np.arange(n) / 48_000
    env = (np.sin(2 * np.pi * 2.5 * t) > 0) * np.exp(-((t * 2.5) % 1.0) * 4)
    out = []
    for ch in range(2):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.01 * ch) * t) / (i + 1) for i, f in enumerate((220, 330, 440, 1250, 3100)))
        x = 0.15 * x * env + 0.03 * rng.standard_normal(n) * env
        out.append(x)
    return np.asarray(out, np.float32)


@pytest.mark.parametrize("codec", [REFERENCE, Codec(24, 1, 48_000), Codec(64, 1, 44_100), Codec(32, 2, 48_000),
                                   Codec(128, 1, 48_000)], ids=lambda c: c.name)
def test_pair_is_aligned_to_the_sample(codec: Codec) -> None:
    x = _music_like()
    pair, lag = make_pair(x, codec)
    assert pair.shape == (2, codec.channels, x.shape[1])
    assert abs(lag) < 0.5, f"{codec.name}: decoded lags the clean reference by {lag:.2f} samples"
    # independent check: the lag measured on each half of the clip agrees
    half = x.shape[1] // 2
    for a, b in ((0, half), (half, x.shape[1])):
        assert abs(measure_lag(pair[0, 0, a:b], pair[1, 0, a:b])) < 0.5
    # and one sample of shift is detected (the check can see a misalignment of one sample)
    assert abs(measure_lag(pair[0, 0], shift(pair[1], -1)[0]) - 1.0) < 0.5


def test_measure_lag_finds_a_known_delay() -> None:
    x = _music_like()[0]
    y = np.concatenate([np.zeros(37, np.float32), x[:-37]])
    assert abs(measure_lag(x, y) - 37) < 0.1
