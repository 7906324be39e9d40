"""Data v2 build on a tiny synthetic source: it writes segments and a manifest, a rerun skips finished jobs,
a job with a missing file is redone, and the output is the same every time (training/data/build.py); the
digests tell which jobs of a rebuild differ (training/data/digest.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from training.corpus import Unit
from training.data import build, digest

RATE = 44_100


def _source(path, seconds: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = rng.standard_normal((len(t), 2)) * 0.05 * (1.2 + np.sin(2 * np.pi * 0.7 * t))[:, None]
    sf.write(str(path), x.astype(np.float32), RATE, subtype="FLOAT")
    return str(path)


@pytest.fixture
def tiny(tmp_path):
    units = [Unit("tiny/a.wav", "music", "tiny-music", [_source(tmp_path / "a.wav", 14.0, 1)]),
             Unit("tiny/b.wav", "music", "tiny-music", [_source(tmp_path / "b.wav", 7.0, 2)]),
             Unit("tinyvoice/pack", "speech", "tiny-speech",
                  [_source(tmp_path / f"v{i}.wav", 2.5, 3 + i) for i in range(4)], concat=True)]
    side = {"tiny/a.wav": "train", "tiny/b.wav": "val", "tinyvoice/pack": "train"}
    return build.plan(units, side), tmp_path / "out"


def _counting(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = build.read_source_48k

    def counted(source):
        calls.append(source)
        return original(source)

    monkeypatch.setattr(build, "read_source_48k", counted)
    return calls


def test_build_writes_segments_and_a_manifest(tiny):
    jobs, root = tiny
    manifest = build.build(root, jobs=jobs)
    segments = manifest["segments"]
    assert {s["kind"] for s in segments} == {"music", "speech"}
    assert {s["split"] for s in segments} == {"train", "val"}
    for s in segments:
        assert (root / s["file"]).exists() and s["channels"] in (1, 2)
        assert s["seconds"] <= 10.0 and (s["kind"] == "speech" or s["seconds"] >= 5.0)
    augmented = [s for s in segments if s["augmentation"]]
    assert augmented and all(s["kind"] == "speech" and s["split"] == "train" for s in augmented)
    assert json.loads((root / "manifest.json").read_text())["segments"] == segments
    assert "units on both sides of the split: 0" in build.summary(root)


def test_a_rerun_skips_finished_jobs_and_redoes_a_broken_one(tiny, monkeypatch):
    jobs, root = tiny
    first = build.build(root, jobs=jobs)
    calls = _counting(monkeypatch)
    assert build.build(root, jobs=jobs) == first and calls == []
    broken = next(s for s in first["segments"] if s["unit"] == "tiny/a.wav")
    (root / broken["file"]).unlink()
    again = build.build(root, jobs=jobs)
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["a.wav"]
    assert again == first


def test_a_rebuild_from_scratch_is_identical(tiny, tmp_path):
    jobs, root = tiny
    first = build.build(root, jobs=jobs)
    second = build.build(tmp_path / "again", jobs=jobs)
    assert second == first
    for s in first["segments"]:
        a, _ = sf.read(str(root / s["file"]))
        b, _ = sf.read(str(tmp_path / "again" / s["file"]))
        assert np.array_equal(a, b)


def test_prune_removes_only_jobs_no_longer_planned(tiny):
    jobs, root = tiny
    build.build(root, jobs=jobs)
    kept = [j for j in jobs if j.name != "tiny/b.wav"]
    build.prune(root, kept)
    assert not (root / "jobs" / "tiny_b.wav.json").exists() and not (root / "seg" / "tiny_b.wav").exists()
    assert all(build.finished(root, j) for j in kept)


def test_digests_agree_for_a_rebuild_and_name_the_job_that_differs(tiny, tmp_path):
    jobs, root = tiny
    first = build.build(root, jobs=jobs)
    build.build(tmp_path / "again", jobs=jobs)
    ours, again = digest.build_digests(root), digest.build_digests(tmp_path / "again")
    assert ours == again and set(ours) == set(first["jobs"])
    table = digest.compare(again, ours)
    assert all(row["different"] == row["only here"] == row["only in reference"] == 0 for row in table.values())

    changed = next(s for s in first["segments"] if s["unit"] == "tiny/a.wav")
    x, rate = sf.read(str(tmp_path / "again" / changed["file"]), dtype="int32", always_2d=True)
    x[0, 0] += 256                                          # one 24-bit step in one sample
    sf.write(str(tmp_path / "again" / changed["file"]), x, rate, format="FLAC", subtype="PCM_24")
    again = digest.build_digests(tmp_path / "again")
    del again["tinyvoice/pack"]
    table = digest.compare(again, ours)
    assert table["track"]["different"] == 1 and table["track"]["same"] == 1
    assert table["speech"]["only in reference"] == 1
    assert "| track | 1 | 1 | 0 | 0 |" in digest.table_text(table)

    path = tmp_path / "digest.json"
    digest.write_digests(ours, path)
    assert digest.load_digests(path) == ours and digest.load_digests(tmp_path / "none.json") == {}


def _pair_cache(root, decoded_offset: float = 0.0):
    """A two-pair cache in paircache.py's layout: one validation pair, one training pair."""
    rng = np.random.default_rng(5)
    pairs = []
    for k, split in enumerate(("val", "train")):
        halves = rng.standard_normal((2, 1, 480)).astype(np.float32)
        halves[1] += decoded_offset
        file = f"lameenc_32k/{k:06d}.npy"
        (root / "lameenc_32k").mkdir(parents=True, exist_ok=True)
        np.save(root / file, halves)
        pairs.append({"segment": f"s#{k:04d}", "split": split, "encoder": "lameenc", "chain": "codec", "file": file})
    (root / "manifest.json").write_text(json.dumps({"pairs": pairs}))


def test_pair_digests_tell_a_decoded_half_that_differs_from_a_clean_one(tmp_path):
    _pair_cache(tmp_path / "a")
    _pair_cache(tmp_path / "b", decoded_offset=1e-3)
    reference = digest.pair_digests(tmp_path / "a")
    assert set(digest.pair_digests(tmp_path / "a", "val")) == {"lameenc_32k/000000.npy"}
    assert digest.compare_pairs(digest.pair_digests(tmp_path / "a"), reference)["lameenc"]["same"] == 2
    table = digest.compare_pairs(digest.pair_digests(tmp_path / "b", "val"), reference)
    assert table["lameenc"] == {"same": 0, "decoded differs": 1, "clean differs": 0, "only here": 0,
                                "only in reference": 1}
    assert "| lameenc | 0 | 1 | 0 | 0 | 1 |" in digest.table_text(table, "encoder")
