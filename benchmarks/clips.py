"""Clips for the quality benchmarks: validation segments of data v2, or synthetic stand-ins.

Validation clips come from data v2 (`python -m training.data build`: data/v2/manifest.json, the corpus the
shipped model trained on), split "val" (whole source units the training never saw; the split is the
manifest's, `training/data/split_v2.json`), augmented copies left out. Each clip is cut to at most
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

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO / "data" / "v2"
KINDS = ("speech", "music")


@dataclass
class Clip:
    """A clean reference at 48 kHz: id, 'speech' or 'music', source, samples (n,) float32 ((2, n) for
    `stereo_clips`)."""

    id: str
    kind: str
    source: str
    samples: np.ndarray


def corpus_segments(corpus: Path = DEFAULT_CORPUS) -> list[dict]:
    """Every unaugmented segment (manifest entry) of data v2 at `corpus`, by id."""
    manifest_path = corpus / "manifest.json"
    if not manifest_path.is_file():
        raise GapfillError(f"no data v2 at '{corpus}' (build it with 'python -m training.data build', or "
                           "run with --quick for synthetic clips)")
    segments = json.loads(manifest_path.read_text(encoding="utf-8"))["segments"]
    return sorted((s for s in segments if s.get("augmentation") is None), key=lambda s: s["id"])


def validation_segments(corpus: Path = DEFAULT_CORPUS) -> list[dict]:
    """The unaugmented segments of split "val", by id."""
    return [s for s in corpus_segments(corpus) if s["split"] == "val"]


def validation_clips(per_kind: int, seconds: float, corpus: Path = DEFAULT_CORPUS) -> list[Clip]:
    """`per_kind` speech and `per_kind` music clips (mixed to mono) of the validation split, spread over the
    sources."""
    segments = validation_segments(corpus)
    clips = []
    for kind in KINDS:
        for s in spread([s for s in segments if s["kind"] == kind], per_kind, f"validation {kind}"):
            audio = _load(corpus, s, seconds)
            clips.append(Clip(s["id"], kind, s.get("source", ""), audio.mean(axis=0)))
    return clips


def stereo_clips(count: int, seconds: float, corpus: Path = DEFAULT_CORPUS) -> list[Clip]:
    """`count` stereo music clips of the validation split (samples (2, n) float32, at most `seconds`), spread
    over the sources like `validation_clips`."""
    candidates = [s for s in validation_segments(corpus) if s["kind"] == "music" and s.get("channels") == 2]
    return [Clip(s["id"], "music", s.get("source", ""), _load(corpus, s, seconds))
            for s in spread(candidates, count, "stereo validation music")]


def _load(corpus: Path, segment: dict, seconds: float) -> np.ndarray:
    """A segment's samples, float32 (channels, samples), at most `seconds` from its start."""
    from training.data.audio import load_segment

    return np.ascontiguousarray(load_segment(corpus, segment)[:, : int(seconds * MODEL_RATE_HZ)])


def spread(candidates: list[dict], count: int, what: str) -> list[dict]:
    """`count` segments from as many recordings as possible: recordings (a music file, a speech language or
    voice pack) taken round-robin over the sources, one segment each per round; hashed, fixed orders.
    GapfillError where there are fewer than `count` candidates (`what` they are, for the message)."""
    if len(candidates) < count:
        raise GapfillError(f"the corpus has {len(candidates)} {what} segments, {count} wanted")
    if not count:
        return []
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
