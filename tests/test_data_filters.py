"""Data v2 sources: the DATA.md filters and why a file is dropped, the band edge, zip members, and
24-bit FLAC storage that keeps decoder overshoot (training/data/audio.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from training.data import audio

RATE_IN = 44_100


def _noise(seconds: float = 2.0, lowpass_hz: float | None = None, level: float = 0.1) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal(int(seconds * RATE_IN)) * level
    if lowpass_hz:
        x = signal.sosfiltfilt(signal.butter(12, lowpass_hz, fs=RATE_IN, output="sos"), x)
    return x.astype(np.float32)


def _wav(path, x: np.ndarray) -> str:
    sf.write(str(path), x, RATE_IN, subtype="FLOAT")
    return str(path)


def test_a_full_band_file_is_kept_at_48k(tmp_path):
    x, reason = audio.read_source_48k(_wav(tmp_path / "ok.wav", _noise()))
    assert reason is None and x.shape == (1, 96_000)


@pytest.mark.parametrize("make, reason", [
    (lambda: _noise(lowpass_hz=8_000), "no band above 16 kHz"),
    (lambda: np.clip(_noise(level=0.6), -0.99, 0.99), "clipped"),
    (lambda: _noise(seconds=0.01), "too short"),
])
def test_a_dropped_file_says_which_rule_dropped_it(tmp_path, make, reason):
    path = _wav(tmp_path / "x.wav", make())
    assert audio.read_source_48k(path) == (None, reason)


def test_clipping_under_the_threshold_share_is_kept(tmp_path):
    x = _noise()
    x[:50] = 0.99                                    # 50 of 88200 samples: 0.06 % < 0.1 %
    assert audio.read_source_48k(_wav(tmp_path / "x.wav", x))[1] is None


def test_band_edge_is_where_the_spectrum_ends():
    x = np.random.default_rng(0).standard_normal(96_000)
    f = np.fft.rfftfreq(len(x), 1 / audio.MODEL_RATE_HZ)
    for cutoff in (6_000.0, 12_000.0, 17_000.0):
        y = np.fft.irfft(np.fft.rfft(x) * (f < cutoff), len(x))[None]
        assert cutoff - 200 < audio.band_edge_hz(y) < cutoff + 600


def test_a_zip_member_reads_like_a_file(tmp_path):
    buffer = io.BytesIO()
    sf.write(buffer, _noise(), RATE_IN, format="WAV", subtype="FLOAT")
    archive = tmp_path / "pak.pk3"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("sound/voices/a.wav", buffer.getvalue())
    x, reason = audio.read_source_48k(f"{archive}::sound/voices/a.wav")
    assert reason is None and x.shape == (1, 96_000)
    assert audio.source_seconds(f"{archive}::sound/voices/a.wav") == pytest.approx(2.0)


def test_storage_keeps_overshoot_to_24_bits(tmp_path):
    x = (np.random.default_rng(1).standard_normal((2, 4800)) * 0.5).astype(np.float32)
    x[0, 10] = 1.7                                   # decoder overshoot
    scale = audio.store_segment(tmp_path / "s.flac", x)
    assert scale == 2.0
    y = audio.load_segment(tmp_path, {"file": "s.flac", "scale": scale})
    assert y.shape == x.shape and np.max(np.abs(y - x)) <= scale * 2.0 ** -23
    assert audio.store_segment(tmp_path / "t.flac", x * 0.5) == 1.0
