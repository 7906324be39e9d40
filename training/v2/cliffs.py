"""Whether a checkpoint's confidence tells codec damage under a cliff from the cliff itself: the evidence the
engine's gate needs before it fills above a cliff from `damage_from_hz` up (realtime/engine/gate.py).

Validation crops (`CROPS`, fixed seed, not augmented) of the pair caches whose codec left a cliff
(bandlimit.py's `codec_cliff_hz`), each scored twice: the decoded crop, and its clean source low-passed at
the same cliff (a zero-phase Butterworth of order ORDER, dithered to 16 bits like the decoded one when its
decode chain stores 16 bits): the same audio, coded and not. Per crop, over its active frames (loss.py's
`active_frames`) and the bins from 0 Hz to the gate's `damage_margin_hz` under the cliff: the mean
confidence (the network's expected share of codec-made bins) and the share of bins at or above the gate's
`confidence_from` (the statistic the gate counts). Per statistic and cliff range: the medians over coded
and over clean crops and the AUC (the probability that a coded crop scores above a clean one; 0.5 = no
evidence, 1 = always apart).

    python -m training.v2 cliffs --checkpoint runs/v2/last.pt [--data data/v2pairs/r0] [--crops 200]
"""

from __future__ import annotations

import numpy as np
import torch

from evaluation.chains import quantize
from realtime.engine.config import MODEL_RATE_HZ, load_config
from training.v2 import features
from training.v2.bandlimit import codec_cliff_hz, low_passed
from training.v2.loss import active_frames
from training.v2.model import BandNet
from training.v2.train import CROP_FRAMES, DataRoots, PairCache, data_roots, stores_float

CROPS = 200
ATTEMPTS_PER_CROP = 20          # crops drawn per crop kept, at most (a cache may hold few cliffs or none)
ORDER = 16
SEED = 11
RANGES_HZ = ((0.0, 7000.0), (7000.0, 10000.0), (10000.0, 24000.0))
STATISTICS = ("mean", "share")


def auc(coded: np.ndarray, clean: np.ndarray) -> float:
    """P(a coded score > a clean score), ties counted half."""
    c, k = np.asarray(coded)[:, None], np.asarray(clean)[None, :]
    return float((c > k).mean() + 0.5 * (c == k).mean())


def cliff_crops(data: DataRoots, crops: int = CROPS) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(coded, clean low-passed) magnitudes (n, CROP_FRAMES, F) and the cliffs (n,) Hz (module doc): n = crops,
    fewer where ATTEMPTS_PER_CROP * crops draws do not find as many cliffs."""
    source = PairCache(data_roots(data)[:1], "val", SEED)
    rng = np.random.default_rng(SEED)
    coded, clean, cliffs = [], [], []
    for _ in range(ATTEMPTS_PER_CROP * crops):
        if len(cliffs) == crops:
            break
        audio, pair = source.crop(CROP_FRAMES)
        cliff = codec_cliff_hz(audio[0], audio[1])
        if cliff is None:
            continue
        low = low_passed(audio[0], cliff, ORDER)
        clean.append(low if stores_float(pair) else quantize(low[None], "s16_tpdf", rng)[0])
        coded.append(audio[1])
        cliffs.append(cliff)
    if not cliffs:
        empty = torch.zeros((0, CROP_FRAMES, features.BINS))
        return empty, empty, np.zeros(0)
    as_magnitudes = (lambda rows: features.frame_magnitudes(torch.from_numpy(np.stack(rows))))
    return as_magnitudes(coded), as_magnitudes(clean), np.array(cliffs)


@torch.no_grad()
def crop_scores(net: BandNet, mag: torch.Tensor, cliffs: np.ndarray, margin_hz: float,
                confidence_from: float) -> dict[str, np.ndarray]:
    """Per crop of magnitudes (crops, T, F) with cliffs (crops,) Hz: {statistic: (crops,)} (module doc)."""
    expand = torch.from_numpy(features.expansion_matrix(net.config.bands)).float()
    hz_per_bin = MODEL_RATE_HZ / features.FFT_SIZE
    scores = {name: np.zeros(len(cliffs)) for name in STATISTICS}
    for i in range(len(cliffs)):
        confidence = torch.sigmoid(net.bands(mag[i: i + 1]).confidence_logit[0]) @ expand  # (T, F)
        under = confidence[active_frames(mag[i]) > 0, : max(1, int((cliffs[i] - margin_hz) / hz_per_bin))]
        scores["mean"][i] = float(under.mean()) if under.numel() else 0.0
        scores["share"][i] = float((under >= confidence_from).float().mean()) if under.numel() else 0.0
    return scores


def both_scores(net: BandNet, crop_set: tuple[torch.Tensor, torch.Tensor, np.ndarray]
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`crop_scores` of the coded and of the clean crops of a `cliff_crops` set, with the gate's shipped
    `damage_margin_hz` and `confidence_from`."""
    gate = load_config(None).gate
    coded_mag, clean_mag, cliffs = crop_set
    return tuple(crop_scores(net, m, cliffs, gate["damage_margin_hz"], gate["confidence_from"])
                 for m in (coded_mag, clean_mag))


def cliff_record(net: BandNet, crop_set: tuple[torch.Tensor, torch.Tensor, np.ndarray], prefix: str) -> dict:
    """`<prefix>_cliffs_auc_<statistic>` over all crops of a `cliff_crops` set (none for an empty set)."""
    if not len(crop_set[2]):
        return {}
    coded, clean = both_scores(net, crop_set)
    return {f"{prefix}_cliffs_auc_{name}": round(auc(coded[name], clean[name]), 4) for name in STATISTICS}


def cliff_rows(net: BandNet, data: DataRoots, crops: int = CROPS) -> list[dict]:
    """One row per statistic and cliff range (RANGES_HZ, then all crops): crops, medians, AUC."""
    crop_set = cliff_crops(data, crops)
    cliffs = crop_set[2]
    coded, clean = both_scores(net, crop_set)
    rows = []
    for name in STATISTICS:
        for lo, hi in (*RANGES_HZ, (0.0, float(MODEL_RATE_HZ))):
            these = (cliffs >= lo) & (cliffs < hi)
            if these.any():
                rows.append({"statistic": name, "cliff_hz": [lo, hi], "crops": int(these.sum()),
                             "median_coded": float(np.median(coded[name][these])),
                             "median_clean": float(np.median(clean[name][these])),
                             "auc": auc(coded[name][these], clean[name][these])})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| statistic | cliff kHz | crops | median coded | median clean low-passed | AUC |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lo, hi = (v / 1000 for v in r["cliff_hz"])
        span = "all" if hi >= MODEL_RATE_HZ / 1000 else f"{lo:g}-{hi:g}"
        lines.append(f"| {r['statistic']} | {span} | {r['crops']} | {r['median_coded']:.4f} | "
                     f"{r['median_clean']:.4f} | {r['auc']:.3f} |")
    return "\n".join(lines)
