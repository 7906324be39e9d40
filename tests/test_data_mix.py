"""Data v2 signal processing: the brick-wall limiter's ceiling, the mix bus, panning and the speech
augmentations (training/data/dsp.py, mixes.py, augment.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from training.data import augment, dsp, mixes

RATE = 48_000


def _loud(seed: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, int(seconds * RATE))) * 0.4
    x[:, rng.integers(0, x.shape[1], 40)] = rng.uniform(-6, 6, (2, 40))     # spikes far over full scale
    return x.astype(np.float32)


@pytest.mark.parametrize("ceiling_db, lookahead_s, hold_s, release_s",
                         [(-0.1, 0.0015, 0.002, 0.01), (-1.0, 0.005, 0.02, 0.2), (-0.3, 0.001, 0.0, 0.05)])
def test_limiter_ceiling_holds_and_length_is_kept(ceiling_db, lookahead_s, hold_s, release_s):
    x = _loud(0)
    y = dsp.limit(x, ceiling_db, lookahead_s, hold_s, release_s)
    assert y.shape == x.shape
    assert np.abs(y).max() <= dsp.db_to_gain(ceiling_db)
    assert np.all(np.abs(y) <= np.abs(x) + 1e-7)           # a limiter only turns down


def test_limiter_leaves_quiet_audio_alone():
    x = (np.random.default_rng(2).standard_normal((2, RATE)) * 0.05).astype(np.float32)
    assert np.allclose(dsp.limit(x, -0.3), x, atol=1e-7)


def test_master_is_loud_and_under_its_ceiling():
    rng = random.Random(3)
    t = np.arange(3 * RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    hits = np.zeros_like(t)
    hits[:: RATE // 4] = 3.0
    mix = np.stack([tone + hits, tone - 0.5 * hits]).astype(np.float32)
    for _ in range(4):
        y, settings = mixes.master(mix, rng)
        assert y.shape == mix.shape
        assert np.abs(y).max() <= dsp.db_to_gain(settings["ceiling_db"])
        assert dsp.crest_db(y) < 12.0 and dsp.rms_db(y) > -14.0


def test_pan_keeps_a_centred_stem_equal_and_moves_a_panned_one():
    x = np.ones((1, 8), np.float32)
    assert np.allclose(dsp.pan(x, 0.0), 1.0, atol=1e-6)
    left = dsp.pan(x, -1.0)
    assert left[0, 0] == pytest.approx(np.sqrt(2)) and abs(left[1, 0]) < 1e-6
    stereo = np.stack([np.ones(8), -np.ones(8)]).astype(np.float32)   # all side
    assert np.allclose(dsp.pan(stereo, 0.0, width=0.0), 0.0, atol=1e-6)


def _f0(x: np.ndarray) -> float:
    m = x[0, RATE // 2: RATE // 2 + 8192]
    c = np.correlate(m, m, "full")[len(m) - 1:]
    lo = RATE // 500
    return RATE / (lo + int(np.argmax(c[lo: RATE // 60])))


def test_augmentations_change_speed_pitch_and_duration_as_asked():
    t = np.arange(3 * RATE) / RATE
    x = (0.1 * sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 30)))[None].astype(np.float32)
    assert augment.stretch(x, 1.25).shape[1] == int(round(x.shape[1] * 1.25))
    assert _f0(augment.stretch(x, 1.25)) == pytest.approx(200, rel=0.02)
    shifted = augment.shift_pitch(x, 3.0)
    assert shifted.shape == x.shape and _f0(shifted) == pytest.approx(200 * 2 ** 0.25, rel=0.02)
    fast = augment.change_speed(x, 1.1)
    assert fast.shape[1] == pytest.approx(x.shape[1] / 1.1, abs=2) and _f0(fast) == pytest.approx(220, rel=0.02)
    assert _f0(augment.shift_formants(x, 1.1)) == pytest.approx(200, rel=0.02)


def test_an_augmentation_is_reproducible_from_its_seed():
    x = (np.random.default_rng(4).standard_normal((1, 2 * RATE)) * 0.1).astype(np.float32)
    a, recipe_a = augment.augment(x, "seg#0001~0")
    b, recipe_b = augment.augment(x, "seg#0001~0")
    assert recipe_a == recipe_b and np.array_equal(a, b)
    assert 0.9 <= recipe_a["speed"] <= 1.1 and np.abs(a).max() <= 0.97
