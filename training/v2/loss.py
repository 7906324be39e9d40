"""Training loss of model v2 and the codec-made labels it learns its confidence from.

All terms are means over active frames only (the clean frame's peak bin above ACTIVE_DB re a full-scale
sine, evaluation/metrics.py's definition); levels are floored at FLOOR_DB re a full-scale sine:
    band        |ln P_est,b - ln P_clean,b|, P = mean power per band (the pooling matrix), from the band
                outputs exactly (`BandNet.band_power`): the envelope, what carries nearly all of the quality
                above a codec cutoff (FINDINGS.md)
    bin         BIN_WEIGHT * |ln |est_k| - ln |clean_k||, on every BIN_FRAME_STRIDE-th frame (a random
                phase per step): holes and fine structure below the cutoff, without paying for 513 bins
                of every frame
    confidence  CONFIDENCE_WEIGHT * binary cross-entropy of the band logits against the share of the band's
                bins that are codec-made (`band_labels`), i.e. of the per-bin sigmoid repeated over the band
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn

from evaluation.metrics import ACTIVE_DB, FLOOR_DB
from training.train import LABEL_DB, LABEL_FLOOR_DB
from training.v2.features import full_scale_magnitude, pooling_matrix
from training.v2.model import BandNet, Bands

BIN_WEIGHT = 0.5
BIN_FRAME_STRIDE = 4
CONFIDENCE_WEIGHT = 0.2


def active_frames(clean: torch.Tensor) -> torch.Tensor:
    """(..., T, F) clean magnitudes -> (..., T) float mask of frames whose peak is above ACTIVE_DB."""
    return (clean.amax(-1) > full_scale_magnitude() * 10 ** (ACTIVE_DB / 20)).float()


def band_labels(decoded: torch.Tensor, reference: torch.Tensor, bands: int) -> torch.Tensor:
    """Share (..., T, bands) of each band's bins where decoded and reference magnitudes (..., T, F) differ by
    more than LABEL_DB (both floored at LABEL_FLOOR_DB re a full-scale sine): codec-made."""
    floor = full_scale_magnitude() * 10 ** (LABEL_FLOOR_DB / 20)
    ratio_db = 20 * torch.log10(decoded.clamp(min=floor) / reference.clamp(min=floor))
    return (ratio_db.abs() > LABEL_DB).float() @ torch.from_numpy(pooling_matrix(bands))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (..., T, n) values over the last axis, then over the frames where mask (..., T) is 1."""
    return (values.mean(-1) * mask).sum() / mask.sum().clamp(min=1.0)


def loss_terms(net: BandNet, out: Bands, decoded: torch.Tensor, clean: torch.Tensor, labels: torch.Tensor,
               phase: int | None = None) -> dict[str, torch.Tensor]:
    """Loss terms (module doc) of net's band outputs `out` for decoded and clean magnitudes (B, T, F) and band
    labels (B, T, bands); `phase`: the first frame of the bin term (default: random); `total` is their
    weighted sum."""
    mask = active_frames(clean)
    fs = full_scale_magnitude()
    floor = 10 ** (FLOOR_DB / 10)
    if phase is None:
        phase = int(torch.randint(BIN_FRAME_STRIDE, ()))
    picked = slice(phase, None, BIN_FRAME_STRIDE)
    with torch.no_grad():
        clean_power = (clean * (1.0 / fs)) ** 2 @ net.pooling
        clean_log = torch.log(clean[:, picked] * (1.0 / fs) + floor ** 0.5)
    band = _masked_mean((torch.log(net.band_power(out) + floor) - torch.log(clean_power + floor)).abs(), mask)
    est = net.expand(out.gain[:, picked], out.fill[:, picked], decoded[:, picked])
    bins = _masked_mean((torch.log(est * (1.0 / fs) + floor ** 0.5) - clean_log).abs(), mask[:, picked])
    confidence = _masked_mean(fn.binary_cross_entropy_with_logits(out.confidence_logit, labels, reduction="none"),
                              mask)
    total = band + BIN_WEIGHT * bins + CONFIDENCE_WEIGHT * confidence
    return {"total": total, "band": band, "bin": bins, "confidence": confidence}
