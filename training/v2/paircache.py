"""A pair cache from a manifest of clean segments, in training/pairs.py's layout, built once and refreshed.

Encoding and decoding cost far more CPU than training on the result (measured here: about 6.5 audio seconds
of pairs per CPU second, against about 45 audio seconds per CPU second that v2 trains on, data preparation
included), so pairs are made once and each is cropped and augmented many times over.

Input: a clean manifest (`segments` with id, file, split, kind, source; training/corpus.py's .npy or data
v2's FLAC with `scale`, read by `training.data.audio.load_segment`). Test-split segments are never read.
Every `stride`-th training segment (rotated by `round`, so a later round encodes other segments) gets one
pairing of `training.pairs.pairings` (the `lame` and `chains` mixes in turn); every `stride`-th validation
segment (the same ones in every round, so validation stays comparable) gets all of its pairings (the LAME
32k reference, 128k no-harm, one `chains` pairing). Output:
<out>/<pairing>/<segment index>.npy float32 (2, channels, samples) [clean, decoded] and <out>/manifest.json
with every row (`training.v2.train.PairCache` reads it). Finished pairs are skipped, so a stopped build
resumes. `validation_from`: an earlier round's folder whose validation pairs (the same in every round, made
with the same seeds) are hard-linked instead of made again (3.6 GB and a quarter of the work per round).
"""

from __future__ import annotations

import json
import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ
from training.data.audio import load_segment
from training.pairs import make_pair, pairings

PROGRESS_EVERY = 50


def plan(clean_root: Path, out_root: Path, stride: int, round_: int,
         validation_from: Path | None = None) -> list[tuple]:
    """(clean root, segment, pairing, manifest row, output path, seed, the same pair made already or None)
    of every pair the cache holds."""
    segments = json.loads((clean_root / "manifest.json").read_text())["segments"]
    jobs = []
    seen = {"train": 0, "val": 0}
    for i, s in enumerate(segments):
        if s["split"] not in seen:
            continue
        seen[s["split"]] += 1
        if s["split"] == "train":
            if (seen["train"] + round_) % stride:
                continue
            chosen = (pairings(s)[(seen["train"] // stride) % 2],)
        else:
            if seen["val"] % stride:
                continue
            chosen = pairings(s)
        for pairing in chosen:
            path = out_root / pairing.name / f"{i:06d}.npy"
            e = pairing.encoding
            row = {"segment": s["id"], "kind": s["kind"], "split": s["split"], "source": s["source"],
                   "mix": pairing.mix, "codec": pairing.name, "encoder": e.encoder, "bitrate_kbps": e.bitrate_kbps,
                   "quality": e.quality, "chain": pairing.chain.name, "file": str(path.relative_to(out_root))}
            made = None if validation_from is None or s["split"] != "val" else str(validation_from / row["file"])
            jobs.append((str(clean_root), s, pairing, row, str(path), i, made))
    return jobs


def _make(job: tuple) -> dict:
    clean_root, segment, pairing, row, path, seed, made = job
    path = Path(path)
    facts_path = path.with_suffix(".json")
    if not facts_path.exists() and made is not None and Path(made).with_suffix(".json").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".npy", ".json"):
            Path(path.with_suffix(suffix)).unlink(missing_ok=True)
            os.link(Path(made).with_suffix(suffix), path.with_suffix(suffix))
    if not facts_path.exists():
        try:   # an encoder refusing a setting, a segment being rewritten: recorded, retried by the next build
            x = load_segment(clean_root, segment) if segment["file"].endswith(".flac") else np.load(
                Path(clean_root) / segment["file"])
            pair, facts = make_pair(x, pairing, seed)
        except (OSError, RuntimeError, ValueError) as exc:
            return {**row, "error": str(exc)[:300]}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as temp:
            np.save(temp, pair)
        with atomic_write(facts_path) as temp:
            temp.write_text(json.dumps({"lag": facts["residual_lag_samples"], "channels": int(pair.shape[1]),
                                        "samples": int(pair.shape[2])}))
    return {**row, **json.loads(facts_path.read_text())}


def build_pair_cache(clean_root: str | os.PathLike, out_root: str | os.PathLike, stride: int = 1,
                     round_: int = 0, workers: int = 1, validation_from: str | os.PathLike | None = None) -> dict:
    """Build (or resume) the cache (module doc); writes and returns out_root/manifest.json."""
    clean_root, out_root = Path(clean_root), Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    jobs = plan(clean_root, out_root, stride, round_, None if validation_from is None else Path(validation_from))
    rows = []
    with Pool(workers) as pool:
        for row in pool.imap(_make, jobs, chunksize=2):
            rows.append(row)
            if len(rows) % PROGRESS_EVERY == 0 or len(rows) == len(jobs):
                print(f"pairs: {len(rows)}/{len(jobs)}", flush=True)
    manifest = {"sample_rate": MODEL_RATE_HZ, "clean": str(clean_root), "stride": stride, "round": round_,
                "pairs": [r for r in rows if "error" not in r], "failed": [r for r in rows if "error" in r]}
    with atomic_write(out_root / "manifest.json") as temp:
        temp.write_text(json.dumps(manifest, indent=1))
    return manifest
