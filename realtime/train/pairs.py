"""Training pairs: clean 48 kHz reference vs LAME-encoded-then-decoded audio, aligned to the sample.

Encoder: LAME through `lameenc` (CBR, quality 2). Decoder: minimp3 through `miniaudio`, at the rate
the MP3 carries (LAME resamples: 32 kbit/s mono -> 22.05 kHz, stereo -> 16 kHz ...). Alignment:
LAME + minimp3 delay the signal by exactly ENCODER_DELAY = 1105 samples *at the MP3's sample rate*
(576 encoder + 529 decoder), so the delay is removed at that rate, before resampling back to
48 kHz (soxr, linear phase); removing it at 48 kHz would leave a fractional offset (2405.44 samples
at 22.05 kHz). Every pair is then checked by cross-correlation (`measure_lag`): a pair whose lag is
not within +-1 sample of zero is aligned by the measured lag and counted in the manifest.

Configurations (`Codec`): bitrate kbit/s, channels encoded, input rate. The validation split gets the
reference case (32 kbit/s mono from 48 kHz) and 128 kbit/s mono (no-harm check); the training split
gets one random configuration per segment from TRAIN_MIX (24-64 kbit/s, mono/stereo, 44.1/48 kHz
input, some 128 kbit/s).

Output: data/pairs/<codec>/<segment>.npy float32 (2, channels, samples): [0] clean reference,
[1] decoded. Mono encodes of stereo sources use the mid (L+R)/2 as reference.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 48_000
ENCODER_DELAY = 1105          # LAME (576) + minimp3 (529), samples at the MP3's own rate


@dataclass(frozen=True)
class Codec:
    bitrate_kbps: int
    channels: int             # channels given to the encoder
    input_rate: int           # rate of the PCM given to LAME

    @property
    def name(self) -> str:
        mode = "mono" if self.channels == 1 else "stereo"
        return f"mp3_{self.bitrate_kbps}k_{mode}_{self.input_rate // 100 / 10:g}k"


REFERENCE = Codec(32, 1, 48_000)          # mp3_32k_mono_48k
NO_HARM = Codec(128, 1, 48_000)
VAL_CODECS = (REFERENCE, NO_HARM)
# (weight, bitrate, stereo?) ; input rate 44.1 kHz with probability P_44K
TRAIN_MIX = ((0.36, 32, False), (0.12, 24, False), (0.12, 48, False), (0.10, 64, False),
             (0.10, 32, True), (0.06, 48, True), (0.06, 64, True), (0.08, 128, False))
P_44K = 0.3


def train_codec(seed: str) -> Codec:
    rng = random.Random(seed)
    r, acc = rng.random(), 0.0
    for w, br, stereo in TRAIN_MIX:
        acc += w
        if r < acc:
            break
    return Codec(br, 2 if stereo else 1, 44_100 if rng.random() < P_44K else 48_000)


def encode_decode(x: np.ndarray, codec: Codec) -> tuple[np.ndarray, np.ndarray]:
    """x: clean float32 (channels, samples) at 48 kHz -> (reference, decoded), both
    (codec.channels, samples) at 48 kHz, decoded aligned to reference (delay removed)."""
    import lameenc
    import miniaudio
    import soxr

    x = np.asarray(x, np.float32)
    if codec.channels == 1:
        ref = x.mean(0, keepdims=True)
    else:
        ref = x[:2] if x.shape[0] >= 2 else np.repeat(x, 2, 0)
    n = ref.shape[1]
    src = ref.T
    if codec.input_rate != SAMPLE_RATE:
        src = soxr.resample(src, SAMPLE_RATE, codec.input_rate, quality="VHQ")
    pcm = np.round(np.clip(src, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    enc = lameenc.Encoder()
    enc.set_bit_rate(codec.bitrate_kbps)
    enc.set_in_sample_rate(codec.input_rate)
    enc.set_channels(codec.channels)
    enc.set_quality(2)
    mp3 = bytes(enc.encode(np.ascontiguousarray(pcm).tobytes()) + enc.flush())
    dec = miniaudio.mp3_read_f32(mp3)
    y = np.frombuffer(dec.samples, dtype=np.float32).reshape(-1, dec.nchannels)
    if y.shape[1] != codec.channels:
        y = y.mean(1, keepdims=True) if codec.channels == 1 else np.repeat(y[:, :1], 2, 1)
    y = y[ENCODER_DELAY:]
    if dec.sample_rate != SAMPLE_RATE:
        y = soxr.resample(y, dec.sample_rate, SAMPLE_RATE, quality="VHQ")
    y = np.ascontiguousarray(y.T, dtype=np.float32)
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(ref), y[:, :n]


def measure_lag(ref: np.ndarray, deg: np.ndarray, max_lag: int = 8192) -> float:
    """Lag of deg behind ref in samples (positive = deg late), sub-sample by parabolic interpolation.
    Both 1-D; only content below 5 kHz is compared (every codec keeps it)."""
    n = len(ref) + len(deg)
    nfft = 1 << (n - 1).bit_length()
    R, D = np.fft.rfft(ref, nfft), np.fft.rfft(deg, nfft)
    f = np.fft.rfftfreq(nfft, 1 / SAMPLE_RATE)
    c = np.fft.irfft(D * np.conj(R) * (f < 5000), nfft)
    c = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    k = int(np.argmax(c))
    frac = 0.0
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1], c[k], c[k + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    return k - max_lag + frac


def shift(y: np.ndarray, lag: int) -> np.ndarray:
    """Advance y (channels, n) by lag samples (zero fill)."""
    out = np.zeros_like(y)
    if lag >= 0:
        out[:, : y.shape[1] - lag] = y[:, lag:]
    else:
        out[:, -lag:] = y[:, : y.shape[1] + lag]
    return out


def make_pair(x: np.ndarray, codec: Codec) -> tuple[np.ndarray, float]:
    """(2, channels, samples) aligned pair and the residual lag measured after alignment."""
    ref, deg = encode_decode(x, codec)
    lag = measure_lag(ref.mean(0), deg.mean(0))
    if abs(lag) > 1.0:  # never seen with lameenc+minimp3; keep the pair usable anyway
        deg = shift(deg, int(round(lag)))
        lag = measure_lag(ref.mean(0), deg.mean(0))
    return np.stack([ref, deg]).astype(np.float32), float(lag)


def _work(args):
    idx, seg_path, codec, out_path = args
    out = Path(out_path)
    meta = out.with_suffix(".json")
    if meta.exists():
        return idx, json.loads(meta.read_text())
    x = np.load(seg_path)
    pair, lag = make_pair(x, codec)
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, pair)
    tmp.replace(out)
    info = {"codec": codec.name, "lag": round(lag, 3), "channels": int(pair.shape[1]), "samples": int(pair.shape[2])}
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
        codecs = VAL_CODECS if s["split"] == "val" else (train_codec(s["id"]),)
        for c in codecs:
            d = out_root / c.name
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{i:05d}.npy"
            jobs.append((len(rows), str(clean_root / s["file"]), c, str(p)))
            rows.append({"segment": s["id"], "kind": s["kind"], "split": s["split"], "source": s["source"],
                         "codec": c.name, "bitrate_kbps": c.bitrate_kbps, "file": str(p.relative_to(out_root))})
    with Pool(workers) as pool:
        for idx, info in tqdm(pool.imap_unordered(_work, jobs, chunksize=4), total=len(jobs), desc="mp3 pairs", unit="pair"):
            rows[idx].update(info)
    lags = np.array([r["lag"] for r in rows]) if rows else np.zeros(1)
    manifest = {"sample_rate": SAMPLE_RATE, "encoder_delay": ENCODER_DELAY, "pairs": rows,
                "max_abs_lag_samples": float(np.abs(lags).max())}
    (out_root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
