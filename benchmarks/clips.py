"""Clips for the quality benchmark: validation segments of the training corpus, or synthetic stand-ins.

Validation clips come from the corpus that `python -m training corpus` builds (data/clean/
manifest.json, one .npy per segment) and are checked against the committed split
(training/split.json): a segment is used only when every source unit it was cut from is in the
validation split, so no clip was ever trained on. Each clip is mixed to mono and cut to at most
`seconds` from its start. `synthetic_clips` makes one speech-like and one music-like clip from a seed for
runs without the corpus (CI).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.signals import program_material, speech_like
from realtime.engine.config import MODEL_RATE_HZ
from realtime.errors import GapfillError
from training.corpus import SPLIT_FILE

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO / "data" / "clean"
KINDS = ("speech", "music")


@dataclass
class Clip:
    """A clean reference at 48 kHz: id, 'speech' or 'music', source, samples (n,) float32 ((2, n) for
    `stereo_clips`)."""

    id: str
    kind: str
    source: str
    samples: np.ndarray


def validation_units(split_file: Path = SPLIT_FILE) -> set[str]:
    """Source units in the validation split of split.json."""
    if not split_file.is_file():
        raise GapfillError(f"no train/validation split at '{split_file}' (it comes with the trained model)")
    units = json.loads(split_file.read_text(encoding="utf-8"))["units"]
    return {unit for unit, split in units.items() if split == "val"}


def validation_segments(corpus: Path = DEFAULT_CORPUS, split_file: Path = SPLIT_FILE) -> list[dict]:
    """The corpus's segments (manifest entries) cut only from source units of the validation split, by id."""
    manifest_path = corpus / "manifest.json"
    if not manifest_path.is_file():
        raise GapfillError(f"no corpus at '{corpus}' (build it with 'python -m training corpus', or "
                           "run with --quick for synthetic clips)")
    segments = json.loads(manifest_path.read_text(encoding="utf-8"))["segments"]
    validation = validation_units(split_file)
    return sorted((s for s in segments if s["units"] and all(u in validation for u in s["units"])),
                  key=lambda s: s["id"])


def validation_clips(per_kind: int, seconds: float, corpus: Path = DEFAULT_CORPUS,
                     split_file: Path = SPLIT_FILE) -> list[Clip]:
    """`per_kind` speech and `per_kind` music clips from the validation split, spread over the sources."""
    segments = validation_segments(corpus, split_file)
    clips = []
    for kind in KINDS:
        candidates = [s for s in segments if s["kind"] == kind]
        if len(candidates) < per_kind:
            raise GapfillError(f"the corpus has {len(candidates)} validation {kind} segments, {per_kind} wanted")
        for s in spread(candidates, per_kind):
            audio = _load(corpus, s, seconds)
            mono = audio.mean(axis=0) if audio.ndim == 2 else audio
            clips.append(Clip(s["id"], kind, s.get("source", ""), np.ascontiguousarray(mono)))
    return clips


def stereo_clips(count: int, seconds: float, corpus: Path = DEFAULT_CORPUS,
                 split_file: Path = SPLIT_FILE) -> list[Clip]:
    """`count` stereo music clips of the validation split (samples (2, n) float32, at most `seconds`), spread
    over the sources like `validation_clips`."""
    candidates = [s for s in validation_segments(corpus, split_file) if s["kind"] == "music" and s.get("channels") == 2]
    if len(candidates) < count:
        raise GapfillError(f"the corpus has {len(candidates)} stereo validation music segments, {count} wanted")
    return [Clip(s["id"], "music", s.get("source", ""), np.ascontiguousarray(_load(corpus, s, seconds)))
            for s in spread(candidates, count)]


def _load(corpus: Path, segment: dict, seconds: float) -> np.ndarray:
    """A corpus segment's samples, float32 (channels, samples) (or (samples,)), at most `seconds` from its start."""
    return np.load(corpus / segment["file"]).astype(np.float32)[..., : int(seconds * MODEL_RATE_HZ)]


def spread(candidates: list[dict], count: int) -> list[dict]:
    """`count` segments from as many recordings as possible: recordings (a music file, a speech language or
    voice pack) taken round-robin over the sources, one segment each per round; hashed, fixed orders."""
    def hashed(name: str) -> str:
        return hashlib.sha1(name.encode()).hexdigest()

    tree: dict[str, dict[str, list[dict]]] = {}
    for s in candidates:
        recording = re.sub(r"(/val/\d+|#\d+)$", "", s["id"])
        tree.setdefault(s.get("source", ""), {}).setdefault(recording, []).append(s)
    by_source = [sorted(groups.items(), key=lambda item: hashed(item[0])) for _, groups in sorted(tree.items())]
    recordings = [by_source[i][turn][1] for turn in range(max(map(len, by_source)))
                  for i in range(len(by_source)) if turn < len(by_source[i])]
    recordings = [sorted(group, key=lambda s: hashed(s["id"])) for group in recordings]
    chosen: list[dict] = []
    for turn in range(max(map(len, recordings))):
        chosen += [group[turn] for group in recordings if turn < len(group)]
    return chosen[:count]


def synthetic_clips(seconds: float) -> list[Clip]:
    """One speech-like and one music-like clip (mono, 48 kHz) from fixed seeds."""
    return [Clip("synthetic/speech", "speech", "benchmarks.signals", speech_like(seconds, MODEL_RATE_HZ, seed=5)[0]),
            Clip("synthetic/music", "music", "benchmarks.signals",
                 program_material(seconds, MODEL_RATE_HZ, 1, seed=6)[0])]
