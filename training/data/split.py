"""The v2 train/validation split, by source unit (a track, a voice pack, a work, a drum kit).

Units that training/split.json names keep its assignment (corpus.assign_split). A new unit goes to
validation when a stable hash of its name falls under its family's fraction: 12 % (corpus.VAL_FRACTION), or
25 % for synthetic drum kits, the only drums the validation side has. The result is written to
training/data/split_v2.json, which the repository keeps.
"""

from __future__ import annotations

import json
from pathlib import Path

from realtime.atomic import atomic_write
from training import corpus
from training.corpus import Unit

SPLIT_V2_FILE = Path(__file__).with_name("split_v2.json")
VAL_FRACTION_BY_FAMILY = {"synthkit": 0.25}


def assign(units: list[Unit]) -> dict[str, str]:
    """uid -> 'train' | 'val' for every unit."""
    out = corpus.assign_split(units)           # split.json's side, else the hash rule at VAL_FRACTION
    named = corpus.load_split()
    for u in units:
        fraction = VAL_FRACTION_BY_FAMILY.get(u.uid.split("/", 1)[0])
        if fraction is not None and u.uid not in named:
            out[u.uid] = "val" if corpus._hash01(u.uid) < fraction else "train"
    return out


def write(split: dict[str, str], path: Path = SPLIT_V2_FILE) -> None:
    """Write split (uid -> side) as split_v2.json, sorted, atomically."""
    with atomic_write(path) as temp:
        temp.write_text(json.dumps({
            "note": "data v2 train/validation split by source unit (track, voice pack, work, drum kit); units of "
                    "training/split.json keep their side. Written by `python -m training.data build`.",
            "units": dict(sorted(split.items()))}, indent=0) + "\n")


def load(path: Path = SPLIT_V2_FILE) -> dict[str, str]:
    """uid -> side from split_v2.json (empty if it is not written yet)."""
    return json.loads(path.read_text())["units"] if path.exists() else {}
