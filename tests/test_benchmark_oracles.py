"""The oracle benchmark (benchmarks/oracles.py): its --quick run's JSON, the exact round trip its variants
are built on, and the band powers it puts above a cutoff."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.oracles import BANDS, SCHEMA_VERSION, band_membership, band_powers_above, variants
from conftest import run_benchmark


def test_oracles_benchmark_quick_run(tmp_path):
    out = tmp_path / "oracles.json"
    done = run_benchmark("benchmarks.oracles", "--quick", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "oracles" and result["quick"] is True and result["schema"] == SCHEMA_VERSION
    names = result["variants"]
    assert names[:2] == ["decoded", "output"] and len(names) == len(set(names))
    assert len(result["per_clip"]) == 2
    for row in result["per_clip"]:
        assert row["resynthesis_error"] < 1e-4          # the output rebuilt from its own STFT is the output
        assert all(1.0 <= row[name] <= 5.0 for name in names)
        assert 4_000 < row["cutoff_hz"] < 12_000        # LAME 32 kbit/s mono
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
         "env": env, "env_out": band_powers_above(mag * 0.5, above, member)}
    made = {name: f(m) for name, f in variants(member, np.random.default_rng(1)).items()}
    power_above = {name: ((x * above) ** 2).sum(1) for name, x in made.items()}
    np.testing.assert_allclose(power_above["clean_band_powers_above"], power_above["clean_magnitudes_above"])
    np.testing.assert_allclose(power_above["clean_level_output_shape"], power_above["clean_magnitudes_above"])
    np.testing.assert_allclose(power_above["clean_shape_output_level"], (mag * 0.5 * above) ** 2 @ np.ones(513))
    np.testing.assert_allclose(made["clean_under_cutoff"] * (1 - above), mag * (1 - above))
