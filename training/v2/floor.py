"""How far a band representation can go: the validation LSD of an oracle that knows the clean band powers.

Model v2 gives each band a gain and a fill, flat inside the band (training/v2/model.py). Given the clean
signal's mean power per band and frame, two oracles of that form: `fill` adds to each band exactly the
power it lacks (est_k = sqrt(|X_k|^2 + f_b^2), f_b^2 = max(0, P_clean - P_decoded)) and `gain` scales the
band to the clean power (est_k = |X_k| sqrt(P_clean / P_decoded)). Their LSD against the clean
magnitudes (dB over all bins, active frames: `training.v2.train.lsd_db`) on the campaign's fixed
validation crops (`validation_sets`) is about the floor a network of that many bands reaches on that
metric; a checkpoint's own LSD on the same crops sits beside it.

`band_levels`: where a checkpoint puts each band's level on the LAME 32k crops, the median over active
frames of 10 log10 of its band power over the clean one (both floored as the loss floors them), beside the
decoded input's: a network whose loss is minimised sits near 0 dB in every band.

    python -m training.v2 floor [--data data/v2pairs/r0] [--bands 32 64 128] [--checkpoint runs/v2/last.pt]
"""

from __future__ import annotations

from pathlib import Path

import torch

from evaluation.metrics import FLOOR_DB
from training.v2 import features
from training.v2.train import lsd_db, validation_sets


def oracle_estimates(decoded: torch.Tensor, clean: torch.Tensor, bands: int) -> dict[str, torch.Tensor]:
    """The `fill` and `gain` oracles (module doc) of decoded magnitudes (..., F) given clean ones."""
    pooling = torch.from_numpy(features.pooling_matrix(bands))
    expansion = torch.from_numpy(features.expansion_matrix(bands))
    decoded_power, clean_power = decoded.pow(2) @ pooling, clean.pow(2) @ pooling
    fill = (clean_power - decoded_power).clamp(min=0) @ expansion
    gain = ((clean_power + 1e-30) / (decoded_power + 1e-30)).sqrt() @ expansion
    return {"fill": (decoded.pow(2) + fill).sqrt(), "gain": decoded * gain}


@torch.no_grad()
def floor_table(data: str | Path, bands: tuple[int, ...], checkpoint: str | Path | None = None) -> list[dict]:
    """One row per validation set and band count: LSD (dB) of the decoded input, of each oracle and, with a
    checkpoint, of its network (at its own band count, on the rows of that count)."""
    from training.v2.export import load_checkpoint

    net = load_checkpoint(checkpoint)[0] if checkpoint else None
    rows = []
    for b in bands:
        for name, (decoded, clean, _) in validation_sets(data, b).items():
            row = {"set": name, "bands": b, "decoded": lsd_db(decoded, clean)}
            row.update({f"oracle_{k}": lsd_db(v, clean) for k, v in oracle_estimates(decoded, clean, b).items()})
            if net is not None and net.config.bands == b:
                estimate = torch.cat([net(decoded[i: i + 8]).magnitude for i in range(0, len(decoded), 8)])
                row["model"] = lsd_db(estimate, clean)
            rows.append(row)
    return rows


@torch.no_grad()
def band_levels(data: str | Path, checkpoint: str | Path) -> list[dict]:
    """Per band of the checkpoint's network: its lowest frequency (Hz) and the median level error (dB) of
    the network's and of the decoded input's band power against the clean one (module doc)."""
    from training.v2.export import load_checkpoint
    from training.v2.loss import active_frames

    net = load_checkpoint(checkpoint)[0]
    decoded, clean, _ = validation_sets(data, net.config.bands)["reference"]
    estimate = torch.cat([net(decoded[i: i + 8]).magnitude for i in range(0, len(decoded), 8)])
    active = active_frames(clean) > 0
    floor = features.full_scale_magnitude() ** 2 * 10 ** (FLOOR_DB / 10)
    clean_power = clean.pow(2) @ net.pooling + floor
    errors = {name: features.db((m.pow(2) @ net.pooling + floor) / clean_power)[active]
              for name, m in (("network", estimate), ("decoded", decoded))}
    edges = features.band_edges(net.config.bands)
    return [{"band": b, "from_hz": float(edges[b] * features.SAMPLE_RATE / features.FFT_SIZE),
             **{f"{name}_median_db": float(e[:, b].median()) for name, e in errors.items()}}
            for b in range(net.config.bands)]


def format_table(rows: list[dict]) -> str:
    lines = ["| set | bands | decoded | oracle fill | oracle gain | model |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        model = f"{r['model']:.2f}" if "model" in r else ""
        lines.append(f"| {r['set']} | {r['bands']} | {r['decoded']:.2f} | {r['oracle_fill']:.2f} "
                     f"| {r['oracle_gain']:.2f} | {model} |")
    return "\n".join(lines)


def format_levels(rows: list[dict]) -> str:
    lines = ["| band | from Hz | network, median dB re clean | decoded, median dB re clean |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['band']} | {r['from_hz']:.0f} | {r['network_median_db']:+.2f} | {r['decoded_median_db']:+.1f} |"
              for r in rows]
    return "\n".join(lines)
