"""How far a checkpoint's band levels above a codec cutoff lie from the clean ones, per kind of audio, on
training and on validation pairs: whether an error is the network's fit (both splits) or generalisation
(validation only).

Crops (`CROPS` per kind and split, not augmented, fixed seeds) of one codec's pairs (default the LAME 32
kbit/s mono reference) from the pair caches; per band and active frame (loss.py's `active_frames`) the
band power (dB, the pooling of the network's bands) of the clean crop, the decoded one and the network's
estimate. "Above the cutoff": band-frames whose decoded power lies more than MISSING_DB under the clean
power while the clean band is above AUDIBLE_DB re a full-scale sine: what the codec removed. Per kind and
split: median, mean and mean absolute error of the estimate there (dB re clean), their count, and the LSD
(train.py's `lsd_db`, all bins) of the estimate and of the decoded crops.

The course there: a band's level per frame minus its moving mean over COURSE_FRAMES frames (0.5 s; the
crop's ends replicated), over the bands missing in at least half of a crop's active frames (at least
MIN_COURSE_FRAMES of them), on those active frames: its correlation with the clean course and its spread
(standard deviation) over the clean one's, each averaged over such crop-bands (`course_series` of them).
Regression to a median leaves the spread under 1 and the correlation where the decoded input puts it.

    python -m training.v2 levels --checkpoint runs/v2/last.pt [--data data/v2pairs/r0 data/v2pairs/r1]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as fn

from training.pairs import REFERENCE
from training.v2 import features
from training.v2.loss import AUDIBLE_DB, MISSING_DB, active_frames
from training.v2.model import BandNet
from training.v2.train import CROP_FRAMES, DataRoots, PairCache, data_roots, lsd_db, make_batch

CROPS = 32
KINDS = ("music", "speech", "mix", "drums")
COURSE_FRAMES = 187                # 0.5 s at hop 128 (odd: centred)
MIN_COURSE_FRAMES = 64


def course(level_db: torch.Tensor) -> torch.Tensor:
    """Band levels (B, T, bands), dB, minus their centred moving mean over COURSE_FRAMES frames, ends
    replicated; (B, T, bands)."""
    x = level_db.transpose(1, 2)
    half = COURSE_FRAMES // 2
    padded = fn.pad(x, (half, half), mode="replicate")
    return (x - fn.avg_pool1d(padded, COURSE_FRAMES, stride=1)).transpose(1, 2)


def course_agreement(estimate_db: torch.Tensor, clean_db: torch.Tensor, missing: torch.Tensor,
                     active: torch.Tensor) -> tuple[float | None, float | None, int]:
    """Mean correlation and spread ratio of the estimate's course with the clean one's (module doc) for band
    levels (B, T, bands) in dB, the band-frames the codec removed `missing` (B, T, bands) bool and the
    active frames `active` (B, T) bool; and the number of crop-bands scored (None, None, 0 for none)."""
    est, ref = course(estimate_db), course(clean_db)
    correlations, spreads = [], []
    for b, band in zip(*torch.nonzero(missing.sum(1) * 2 >= active.sum(1, keepdim=True), as_tuple=True)):
        frames = active[b]
        if int(frames.sum()) < MIN_COURSE_FRAMES or not missing[b, frames, band].any():
            continue
        e, r = est[b, frames, band].double(), ref[b, frames, band].double()
        e, r = e - e.mean(), r - r.mean()
        if float(r.norm()) == 0.0 or float(e.norm()) == 0.0:
            continue
        correlations.append(float((e * r).sum() / (e.norm() * r.norm())))
        spreads.append(float(e.norm() / r.norm()))
    if not correlations:
        return None, None, 0
    return float(np.mean(correlations)), float(np.mean(spreads)), len(correlations)


@torch.no_grad()
def level_rows(net: BandNet, data: DataRoots, codec: str = REFERENCE.name, crops: int = CROPS) -> list[dict]:
    """One row per kind and split that the caches hold pairs of (module doc). Validation reads the first
    cache only (its validation pairs are every round's)."""
    rows = []
    roots = data_roots(data)
    for kind in KINDS:
        for split, split_roots in (("train", roots), ("val", roots[:1])):
            try:
                source = PairCache(split_roots, split, 7, codec=codec, kind=kind)
            except SystemExit:                                  # no pairs of that kind in the split
                continue
            decoded, clean, _ = make_batch(source, crops, CROP_FRAMES, np.random.default_rng(5), net.config.bands,
                                           augment=False)
            estimate = torch.cat([net(decoded[i: i + 8]).magnitude for i in range(0, crops, 8)])
            level = {name: features.db(net.band_powers(m) + 1e-12)
                     for name, m in (("clean", clean), ("decoded", decoded), ("estimate", estimate))}
            active = active_frames(clean) > 0
            missing = (active[..., None] & (level["decoded"] < level["clean"] - MISSING_DB)
                       & (level["clean"] > AUDIBLE_DB))
            error = (level["estimate"] - level["clean"])[missing]
            correlation, spread, series = course_agreement(level["estimate"], level["clean"], missing, active)
            rows.append({"kind": kind, "split": split, "band_frames": int(missing.sum()),
                         "median_db": float(error.median()) if len(error) else None,
                         "mean_db": float(error.mean()) if len(error) else None,
                         "mean_abs_db": float(error.abs().mean()) if len(error) else None,
                         "lsd_estimate": lsd_db(estimate, clean), "lsd_decoded": lsd_db(decoded, clean),
                         "course_correlation": correlation, "course_spread": spread, "course_series": series})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| kind | split | median dB | mean dB | mean abs dB | band-frames | LSD estimate / decoded "
             "| course correlation | course spread | crop-bands |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{r[k]:+.2f}" if r[k] is not None else "-" for k in ("median_db", "mean_db")]
        cells.append(f"{r['mean_abs_db']:.2f}" if r["mean_abs_db"] is not None else "-")
        course_cells = [f"{r[k]:.3f}" if r[k] is not None else "-" for k in ("course_correlation", "course_spread")]
        lines.append(f"| {r['kind']} | {r['split']} | {' | '.join(cells)} | {r['band_frames']} "
                     f"| {r['lsd_estimate']:.2f} / {r['lsd_decoded']:.2f} | {' | '.join(course_cells)} "
                     f"| {r['course_series']} |")
    return "\n".join(lines)
