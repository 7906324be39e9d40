"""Training pairs: clean 48 kHz reference vs the same audio encoded, decoded and aligned (evaluation/chains.py).

Two mixes of configurations, one pair of each per training segment (`Pairing`: an `Encoding` and a
`DecodeChain`, drawn from a generator seeded by the segment id, so a rebuild makes the same pairs):
- `lame` (the first model's data): LAME CBR through lameenc at 24-128 kbit/s, mono/stereo, 44.1/48 kHz
  input, decoded by the training chain (minimp3 at the MP3's rate, float, to 48 kHz). Names `mp3_<kbps>k_<mode>_<rate>k`.
- `chains`: every codec family (lameenc and ffmpeg's libmp3lame CBR/VBR, libshine, aac, libvorbis, libopus,
  libtwolame) over its low and middle settings, through a random decode chain (decoder, stored rate and
  resampler, sample format). Gain and noise floors are drawn per training crop (training/train.py).
The validation split gets, per segment: the reference case (LAME 32 kbit/s mono from 48 kHz, training chain),
LAME 128 kbit/s mono (no-harm check), and one `chains` pairing.

Output: data/pairs/<configuration>/<segment>.npy float32 (2, channels, samples): [0] clean reference,
[1] decoded; a .json beside each with its facts, and data/pairs/manifest.json with every row.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.chains import (
    TRAINING_RESAMPLERS, TRAINING_CHAIN, DecodeChain, Encoding, degrade,
)
from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ

MIXES = ("lame", "chains")


@dataclass(frozen=True)
class Pairing:
    """One way of degrading a segment: an encoding and the chain that decodes it."""

    encoding: Encoding
    chain: DecodeChain = TRAINING_CHAIN
    mix: str = "lame"

    @property
    def name(self) -> str:
        """The folder name: `mp3_32k_mono_48k` for the `lame` mix, `<encoding>__<chain>` otherwise."""
        e = self.encoding
        if self.mix == "lame":
            mode = "mono" if e.channels == 1 else "stereo"
            return f"mp3_{e.bitrate_kbps}k_{mode}_{e.input_rate / 1000:g}k"
        return f"{e.name}__{self.chain.name}"


def lame(bitrate_kbps: int, channels: int = 1, input_rate: int = MODEL_RATE_HZ) -> Pairing:
    """LAME CBR through lameenc, decoded by the training chain."""
    return Pairing(Encoding("lameenc", bitrate_kbps, channels=channels, input_rate=input_rate))


REFERENCE = lame(32)                      # mp3_32k_mono_48k
NO_HARM = lame(128)
VAL_LAME = (REFERENCE, NO_HARM)
# (weight, bitrate, stereo?) ; input rate 44.1 kHz with probability P_44K
LAME_MIX = ((0.36, 32, False), (0.12, 24, False), (0.12, 48, False), (0.10, 64, False),
            (0.10, 32, True), (0.06, 48, True), (0.06, 64, True), (0.08, 128, False))
P_44K = 0.3
# (weight, encoder, settings: ("k", kbit/s) for a bitrate, ("q", quality) for VBR)
CODEC_MIX = (
    (0.22, "lameenc", [("k", b) for b in (24, 32, 32, 40, 48, 56, 64, 96, 128)]),
    (0.14, "libmp3lame", [("k", b) for b in (24, 32, 48, 64, 96)] + [("q", q) for q in (9, 8, 7, 6)]),
    (0.08, "libshine", [("k", b) for b in (32, 48, 64, 96, 128)]),
    (0.18, "aac", [("k", b) for b in (24, 32, 48, 64, 96)]),
    (0.12, "libvorbis", [("q", q) for q in (-1, 0, 1, 2, 3)]),
    (0.14, "libopus", [("k", b) for b in (12, 16, 24, 32, 48)]),
    (0.12, "libtwolame", [("k", b) for b in (64, 96, 128, 160, 192)]),
)
P_STEREO = 0.35
FILE_RATES = (("codec", 0.4), (MODEL_RATE_HZ, 0.45), (44_100, 0.15))
SAMPLE_FORMATS = (("float", 0.35), ("s16", 0.25), ("s16_tpdf", 0.3), ("s24", 0.1))


def _weighted(rng: random.Random, options):
    """One option of [(option, weight)] drawn with one rng.random() (weights summing to 1)."""
    r, acc = rng.random(), 0.0
    for option, weight in options:
        acc += weight
        if r < acc:
            return option
    return options[-1][0]


def lame_pairing(seed: str) -> Pairing:
    """The `lame` mix's configuration for a segment id."""
    rng = random.Random(seed)
    br, stereo = _weighted(rng, [((br, stereo), w) for w, br, stereo in LAME_MIX])
    return lame(br, 2 if stereo else 1, 44_100 if rng.random() < P_44K else MODEL_RATE_HZ)


def chains_pairing(seed: str) -> Pairing:
    """The `chains` mix's configuration for a segment id: a random codec setting through a random decode chain."""
    rng = random.Random("chains:" + seed)
    encoder, settings = _weighted(rng, [((e, s), w) for w, e, s in CODEC_MIX])
    kind, value = rng.choice(settings)
    channels = 2 if rng.random() < P_STEREO else 1
    rate = 44_100 if rng.random() < P_44K else MODEL_RATE_HZ
    encoding = (Encoding(encoder, bitrate_kbps=value, channels=channels, input_rate=rate) if kind == "k"
                else Encoding(encoder, quality=value, channels=channels, input_rate=rate))
    decoders = [d for d in ("minimp3", "soundfile", "ffmpeg") if DecodeChain(d).decodes(encoding)]
    chain = DecodeChain(decoder=rng.choice(decoders), file_rate=_weighted(rng, FILE_RATES),
                        resampler=rng.choice(TRAINING_RESAMPLERS), sample_format=_weighted(rng, SAMPLE_FORMATS))
    return Pairing(encoding, chain, "chains")


def pairings(segment: dict) -> tuple[Pairing, ...]:
    """Every pairing made of a corpus segment (validation: the LAME reference, 128k, one `chains` pairing)."""
    if segment["split"] == "val":
        return VAL_LAME + (chains_pairing(segment["id"]),)
    return lame_pairing(segment["id"]), chains_pairing(segment["id"])


def make_pair(x: np.ndarray, pairing: Pairing, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(2, channels, samples) aligned float32 pair of clean x (C, n) at 48 kHz, and the chain's facts."""
    reference, decoded, facts = degrade(x, pairing.encoding, pairing.chain, seed)
    return np.stack([reference, decoded]).astype(np.float32), facts


def _work(args):
    idx, seg_path, pairing, out_path, seed = args
    out = Path(out_path)
    meta = out.with_suffix(".json")
    if meta.exists():
        return idx, json.loads(meta.read_text())
    x = np.load(seg_path)
    try:
        pair, facts = make_pair(x, pairing, seed)
    except (RuntimeError, ValueError) as exc:   # an encoder refusing a setting: recorded, not fatal
        return idx, {"error": str(exc)[:300]}
    with atomic_write(out) as temp:
        np.save(temp, pair)
    info = {"lag": facts["residual_lag_samples"], "lag_removed": facts["lag_samples"],
            "channels": int(pair.shape[1]), "samples": int(pair.shape[2])}
    meta.write_text(json.dumps(info))
    return idx, info


def build_pairs(clean_root: str | os.PathLike = "data/clean", out_root: str | os.PathLike = "data/pairs",
                workers: int = 2) -> dict:
    """Encode every clean segment (resumable: finished pairs are skipped). Writes out_root/manifest.json."""
    from multiprocessing import Pool

    from tqdm import tqdm

    clean_root, out_root = Path(clean_root), Path(out_root)
    segs = json.loads((clean_root / "manifest.json").read_text())["segments"]
    jobs, rows = [], []
    for i, s in enumerate(segs):
        for pairing in pairings(s):
            d = out_root / pairing.name
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{i:05d}.npy"
            jobs.append((len(rows), str(clean_root / s["file"]), pairing, str(p), i))
            e, c = pairing.encoding, pairing.chain
            rows.append({"segment": s["id"], "kind": s["kind"], "split": s["split"], "source": s["source"],
                         "mix": pairing.mix, "codec": pairing.name, "encoder": e.encoder,
                         "bitrate_kbps": e.bitrate_kbps, "quality": e.quality, "chain": c.name,
                         "file": str(p.relative_to(out_root))})
    with Pool(workers) as pool:
        for idx, info in tqdm(pool.imap_unordered(_work, jobs, chunksize=4), total=len(jobs), desc="pairs",
                              unit="pair"):
            rows[idx].update(info)
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    lags = np.array([r["lag"] for r in rows]) if rows else np.zeros(1)
    manifest = {"sample_rate": MODEL_RATE_HZ, "pairs": rows, "failed": failed,
                "max_abs_lag_samples": float(np.abs(lags).max())}
    (out_root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest

