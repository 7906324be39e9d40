"""The codec-damage statistics of training/v2/damage.py on magnitudes whose damage is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from training.v2 import features  # noqa: E402
from training.v2.damage import HOLE_DB, damage_scores  # noqa: E402


def _source(frames: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (features.full_scale_magnitude() * 0.1 * rng.uniform(0.5, 1.0, (frames, features.BINS))).astype(np.float32)


def test_an_untouched_source_shows_no_damage_and_holes_count_where_audible() -> None:
    source = _source()
    confidence = np.zeros_like(source)
    clean = damage_scores(source, source, source, confidence, 12000.0, 2000.0, 0.5)
    assert clean == {"labelled": 0.0, "audible_holes": 0.0, "flagged": 0.0, "filled": 0.0}
    decoded = source.copy()
    decoded[:, 100:150] *= 10 ** (-(HOLE_DB + 10) / 20)        # 50 of the 213 bins under 10 kHz: holes
    confidence[:, 100:125] = 0.9                                 # the model sure of half of them, and fills them
    estimate = decoded.copy()
    estimate[:, 100:125] = source[:, 100:125]
    scores = damage_scores(source, decoded, estimate, confidence, 12000.0, 2000.0, 0.5)
    under = int(10000 * features.FFT_SIZE / 48000)
    assert scores["labelled"] == pytest.approx(50 / under) and scores["audible_holes"] == pytest.approx(50 / under)
    assert scores["flagged"] == pytest.approx(25 / under) and scores["filled"] == pytest.approx(25 / under)
    quiet = source.copy()                                        # the same holes 60 dB under the frame's peak
    quiet[:, 100:150] *= 1e-3
    inaudible = damage_scores(quiet, quiet * np.where(np.arange(features.BINS) // 50 == 2, 0.1, 1.0),
                              quiet, np.zeros_like(quiet), 12000.0, 2000.0, 0.5)
    assert inaudible["labelled"] == pytest.approx(50 / under) and inaudible["audible_holes"] == 0.0
