"""The oracle benchmark (benchmarks/oracles.py): its --quick run's JSON, the exact round trip its variants
are built on, the band powers it puts above and under a cutoff, its clip-level match, its holes and its
stereo variants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.oracles import (
    BANDS, SCHEMA_VERSION, STEREO_VARIANTS, analysed, band_membership, band_powers_above, band_powers_matched,
    clip_level_matched, decoded_holes, resynthesised, stereo_variants, variants,
)
from evaluation.metrics import HOLE_DB
from conftest import run_benchmark


@pytest.mark.parametrize("condition, channels", [("lame_32k_mono", (1, 1)), ("libmp3lame_32k", (2, 1))])
def test_oracles_benchmark_quick_run(tmp_path, condition, channels):
    out = tmp_path / "oracles.json"
    done = run_benchmark("benchmarks.oracles", "--quick", "--condition", condition, "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "oracles" and result["quick"] is True and result["schema"] == SCHEMA_VERSION
    names = result["variants"]
    assert names[:2] == ["decoded", "output"] and len(names) == len(set(names))
    assert names[-len(STEREO_VARIANTS):] == list(STEREO_VARIANTS)
    assert tuple(row["channels"] for row in result["per_clip"]) == channels   # a stereo mix, a mono voice
    for row in result["per_clip"]:
        assert row["resynthesis_error"] < 1e-4          # the output rebuilt from its own STFT is the output
        stereo = row["channels"] == 2
        assert all(1.0 <= row[name] <= 5.0 for name in names if stereo or name not in STEREO_VARIANTS)
        assert all((row[name] is None) != stereo for name in STEREO_VARIANTS)
        assert 4_000 < row["cutoff_hz"] < 12_000        # 32 kbit/s
        assert row["gate_cutoff_hz"] is None or 4_000 < row["gate_cutoff_hz"] < 12_000
    for key, block in result["summary"].items():
        assert block["clips"] + block["not_engaged"] == sum(f"{r['set']}/{r['kind']}" == key
                                                            for r in result["per_clip"])
    assert all(f"| {name} |" in done.stdout for name in names)          # the table, a row per variant


def test_band_powers_above_the_cutoff_are_flat_at_each_bands_mean_power():
    member = band_membership()
    assert member.shape == (513, BANDS) and np.all(member.sum(1) == 1)   # every bin in exactly one band
    rng = np.random.default_rng(0)
    mag = rng.rayleigh(1.0, (40, 513))
    above = (np.arange(513) >= 200).astype(float)
    env = band_powers_above(mag, above, member)
    assert np.all(env[:, :200] == 0.0)
    for b in np.flatnonzero(member[200:].sum(0)):        # each band above the cutoff, its bins above it
        bins = np.flatnonzero(member[:, b] * above)
        np.testing.assert_allclose(env[:, bins], np.sqrt((mag[:, bins] ** 2).mean(1, keepdims=True)).repeat(
            len(bins), 1))
    m = {"clean": mag, "decoded": mag * (1 - above), "output": mag * 0.5, "above": above, "below": 1 - above,
         "env": env, "env_out": band_powers_above(mag * 0.5, above, member), "holes": np.zeros_like(mag)}
    made = {name: f(m) for name, f in variants(member, np.random.default_rng(1)).items()}
    power_above = {name: ((x * above) ** 2).sum(1) for name, x in made.items()}
    np.testing.assert_allclose(power_above["clean_band_powers_above"], power_above["clean_magnitudes_above"])
    np.testing.assert_allclose(power_above["clean_level_output_shape"], power_above["clean_magnitudes_above"])
    np.testing.assert_allclose(power_above["clean_shape_output_level"], (mag * 0.5 * above) ** 2 @ np.ones(513))
    np.testing.assert_allclose(made["clean_under_cutoff"] * (1 - above), mag * (1 - above))
    np.testing.assert_allclose(made["band_powers_under_3db"] * above, mag * 0.5 * above)   # the band above as output
    shift_db = 10 * np.log10((((made["band_powers_under_3db"] * (1 - above)) ** 2) @ member)[:, :10]
                             / (((mag * (1 - above)) ** 2) @ member)[:, :10])
    assert 1.5 < shift_db.std() < 4.5                           # the clean band powers, 3 dB of random error


def test_band_powers_matched_under_a_cutoff_keep_the_fine_structure_at_the_target_band_power():
    member = band_membership()
    rng = np.random.default_rng(2)
    mag, to = rng.rayleigh(1.0, (30, 513)), rng.rayleigh(3.0, (30, 513))
    below = (np.arange(513) < 150).astype(float)
    made = band_powers_matched(mag, to, below, member)
    assert np.all(made[:, 150:] == 0.0)
    np.testing.assert_allclose(((made * below) ** 2) @ member, ((to * below) ** 2) @ member, rtol=1e-9)
    for b in np.flatnonzero((member * below[:, None]).sum(0)):   # within a band and frame: one gain
        bins = np.flatnonzero(member[:, b] * below)
        ratio = made[:, bins] / mag[:, bins]
        np.testing.assert_allclose(ratio, ratio[:, :1].repeat(len(bins), 1))


def test_clip_level_matched_moves_each_band_by_one_gain_to_the_targets_mean_log_level():
    member = band_membership()
    above = (np.arange(513) >= 200).astype(float)
    rng = np.random.default_rng(3)
    course = band_powers_above(rng.rayleigh(1.0, (50, 513)), above, member)
    offset_db = rng.uniform(-12.0, 12.0, BANDS)
    target = course * (10 ** (offset_db / 20) @ member.T)
    np.testing.assert_allclose(clip_level_matched(course, target, member), target, rtol=1e-9)
    shaken = target * (10 ** (rng.normal(0.0, 4.0, (50, BANDS)) / 20) @ member.T)   # another course, same clip
    made = clip_level_matched(course, shaken, member)
    ratio = made[:, 200:] / course[:, 200:]
    np.testing.assert_allclose(ratio, ratio[:1].repeat(50, 0))                  # one gain per bin over time
    bands = np.flatnonzero(member[200:].sum(0))                                 # the bands above the cutoff
    log_gap = np.log(((made ** 2) @ member)[:, bands] / ((shaken ** 2) @ member)[:, bands])
    np.testing.assert_allclose(log_gap.mean(0), 0.0, atol=1e-9)                 # at the target's mean level


def test_decoded_holes_are_bins_the_codec_left_hole_db_under_the_clean_under_the_cutoff():
    clean = np.full((4, 513), 100.0)
    decoded = clean.copy()
    decoded[:, 10] = clean[:, 10] * 10 ** (-(HOLE_DB + 1) / 20)        # a hole
    decoded[:, 11] = clean[:, 11] * 10 ** (-(HOLE_DB - 1) / 20)        # quieter, not a hole
    decoded[:, 300] = 0.0                                               # above the cutoff: not counted
    clean[:, 12], decoded[:, 12] = 1e-6, 0.0                            # at the floor: not counted
    below = (np.arange(513) < 200).astype(float)
    holes = decoded_holes(clean, decoded, below)
    assert holes.shape == (4, 513) and np.all(holes[:, 10] == 1)
    assert holes.sum() == 4


def test_stereo_variants_put_the_clean_band_powers_above_the_cutoff_into_the_side_or_the_mid_alone():
    rng = np.random.default_rng(4)
    clean = rng.normal(0.0, 0.1, (2, 48_000)).astype(np.float32)   # independent left and right: S as loud as M
    cutoff = 200
    above = (np.arange(513) >= cutoff).astype(float)
    mid, side = analysed(0.5 * (clean[0] + clean[1])), analysed(0.5 * (clean[0] - clean[1]))
    side_left = resynthesised(side * (1.0 - above) + 1e-3 * side * above, clean.shape[1])   # the side lost above
    mid_kept = resynthesised(mid, clean.shape[1])
    output = np.stack([mid_kept + side_left, mid_kept - side_left])
    made = stereo_variants(clean, output, above, band_membership())
    assert set(made) == set(STEREO_VARIANTS) and all(x.shape == (48_000,) for x in made.values())

    def power_db(x, region):
        return 10 * np.log10(((np.abs(analysed(x)) ** 2) * region).sum())

    gap = {name: power_db(x, above) - power_db(output[0], above) for name, x in made.items()}
    assert abs(power_db(clean[0], above) - power_db(output[0], above) - 3.0) < 0.3   # the side's half is gone
    # a band-flat half resynthesised with a noise phase loses up to 1 dB (its STFT is not consistent)
    assert abs(gap["clean_mid_envelope_above"]) < 1.0                                # the mid was right already
    assert 2.0 < gap["clean_side_envelope_above"] < 3.5                              # the side's brought back
    for x in made.values():                                                          # under the cutoff: output
        assert abs(power_db(x, 1.0 - above) - power_db(output[0], 1.0 - above)) < 0.05
