"""A small clean corpus for developing and comparing models until the full v2 corpus exists.

A deterministic subset of the sources of training/corpus.py (DATA.md's packages only), split by source unit
exactly as the committed training/split.json says (`training.corpus.assign_split`), so its validation clips
are never trained on by either model:
    speech  every SPEECH_STRIDE-th tuxpaint file of each split, concatenated per language (0.2 s gaps)
            into SEGMENT_S segments; VOICE_PACKS hedgewars voice packs per split, VOICE_FILES files each
    music   up to MUSIC_FILES wesnoth and hedgewars tracks per split, MUSIC_S_PER_FILE seconds of each
            (5-10 s segments spread over the track); DRUM_KITS hydrogen kits (train only)

Output: <root>/seg/<index>.npy float32 (channels, samples) at 48 kHz and <root>/manifest.json in
training/corpus.py's format (`segments`: id, kind, source, split, file, channels, samples), which
`training.pairs.build_pairs` turns into pairs. Rebuilding writes the same files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ as SAMPLE_RATE
from training.corpus import (
    assign_split, cut_segments, drum_patterns, list_units, read_48k, trim_silence,
)

SPEECH_STRIDE = {"train": 12, "val": 12}
VOICE_PACKS = {"train": 4, "val": 1}
VOICE_FILES = 40
MUSIC_FILES = {"train": 18, "val": 6}
MUSIC_S_PER_FILE = 60.0
DRUM_KITS = 3
DRUM_PATTERNS_PER_KIT = 4
SEGMENT_S = 7.0
GAP_S = 0.2


def _concatenate(pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Mono pieces (1, n) -> segments of about SEGMENT_S seconds, GAP_S of silence between pieces."""
    gap = np.zeros((1, int(GAP_S * SAMPLE_RATE)), np.float32)
    out, current, length = [], [], 0
    for piece in pieces:
        current += [gap, piece] if current else [piece]
        length += piece.shape[1]
        if length >= SEGMENT_S * SAMPLE_RATE:
            out.append(np.concatenate(current, axis=1))
            current, length = [], 0
    if length >= 2 * SAMPLE_RATE:
        out.append(np.concatenate(current, axis=1))
    return out


def _speech_pieces(files: list[str]) -> list[np.ndarray]:
    pieces = []
    for path in files:
        x = read_48k(path)
        if x is not None:
            x = trim_silence(x.mean(0, keepdims=True))
            if x.shape[1] > 0.2 * SAMPLE_RATE:
                pieces.append(x)
    return pieces


def bootstrap_segments() -> list[tuple[dict, np.ndarray]]:
    """(facts, samples (channels, n) float32) of every segment, in a fixed order."""
    units = list_units()
    split = assign_split(units)
    out: list[tuple[dict, np.ndarray]] = []

    def add(unit_ids: list[str], kind: str, source: str, sp: str, segments: list[np.ndarray]) -> None:
        for s in segments:
            out.append(({"id": f"{source}/{sp}/{len(out):05d}", "kind": kind, "source": source,
                         "units": unit_ids, "split": sp}, np.ascontiguousarray(s, np.float32)))

    for sp in ("train", "val"):
        by_lang: dict[str, list] = {}
        for u in units:
            if u.source == "tuxpaint" and split[u.uid] == sp:
                by_lang.setdefault(u.uid.rsplit("_desc_", 1)[-1][:2], []).append(u)
        for lang, lang_units in sorted(by_lang.items()):
            chosen = lang_units[:: SPEECH_STRIDE[sp]]
            add([u.uid for u in chosen], "speech", "tuxpaint", sp,
                _concatenate(_speech_pieces([u.files[0] for u in chosen])))
        packs = [u for u in units if u.source == "hedgewars-voices" and split[u.uid] == sp][: VOICE_PACKS[sp]]
        for u in packs:
            add([u.uid], "speech", u.source, sp, _concatenate(_speech_pieces(u.files[:VOICE_FILES])))
        music = [u for u in units if u.source in ("wesnoth", "hedgewars-music") and split[u.uid] == sp]
        music = music[:: max(1, len(music) // MUSIC_FILES[sp])][: MUSIC_FILES[sp]]
        for u in music:
            x = read_48k(u.files[0])
            if x is not None:
                add([u.uid], "music", u.source, sp, cut_segments(trim_silence(x), random.Random(u.uid),
                                                                 MUSIC_S_PER_FILE))
    kits = [u for u in units if u.source == "hydrogen-drumkits" and split[u.uid] == "train"][:DRUM_KITS]
    for u in kits:
        add([u.uid], "music", u.source, "train", drum_patterns(u.files[0], DRUM_PATTERNS_PER_KIT, u.uid))
    return out


def build_bootstrap(root: str | Path) -> dict:
    """Write the segments and manifest under root (skipped when the manifest exists); the manifest."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        return json.loads(manifest_path.read_text())
    (root / "seg").mkdir(parents=True, exist_ok=True)
    segments = []
    for i, (facts, x) in enumerate(bootstrap_segments()):
        facts.update(file=f"seg/{i:05d}.npy", channels=int(x.shape[0]), samples=int(x.shape[1]))
        np.save(root / facts["file"], x)
        segments.append(facts)
    hours: dict[str, float] = {}
    for s in segments:
        key = f"{s['kind']}/{s['split']}"
        hours[key] = hours.get(key, 0.0) + s["samples"] / SAMPLE_RATE / 3600
    manifest = {"sample_rate": SAMPLE_RATE, "segments": segments,
                "summary": {k: round(v, 3) for k, v in sorted(hours.items())}}
    with atomic_write(manifest_path) as temp:
        temp.write_text(json.dumps(manifest, indent=1))
    return manifest
