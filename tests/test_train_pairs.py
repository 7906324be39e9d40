"""Training pairs are aligned to the sample, for LAME and for every codec family and decode chain."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lameenc")
pytest.importorskip("miniaudio")
pytest.importorskip("soxr")      # the `train` extra; strict CI turns a skip into a failure

from evaluation.chains import DecodeChain, Encoding, advance, measure_lag  # noqa: E402
from realtime.engine.config import MODEL_RATE_HZ  # noqa: E402
from training.pairs import REFERENCE, Pairing, chains_pairing, lame, make_pair  # noqa: E402


def _music_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """(2, samples) f32 at 48 kHz: chords with onsets and noise bursts, different per channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * MODEL_RATE_HZ)
    t = np.arange(n) / MODEL_RATE_HZ
    env = (np.sin(2 * np.pi * 2.5 * t) > 0) * np.exp(-((t * 2.5) % 1.0) * 4)
    out = []
    for ch in range(2):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.01 * ch) * t) / (i + 1) for i, f in enumerate((220, 330, 440, 1250, 3100)))
        x = 0.15 * x * env + 0.03 * rng.standard_normal(n) * env
        out.append(x)
    return np.asarray(out, np.float32)


PAIRINGS = [REFERENCE, lame(24), lame(64, 1, 44_100), lame(32, 2), lame(128),
            Pairing(Encoding("aac", 32), DecodeChain("ffmpeg", MODEL_RATE_HZ, "swr", sample_format="s16_tpdf"),
                    "chains"),
            Pairing(Encoding("libopus", 16), DecodeChain("soundfile", sample_format="s16"), "chains"),
            Pairing(Encoding("libvorbis", quality=0, channels=2), DecodeChain("ffmpeg", 44_100, "scipy"), "chains"),
            Pairing(Encoding("libtwolame", 64, input_rate=44_100), DecodeChain("ffmpeg", MODEL_RATE_HZ, "soxr_lq"),
                    "chains"),
            Pairing(Encoding("libshine", 32), DecodeChain("minimp3", sample_format="s24"), "chains"),
            Pairing(Encoding("libmp3lame", quality=9), DecodeChain("soundfile", MODEL_RATE_HZ, "soxr_hq"), "chains")]


@pytest.mark.parametrize("codec", PAIRINGS, ids=lambda c: c.name)
def test_pair_is_aligned_to_the_sample(codec: Pairing) -> None:
    x = _music_like()
    pair, facts = make_pair(x, codec)
    lag = facts["residual_lag_samples"]
    assert pair.shape == (2, codec.encoding.channels, x.shape[1])
    assert abs(lag) < 0.5, f"{codec.name}: decoded lags the clean reference by {lag:.2f} samples"
    # independent check: the lag measured on each half of the clip is the same sample (a parametric coder
    # such as Opus's SILK does not reproduce the waveform as a pure delay, so the halves may differ by a
    # fraction of a sample)
    half = x.shape[1] // 2
    for a, b in ((0, half), (half, x.shape[1])):
        assert abs(measure_lag(pair[0, 0, a:b], pair[1, 0, a:b])) < 1.0
    # and one sample of shift is detected (the check can see a misalignment of one sample)
    assert abs(measure_lag(pair[0, 0], advance(pair[1], -1.0)[0]) - 1.0) < 0.5


def test_every_segment_gets_a_pairing_its_decoder_can_read() -> None:
    for i in range(300):
        pairing = chains_pairing(f"segment-{i}")
        assert pairing.chain.decodes(pairing.encoding), pairing.name


def test_measure_lag_finds_a_known_delay() -> None:
    x = _music_like()[0]
    y = np.concatenate([np.zeros(37, np.float32), x[:-37]])
    assert abs(measure_lag(x, y) - 37) < 0.1
