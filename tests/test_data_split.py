"""Data v2 split: by source unit, split.json's sides kept, no unit on both sides of the split, mixes drawing
stems from their own side only (training/data/split.py, build.py)."""

from __future__ import annotations

import json

from training import corpus
from training.corpus import Unit
from training.data import build, split


def _units() -> list[Unit]:
    named = sorted(corpus.load_split().items())
    old = [next(u for u, s in named if s == side) for side in ("train", "val")]
    return ([Unit(uid, "music", "wesnoth", [f"/x/{uid}"]) for uid in old]
            + [Unit(f"stk/track{i}.ogg", "music", "supertuxkart-data", [f"/x/t{i}.ogg"]) for i in range(40)]
            + [Unit(f"0ad-voice/civ{i}", "speech", "0ad-data", [f"/x/v{i}a.ogg", f"/x/v{i}b.ogg"], concat=True)
               for i in range(30)]
            + [Unit(f"tuxpaint/animals/cat{i}_desc_fr.ogg", "speech", "tuxpaint", [f"/x/c{i}.ogg"], concat=True)
               for i in range(30)]
            + [Unit(f"synthkit/{i:02d}", "drums", "synthetic-drums", []) for i in range(24)]
            + [Unit(f"mixscore/bach/bwv{i}", "mix", "music21+fluidsynth", [f"/x/w{i}.mxl"]) for i in range(60)])


def test_units_named_by_split_json_keep_their_side():
    units = _units()
    side = split.assign(units)
    for uid, s in corpus.load_split().items():
        if uid in side:
            assert side[uid] == s
    assert side == split.assign(list(reversed(units)))          # by name only: order does not matter
    assert {"train", "val"} <= set(side.values())
    assert any(s == "val" for u, s in side.items() if u.startswith("synthkit/"))


def test_committed_split_v2_keeps_every_split_json_assignment():
    v2 = json.loads(split.SPLIT_V2_FILE.read_text())["units"]
    for uid, side in corpus.load_split().items():
        assert v2[uid] == side, uid
    assert set(v2.values()) == {"train", "val"}


def test_every_job_holds_units_of_its_own_side_only():
    units = _units()
    side = split.assign(units)
    jobs = build.plan(units, side)
    assert {j.split for j in jobs} == {"train", "val", "test"}
    for job in jobs:
        expected = "train" if job.split == "train" else "val"
        assert {side[u.uid] for u in job.units} == {expected}, job.name
    assert [j.name for j in jobs if j.phase == 0] == list(dict.fromkeys(j.name for j in jobs if j.phase == 0))


def test_mixes_draw_stems_from_their_own_side():
    units = _units()
    side = split.assign(units)
    for which in ("train", "val"):
        pools = build.pools_for(units, side, which)
        drawn = pools.kits + pools.beds + [u for voice in pools.voices for u in voice]
        assert drawn and {side[u.uid] for u in drawn} == {which}


def test_a_unit_on_both_sides_is_found():
    segments = [{"split": "train", "units": ["a", "b"]}, {"split": "test", "units": ["c"]},
                {"split": "val", "units": ["d"]}]
    assert build.units_on_both_sides(segments) == set()
    assert build.units_on_both_sides(segments + [{"split": "test", "units": ["b", "e"]}]) == {"b"}
