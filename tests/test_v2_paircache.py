"""Model v2's pair cache: which segments are encoded, and how a refresh round picks others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("soxr")     # training.pairs needs the `train` extra

from training.v2.paircache import plan  # noqa: E402


def _manifest(root: Path) -> Path:
    segments = [{"id": f"s{i}", "file": f"seg/{i}.npy", "split": split, "kind": "music", "source": "x"}
                for i, split in enumerate(["train"] * 8 + ["val"] * 4 + ["test"])]
    (root / "manifest.json").write_text(json.dumps({"segments": segments}))
    return root


def test_stride_rounds_cover_the_training_segments_once_and_never_the_test_split(tmp_path: Path) -> None:
    root = _manifest(tmp_path)
    rounds = [plan(root, tmp_path / "pairs", 4, r) for r in range(4)]
    train = [[job[1]["id"] for job in jobs if job[1]["split"] == "train"] for jobs in rounds]
    assert all(len(ids) == 2 for ids in train)                          # one pairing per chosen segment
    assert sorted(sum(train, [])) == [f"s{i}" for i in range(8)]        # four rounds: every segment once
    for jobs in rounds:
        assert [job[1]["id"] for job in jobs if job[1]["split"] == "val"] == ["s11"] * 3   # every round the same
        assert [job[3]["codec"] for job in jobs if job[1]["split"] == "val"] == [
            "mp3_32k_mono_48k", "mp3_128k_mono_48k", jobs[-1][3]["codec"]]
        assert all(job[1]["split"] != "test" for job in jobs)
        assert len({job[4] for job in jobs}) == len(jobs)                # one file per pair


def test_a_later_round_links_the_validation_pairs_of_an_earlier_one(tmp_path: Path) -> None:
    import numpy as np

    from training.v2.paircache import build_pair_cache

    root = _manifest(tmp_path)
    first = tmp_path / "r0"
    for job in plan(root, first, 4, 0):
        if job[1]["split"] == "val":                          # round 0's validation pairs, as if made
            path = Path(job[4])
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.zeros((2, 1, 10), np.float32))
            path.with_suffix(".json").write_text(json.dumps({"lag": 0, "channels": 1, "samples": 10}))
    manifest = build_pair_cache(root, tmp_path / "r1", 4, 1, validation_from=first)
    val = [r for r in manifest["pairs"] if r["split"] == "val"]
    assert len(val) == 3
    for row in val:
        assert (tmp_path / "r1" / row["file"]).samefile(first / row["file"])   # a link, not a copy
    assert all(r["split"] == "train" for r in manifest["failed"])       # (the training segments have no audio)
