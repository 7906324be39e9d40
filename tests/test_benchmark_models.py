"""The model benchmark (benchmarks/models.py): its --quick run's JSON, where a candidate identical to the shipped
model must score identically, and the rules it applies (conditions per channel count, the candidate's framing,
the active part of a clip, clips worse)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.models import (
    BY_NAME, FIXED_CHANNELS, GROUPS, METRICS, QUICK_CONDITIONS, SCHEMA_VERSION, SYSTEMS, ClipSet,
    active_part, applies, candidate_config, compare, encoding_for, estimate_s,
)
from benchmarks.clips import Clip
from benchmarks.quality import WORSE_DB
from conftest import run_benchmark, shipped_model_with_metadata
from realtime.engine.config import MODEL_RATE_HZ, load_config
from realtime.engine.model_files import shipped_model_path
from realtime.engine.model import OnnxModel
from realtime.engine.windows import WINDOWS


def test_models_benchmark_quick_run(tmp_path):
    out = tmp_path / "models.json"
    done = run_benchmark("benchmarks.models", "--quick", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "models" and result["quick"] is True and result["schema"] == SCHEMA_VERSION
    assert [c["name"] for c in result["conditions"]] == list(QUICK_CONDITIONS)
    assert result["groups"] == ["test_mix", "val_speech"] and set(result["groups"]) <= set(GROUPS)
    assert sorted(c["channels"] for c in result["clips"]) == [1, 2]
    assert result["visqol"]["used"] is False
    assert result["engines"]["candidate"]["stft"] == result["engines"]["shipped"]["stft"]

    rows = result["per_clip"]
    assert len(rows) == len(result["clips"]) * len(QUICK_CONDITIONS) * len(SYSTEMS)
    by_key = {(r["clip"], r["condition"], r["system"]): r for r in rows}
    for clip in result["clips"]:
        for name in QUICK_CONDITIONS:
            shipped, candidate = by_key[(clip["id"], name, "shipped")], by_key[(clip["id"], name, "candidate")]
            assert {k: v for k, v in shipped.items() if k != "system"} == \
                   {k: v for k, v in candidate.items() if k != "system"}  # the same model scores the same
            assert by_key[(clip["id"], name, "codec")]["channels"] == clip["channels"]  # mono coded mono
    for clip in result["clips"]:
        assert by_key[(clip["id"], "clean_s16", "codec")]["encoding"] is None

    for name, blocks in result["summary"].items():
        assert set(blocks) == set(result["groups"])
        for block in blocks.values():
            assert block["clips"] == 1
            assert set(block["systems"]) == set(SYSTEMS) and all(set(m) == set(METRICS)
                                                                 for m in block["systems"].values())
            assert block["systems"]["shipped"] == block["systems"]["candidate"]
            assert block["models"]["shipped"] == block["models"]["candidate"]
            versus = block["candidate_vs_shipped"]
            assert versus["clips_worse"] == versus["clips_better"] == 0 and versus["lsd_change_pct"] in (0.0, None)
    coded = result["summary"]["libmp3lame_32k"]["test_mix"]
    assert coded["systems"]["codec"]["lsd_full"] > 0 and coded["models"]["shipped"]["lsd_change_pct"] is not None
    assert set(result["readme_tables"]) == {"test_mix", "val_speech", "clean"}
    assert result["readme_tables"]["test_mix"] in done.stdout
    assert set(result["estimate_s"]) == {"decode", "models", "spectral", "visqol", "total"}
    assert result["estimate_s"]["visqol"] == 0


def test_conditions_follow_the_clip_channels():
    mono_32k, stereo_32k, joint = BY_NAME["lame_32k_mono"], BY_NAME["lame_32k_stereo"], BY_NAME["libmp3lame_32k"]
    assert encoding_for(mono_32k, 2).channels == 1          # a stereo clip's mid
    assert encoding_for(stereo_32k, 2).channels == 2
    assert not applies(stereo_32k, 1) and applies(mono_32k, 1)
    assert encoding_for(joint, 1).channels == 1 and encoding_for(joint, 2).channels == 2
    assert encoding_for(BY_NAME["clean_float"], 2) is None
    assert set(FIXED_CHANNELS) <= set(BY_NAME)


def test_candidate_framing_comes_from_the_model_or_the_yaml(tmp_path):
    shipped = str(shipped_model_path())
    trained = OnnxModel(shipped_model_path(), threads=1)
    config, settings = candidate_config(shipped, None)
    assert settings == "model metadata"
    assert (config.fft_size, config.hop, config.window) == (trained.fft_size, trained.hop, trained.window)
    defaults = load_config(None)               # a model trained at another framing than the defaults runs at its own
    other = {"gapfill.hop": str(defaults.hop // 2), "gapfill.window": next(w for w in WINDOWS if w != defaults.window)}
    config, _ = candidate_config(str(shipped_model_with_metadata(tmp_path / "other.onnx", **other)), None)
    assert (config.fft_size, str(config.hop), config.window) == (defaults.fft_size, *other.values())
    yaml = tmp_path / "engine.yaml"
    yaml.write_text("gate: {cliff_db: 30.0}\n", encoding="utf-8")
    config, settings = candidate_config(shipped, str(yaml))
    assert settings == str(yaml) and config.gate["cliff_db"] == 30.0
    assert config.model["path"] == str(shipped_model_path().resolve())


def test_active_part_skips_silence():
    rate = MODEL_RATE_HZ
    x = np.zeros((2, 10 * rate), np.float32)
    x[:, 5 * rate: 9 * rate] = np.random.default_rng(0).standard_normal((2, 4 * rate)) * 0.1
    part, start_s = active_part(x, 4.0)
    assert part.shape == (2, 4 * rate) and start_s == pytest.approx(5.0)
    whole, start_s = active_part(x[:, : 3 * rate], 4.0)
    assert whole.shape == (2, 3 * rate) and start_s == 0.0


def test_compare_counts_clips_worse_beyond_worse_db():
    def rows(values):
        return [{"clip": str(i), "lsd_full": v, "lsd_above": v, "holes": 0.1, "visqol": None}
                for i, v in enumerate(values)]

    codec = rows([10.0, 10.0, 10.0])
    model = rows([5.0, 10.0 + WORSE_DB / 2, 10.0 + 2 * WORSE_DB])
    result = compare(model, codec)
    assert result["clips_worse"] == 1 and result["visqol_delta"] is None
    assert result["lsd_change_pct"] == pytest.approx(-16.6, abs=0.1)


def test_estimate_counts_each_applying_condition():
    seconds = 20.0
    mono = Clip("m", "speech", "", np.zeros((1, int(seconds * MODEL_RATE_HZ)), np.float32))
    sets = [ClipSet("val", [mono], [0.0], [""])]
    one = estimate_s(sets, ("lame_32k_mono",), "none")
    assert estimate_s(sets, ("lame_32k_mono", "lame_32k_stereo"), "none") == one  # stereo coding: no mono clip
    assert one["visqol"] == 0 and estimate_s(sets, ("lame_32k_mono",), "key")["visqol"] > 0
    assert one["total"] == pytest.approx(sum(v for k, v in one.items() if k != "total"), abs=2)


def test_validation_kinds_can_be_chosen(monkeypatch, tmp_path):
    import benchmarks.models as models
    import training.data.audio as audio

    segments = [{"id": f"{src}/{kind}{i}#0000", "split": "val", "kind": kind, "source": src, "unit": f"{kind}{i}"}
                for src in ("a", "b") for kind in ("speech", "music", "mix") for i in range(3)]
    monkeypatch.setattr(models, "corpus_segments", lambda corpus: segments)
    monkeypatch.setattr(audio, "load_segment", lambda corpus, s: np.zeros((1, MODEL_RATE_HZ), np.float32))
    sets = models.corpus_clips(tmp_path, 0, 5, 1.0, ("music",))
    val = next(s for s in sets if s.name == "val")
    assert [c.kind for c in val.clips] == ["music"] * 5 and len({c.id for c in val.clips}) == 5
    every = next(s for s in models.corpus_clips(tmp_path, 0, 2, 1.0) if s.name == "val")
    assert sorted(c.kind for c in every.clips) == ["mix", "mix", "music", "music", "speech", "speech"]
    assert models.parse_args(["--val-kinds", "music", "speech"]).val_kinds == ["music", "speech"]
    with pytest.raises(SystemExit):
        models.parse_args(["--val-kinds", "noise"])
