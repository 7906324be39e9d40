"""The codec-damage statistics of training/v2/damage.py on magnitudes whose damage is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from training.v2 import features  # noqa: E402
from training.v2.damage import HOLE_DB, damage_scores  # noqa: E402

FS = features.full_scale_magnitude()


def _source(frames: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (FS * 0.1 * rng.uniform(0.5, 1.0, (frames, features.BINS))).astype(np.float32)


def test_an_untouched_source_shows_no_damage_and_holes_count_where_audible() -> None:
    source = _source()
    confidence = np.zeros_like(source)
    clean = damage_scores(source, source, source, confidence, 12000.0, 2000.0, 0.5, FS)
    assert clean == {"labelled": 0.0, "audible_holes": 0.0, "flagged": 0.0, "filled": 0.0}
    decoded = source.copy()
    decoded[:, 100:150] *= 10 ** (-(HOLE_DB + 10) / 20)        # 50 of the 213 bins under 10 kHz: holes
    confidence[:, 100:125] = 0.9                                 # the model sure of half of them, and fills them
    estimate = decoded.copy()
    estimate[:, 100:125] = source[:, 100:125]
    scores = damage_scores(source, decoded, estimate, confidence, 12000.0, 2000.0, 0.5, FS)
    under = int(10000 * features.FFT_SIZE / 48000)
    assert scores["labelled"] == pytest.approx(50 / under) and scores["audible_holes"] == pytest.approx(50 / under)
    assert scores["flagged"] == pytest.approx(25 / under) and scores["filled"] == pytest.approx(25 / under)
    quiet = source.copy()                                        # the same holes 60 dB under the frame's peak
    quiet[:, 100:150] *= 1e-3
    inaudible = damage_scores(quiet, quiet * np.where(np.arange(features.BINS) // 50 == 2, 0.1, 1.0),
                              quiet, np.zeros_like(quiet), 12000.0, 2000.0, 0.5, FS)
    assert inaudible["labelled"] == pytest.approx(50 / under) and inaudible["audible_holes"] == 0.0


def test_audible_hole_labels_name_what_a_listener_misses_and_changed_labels_any_change() -> None:
    import torch

    from training.v2.loss import band_labels

    reference = torch.from_numpy(_source(8))
    decoded = reference.clone()
    decoded[:, 100:110] *= 10 ** (-(HOLE_DB + 5) / 20)          # an audible hole
    reference[:, 300:320] *= 1e-3                                 # quiet bins (60 dB down) the codec raised 10 dB
    decoded[:, 300:320] = reference[:, 300:320] * 10 ** (10 / 20)
    changed = band_labels(decoded, reference, 32, "changed")
    holes = band_labels(decoded, reference, 32, "audible_holes")
    width = torch.from_numpy(features.expansion_matrix(32)).sum(1)
    assert torch.allclose((changed * width).sum(-1), torch.tensor(30.0))
    assert torch.allclose((holes * width).sum(-1), torch.tensor(10.0))
    with pytest.raises(ValueError, match="labels must be one of"):
        band_labels(decoded, reference, 32, "loud")
