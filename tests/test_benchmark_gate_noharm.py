"""The gate no-harm benchmark (benchmarks/gate_noharm.py): its --quick run's JSON, and the band variants and runs
it scores."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.gate_noharm import (
    BY_NAME, GROUPS, QUICK_CONDITIONS, QUICK_VARIANTS, SCHEMA_VERSION, VARIANT_BY_NAME, band_limited, children_table,
    runs_of,
)
from conftest import run_benchmark
from evaluation.metrics import power_db
from realtime.engine.config import MODEL_RATE_HZ


def test_gate_noharm_quick_run(tmp_path):
    out = tmp_path / "gate_noharm.json"
    done = run_benchmark("benchmarks.gate_noharm", "--quick", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "gate_noharm" and result["quick"] is True and result["schema"] == SCHEMA_VERSION
    assert [v["name"] for v in result["variants"]] == list(QUICK_VARIANTS)
    assert [c["name"] for c in result["conditions"]] == list(QUICK_CONDITIONS)
    assert sorted(c["channels"] for c in result["clips"]) == [1, 2]
    rows = result["per_run"]
    expected = sum(len(runs_of("main", QUICK_VARIANTS, QUICK_CONDITIONS, c["channels"])) for c in result["clips"])
    assert len(rows) == expected
    for row in rows:
        assert row["group"] in GROUPS and row["worse"] == (row["lsd_restored"] - row["lsd_decoded"] > 0.01)
        assert 0.0 <= row["damage_share"] <= 1.0 and 0.0 <= row["codec_made_share"] <= 1.0
        if not row["engaged"]:
            assert row["max_abs_change"] == 0.0          # the gate closed: the input itself, at any rate
    clean = [r for r in rows if r["condition"] == "clean_float" and r["variant"] == "full"]
    assert all(r["lsd_decoded"] == 0.0 for r in clean)
    summary = result["summary"]["main"]
    assert set(summary) == set(QUICK_CONDITIONS)
    assert summary["lame_32k_mono"]["full"]["clips"] == 2 and "at22k" not in summary["lame_128k"]
    assert result["readme_tables"]["main_engaged"] in done.stdout


def test_runs_leave_out_coded_native_files_and_stereo_coding_of_mono_clips():
    names, variants = tuple(BY_NAME), tuple(VARIANT_BY_NAME)
    mono = runs_of("main", variants, names, 1)
    assert ("at22k", "clean_float") in mono and ("at22k", "lame_128k") not in mono
    stereo = runs_of("main", variants, names, 2)
    assert ("full", "lame_32k_stereo") not in mono and ("full", "lame_32k_stereo") in stereo
    assert {v for v, _ in runs_of("children", variants, names, 1)} == {"full"}


def test_band_variants_end_where_they_say():
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal((1, MODEL_RATE_HZ))).astype(np.float32)
    for name, edge_hz in (("lp8k", 8_000), ("lp11k", 11_000), ("rs22k", 11_025), ("rs24k", 12_000)):
        spectrum = power_db(band_limited(noise, VARIANT_BY_NAME[name])[0]).mean(axis=0)
        bins = np.arange(spectrum.size) * MODEL_RATE_HZ / 1024
        below, above = spectrum[bins < 0.8 * edge_hz].mean(), spectrum[bins > 1.15 * edge_hz].mean()
        assert below - above > 40.0, name
    assert np.array_equal(band_limited(noise, VARIANT_BY_NAME["full"]), noise)


def test_gate_noharm_benchmarks_the_model_it_is_given(tmp_path):
    out = tmp_path / "gate_noharm.json"
    run_benchmark("benchmarks.gate_noharm", "--quick", "--model", "passthrough", "--variants", "full",
                  "--conditions", "lame_32k_mono", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["engine"]["model"] == "passthrough"
    rows = result["per_run"]
    assert rows and all(r["max_abs_change"] < 1e-6 for r in rows)    # passthrough: engaged or not, unchanged


def test_the_children_table_holds_runs_without_the_clean_conditions():
    """--conditions may leave the clean storages out: their columns then say so instead of failing the run."""
    row = {"set": "children", "clip": "child#0", "group": "low_bitrate", "engaged": True, "worse": False,
           "max_abs_change": 0.1, "codec_made_share": 0.3}
    table = children_table([row])
    assert "| child#0 | 0/0, w0 | 0/0, w0 | 1/1, w0 | - | - |" in table


def test_as_files_the_gate_is_told_what_each_coding_s_header_says() -> None:
    """--as-files: an MP3 at 32 kbit/s or less is low-rate, at 96 or more high-rate; other codecs, VBR settings
    (no nominal rate) and stored audio neither; each run says it anew."""
    from benchmarks.common import read_as_file
    from evaluation.chains import Encoding
    from realtime.engine.restorer import Restorer

    restorer = Restorer()
    for encoding, expected in ((Encoding("lameenc", 32), (True, False)), (Encoding("libmp3lame", 128, channels=2),
                               (False, True)), (Encoding("libmp3lame", 64, channels=2), (False, False)),
                               (Encoding("aac", 32), (False, False)), (Encoding("aac", 128), (False, False)),
                               (Encoding("libmp3lame", quality=9), (False, False)), (None, (False, False))):
        read_as_file(restorer, encoding, 2)
        assert (restorer.coded_input, restorer.high_rate_input) == expected, encoding
