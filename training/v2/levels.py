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

    python -m training.v2 levels --checkpoint runs/v2/last.pt [--data data/v2pairs/r0 data/v2pairs/r1]
"""

from __future__ import annotations

import numpy as np
import torch

from training.pairs import REFERENCE
from training.v2 import features
from training.v2.loss import AUDIBLE_DB, MISSING_DB, active_frames
from training.v2.model import BandNet
from training.v2.train import CROP_FRAMES, DataRoots, PairCache, data_roots, lsd_db, make_batch

CROPS = 32
KINDS = ("music", "speech", "mix", "drums")


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
            active = (active_frames(clean) > 0)[..., None].expand_as(level["clean"])
            missing = active & (level["decoded"] < level["clean"] - MISSING_DB) & (level["clean"] > AUDIBLE_DB)
            error = (level["estimate"] - level["clean"])[missing]
            rows.append({"kind": kind, "split": split, "band_frames": int(missing.sum()),
                         "median_db": float(error.median()) if len(error) else None,
                         "mean_db": float(error.mean()) if len(error) else None,
                         "mean_abs_db": float(error.abs().mean()) if len(error) else None,
                         "lsd_estimate": lsd_db(estimate, clean), "lsd_decoded": lsd_db(decoded, clean)})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| kind | split | median dB | mean dB | mean abs dB | band-frames | LSD estimate / decoded |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{r[k]:+.2f}" if r[k] is not None else "-" for k in ("median_db", "mean_db")]
        cells.append(f"{r['mean_abs_db']:.2f}" if r["mean_abs_db"] is not None else "-")
        lines.append(f"| {r['kind']} | {r['split']} | {' | '.join(cells)} | {r['band_frames']} "
                     f"| {r['lsd_estimate']:.2f} / {r['lsd_decoded']:.2f} |")
    return "\n".join(lines)
