"""Data v2 codec conditions: the sampler covers MP3 cutoffs from ~4 to 17 kHz, weights LAME 32k stereo up,
trains stereo encodings as mid, side or one channel, and every chain decodes its encoding
(training/data/conditions.py)."""

from __future__ import annotations

import pytest

from evaluation.chains import ENCODERS, Encoding
from training.data import conditions

DRAWS = 3000


@pytest.fixture(scope="module")
def drawn():
    return [conditions.draw(f"seg{i}", 2) for i in range(DRAWS)]


def test_cutoffs_cover_4_to_17_khz_without_a_gap(drawn):
    cutoffs = sorted({c.cutoff_hz for c in drawn if c.cutoff_hz is not None})
    assert cutoffs[0] <= 4_500 and cutoffs[-1] >= 16_500
    below_17k = [c for c in cutoffs if c <= 17_000]
    assert max(b - a for a, b in zip(below_17k, below_17k[1:])) <= 2_000


def test_lame_32k_stereo_is_weighted_up(drawn):
    share = sum(c.encoding.encoder == "lameenc" and c.encoding.bitrate_kbps == 32 and c.encoding.channels == 2
                for c in drawn) / DRAWS
    assert share >= 0.15
    assert any(c.cutoff_hz == 5_500 for c in drawn)


def test_every_family_and_signal_is_drawn_and_decodable(drawn):
    assert {c.encoding.encoder for c in drawn} == set(ENCODERS)
    assert {c.signal for c in drawn} == {"mono", "mid", "side", "left", "right"}
    for c in drawn:
        assert c.chain.decodes(c.encoding)
        assert (c.signal == "mono") == (c.encoding.channels == 1)


def test_a_mono_segment_is_never_trained_as_a_side():
    signals = {conditions.draw(f"m{i}", 1).signal for i in range(500)}
    assert signals == {"mono", "mid"}


def test_draws_are_reproducible():
    assert conditions.draw("x", 2) == conditions.draw("x", 2)


def test_the_cutoff_table_matches_a_measurement():
    encoding = Encoding("lameenc", 32, channels=2, input_rate=48_000)
    rate, cutoff = conditions.measure_cutoff(encoding, seconds=1.0)
    table_rate, table_cutoff = conditions.LAME_CUTOFF_HZ[("lameenc", 32, 2, 48_000)]
    assert rate == table_rate and abs(cutoff - table_cutoff) <= 300
