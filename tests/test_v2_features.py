"""Model v2's band scale and framing: pooling and expansion invert each other, frames match the engine's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realtime.engine.stft import stft_offline  # noqa: E402
from training.v2 import features  # noqa: E402


@pytest.mark.parametrize("bands", [8, 24, 32, 64])
def test_band_edges_cover_every_bin_once_and_widen_upwards(bands: int) -> None:
    edges = features.band_edges(bands)
    widths = np.diff(edges)
    assert edges[0] == 0 and edges[-1] == features.BINS and len(edges) == bands + 1
    assert widths.min() >= features.MIN_BAND_BINS
    assert np.all(np.diff(widths[widths > features.MIN_BAND_BINS]) >= -1)   # ERB bands grow with frequency


def test_expansion_then_pooling_is_the_identity_and_pooling_keeps_band_flat_spectra() -> None:
    pooling, expansion = features.pooling_matrix(32), features.expansion_matrix(32)
    values = np.random.default_rng(0).random((5, 32)).astype(np.float32)
    np.testing.assert_allclose(values @ expansion @ pooling, values, rtol=1e-6)
    flat = values @ expansion                                  # flat inside each band
    np.testing.assert_allclose(flat @ pooling @ expansion, flat, rtol=1e-6)
    spectrum = np.random.default_rng(1).random(features.BINS)
    assert (spectrum @ pooling).mean() == pytest.approx(
        np.mean([spectrum[a:b].mean() for a, b in zip(features.band_edges(32)[:-1], features.band_edges(32)[1:])]))


def test_training_frames_are_the_engines_asymmetric_frames() -> None:
    x = np.random.default_rng(2).standard_normal(20 * features.HOP) * 0.1
    reference = np.abs(stft_offline(x, features.FFT_SIZE, features.HOP, features.WINDOW))
    padded = np.concatenate([np.zeros(features.FFT_SIZE - features.HOP), x])
    frames = features.frame_magnitudes(torch.from_numpy(padded)).numpy()
    assert frames.shape == reference.shape
    np.testing.assert_allclose(frames, reference, atol=1e-5 * reference.max())
    sparse = features.frame_magnitudes(torch.from_numpy(padded), stride=4).numpy()
    np.testing.assert_array_equal(sparse, frames[::4])           # the loss's sparse frames, computed alone


def test_full_scale_is_the_magnitude_of_a_full_scale_sine() -> None:
    k = 40
    t = np.arange(8 * features.FFT_SIZE)
    sine = np.sin(2 * np.pi * k * t / features.FFT_SIZE)
    peak = np.abs(stft_offline(sine, features.FFT_SIZE, features.HOP, features.WINDOW))[-1].max()
    assert peak == pytest.approx(features.full_scale_magnitude(), rel=1e-4)
