"""Training loss of model v2 and the codec-made labels it learns its confidence from.

All terms are means over active frames only (the clean frame's peak bin above ACTIVE_DB re a full-scale
sine, evaluation/metrics.py's definition); levels are floored at FLOOR_DB re a full-scale sine:
    band        |ln P_est,b - ln P_clean,b|, P = mean power per band (the pooling matrix), from the band
                outputs exactly (`BandNet.band_power`): the envelope, what carries nearly all of the quality
                above a codec cutoff (FINDINGS.md)
    audible     the band term as a listener (and ViSQOL, which floors its band levels per frame at 45 dB
                under the frame's peak) weighs it: band levels as summed power (mean power times the band's
                width), both raised to a floor AUDIBLE_RANGE_DB under the clean frame's loudest band, the
                error summed over band-frames and divided by the number of clean band-frames above that
                floor. BAND_TERMS chooses which of band or audible is trained; both are logged
    bin         BIN_WEIGHT * |ln |est_k| - ln |clean_k||, on the sparse frames (every SPARSE_FRAME_STRIDE-th,
                from the crop's first; crops start at random hops): holes and fine structure below the
                cutoff, without paying for 513 bins of every frame
    above       ABOVE_WEIGHT * |ln sum_b P_est,b - ln sum_b P_clean,b| over the bands a frame lacks (decoded
                power more than MISSING_DB under the clean one, clean above AUDIBLE_DB): the loudness of what the
                codec removed, which the loudest band-frames dominate. Weight 0: a measure in the validation
                log; trained at 0.2 (an A/B, training/v2/campaign/README.md) it brought the levels above the
                cutoff nearer the clean ones but not ViSQOL through the engine (speech lower)
    patch       patch_weight * (1 - NSIM), the similarity ViSQOL scores (its audio mode: `patch_dissimilarity`) of
                the estimated and clean band envelopes as summed band powers in dB over 80 ms Hann windows every
                21.3 ms, floored PATCH_RANGE_DB under each window's loudest band: per cell the product of an
                intensity term (local means) and a structure term (local correlation) in a 3 x 3 Gaussian
                neighbourhood of bands and windows: whether the envelope rises and falls where the clean one
                does, which the band term, scoring each band-frame alone, does not ask. Weight 0 by default: a
                measure in the validation log; trained at 3 and 10 (`--patch-weight`; an A/B at equal CPU,
                training/v2/campaign/README.md) it lowered itself by 3 % and did not move ViSQOL through the engine
    over        (over_weight - 1) * the band term's over-estimates alone (max(ln P_est,b - ln P_clean,b, 0)): with
                over_weight > 1 a band level above the clean one costs over_weight times one below it, so the
                envelope learns a quantile under the median (a fill that errs quiet: the network over-fills dark,
                sparse sources and makes them worse, campaign README). Weight 0 by default (logged);
                `--over-weight` trains it
    hold        hold_weight * KL divergence of the band confidences (Bernoulli per band, sparse frames) from an
                anchor network's on the same crops (`--hold-confidence`): keeps a calibrated confidence where it
                was while the rest trains on (the gate's thresholds are calibrated to a model's confidence; training
                past the schedule's end moved it, campaign README). Only with an anchor
    confidence  CONFIDENCE_WEIGHT * binary cross-entropy of the band logits of the sparse frames against
                the share of the band's bins that are codec-made (`band_labels`), i.e. of the per-bin
                sigmoid repeated over the band; labels are made for the sparse frames only, which saves
                three quarters of the STFT of the crop through the decode chain and of the labels' cost

Codec-made, by LABELS: "changed" (the decoded bin more than LABEL_DB from the reference, either way; what
model v1 learnt), "audible_holes" (the decoded bin more than HOLE_DB under a reference bin that lies
within AUDIBLE_RANGE_DB of its frame's loudest: what a listener can miss, training/v2/damage.py) or
"low_rate" ("changed" in the pairs of a codec at a rate the engine restores, `restored_rate`, and nothing in
the others: what the gate asks, since the bins a 96-128 kbit/s codec changes under a source's own band edge
are as many as a 32 kbit/s codec's, and filling above that edge makes the file worse).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as fn

from evaluation.metrics import ACTIVE_DB, FLOOR_DB
from training.train import LABEL_DB, LABEL_FLOOR_DB
from training.v2.features import db, full_scale_magnitude, pooling_matrix
from training.v2.model import BandNet, Bands

BIN_WEIGHT = 0.5
SPARSE_FRAME_STRIDE = 4
SPARSE = slice(0, None, SPARSE_FRAME_STRIDE)
"""The frames of a crop that the bin and confidence terms score."""
CONFIDENCE_WEIGHT = 0.2
ABOVE_WEIGHT = 0.0
MISSING_DB = 15.0
AUDIBLE_DB = -90.0
BIN_LABELS = ("changed", "audible_holes")
"""The labels `codec_made` tells from a bin pair alone."""
LABELS = (*BIN_LABELS, "low_rate")
RESTORED_KBPS = {"lameenc": 64, "libmp3lame": 64, "libshine": 64, "libtwolame": 64, "aac": 48}
"""The highest nominal bit rate (kbit/s, all channels) of each encoder whose files the engine restores: the
issue's restored conditions (MP3 32-64k, AAC 32k, MP2 64k) and the rates between; Vorbis and Opus keep
band energies and are never restored; VBR MP3 only at its lowest quality (9, about 65 kbit/s)."""
RESTORED_VBR_QUALITY = {"libmp3lame": 9}
BAND_TERMS = ("band", "audible")
PATCH_WINDOW_FRAMES = 30
"""ViSQOL's 80 ms analysis window, in frames of the v2 framing (hop 128 at 48 kHz)."""
PATCH_HOP_FRAMES = 8
"""Its 20 ms hop, rounded to frames (21.3 ms)."""
PATCH_RANGE_DB = 45.0
"""ViSQOL's per-window floor under the window's loudest band (of the two envelopes)."""
NSIM_WINDOW = torch.outer(torch.tensor([0.1065, 0.7870, 0.1065]), torch.tensor([0.1065, 0.7870, 0.1065]))
"""ViSQOL's 3 x 3 Gaussian neighbourhood (sigma 0.5 cells; its weights to 3 digits, summing to 1)."""
INTENSITY_C = 1e-4
STRUCTURE_C_DB2 = 1.0
"""dB^2 added to the structure term's covariance and deviation product (ViSQOL's 4.5e-4): a locally flat
envelope's correlation is noise, and its gradient would be unbounded."""
HOLE_DB = 10.0
AUDIBLE_RANGE_DB = 40.0


def active_frames(clean: torch.Tensor) -> torch.Tensor:
    """(..., T, F) clean magnitudes -> (..., T) float mask of frames whose peak is above ACTIVE_DB."""
    return (clean.amax(-1) > full_scale_magnitude() * 10 ** (ACTIVE_DB / 20)).float()


def restored_rate(pair: dict) -> bool:
    """Whether a pair cache's manifest row (its `encoder`, `bitrate_kbps` or VBR `quality`) is of a codec at a
    rate the engine restores (RESTORED_KBPS, RESTORED_VBR_QUALITY)."""
    encoder = pair.get("encoder")
    if pair.get("bitrate_kbps") is not None:
        return pair["bitrate_kbps"] <= RESTORED_KBPS.get(encoder, 0)
    return pair.get("quality") is not None and pair["quality"] >= RESTORED_VBR_QUALITY.get(encoder, float("inf"))


def codec_made(decoded: torch.Tensor, reference: torch.Tensor, labels: str = "changed",
               full_scale: float | None = None) -> torch.Tensor:
    """(..., T, F) bool: the bins codec-made by `labels` (module doc) for decoded and reference magnitudes
    (..., T, F), both floored at LABEL_FLOOR_DB re a full-scale sine (`full_scale`: its magnitude in their
    framing; the v2 framing's by default)."""
    if labels not in BIN_LABELS:
        raise ValueError(f"labels must be one of {BIN_LABELS}, got {labels!r}")
    floor = (full_scale or full_scale_magnitude()) * 10 ** (LABEL_FLOOR_DB / 20)
    ratio_db = 2 * db(decoded.clamp(min=floor) / reference.clamp(min=floor))
    if labels == "changed":
        return ratio_db.abs() > LABEL_DB
    reference = reference.clamp(min=floor)
    audible = 2 * db(reference / reference.amax(-1, keepdim=True)) > -AUDIBLE_RANGE_DB
    return (ratio_db < -HOLE_DB) & audible


def band_labels(decoded: torch.Tensor, reference: torch.Tensor, bands: int, labels: str = "changed",
                restored: torch.Tensor | None = None) -> torch.Tensor:
    """Share (B, T, bands) of each band's bins that are codec-made by `labels` (module doc) for decoded and
    reference magnitudes (B, T, F) of the v2 framing; "low_rate" needs `restored` (B,) bool, each pair's
    `restored_rate`."""
    if labels == "low_rate":
        if restored is None:
            raise ValueError("low_rate labels need each pair's restored_rate")
        made = codec_made(decoded, reference, "changed") & restored[:, None, None]
    else:
        made = codec_made(decoded, reference, labels)
    return made.float() @ torch.from_numpy(pooling_matrix(bands))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (..., T, n) values over the last axis, then over the frames where mask (..., T) is 1."""
    return (values.mean(-1) * mask).sum() / mask.sum().clamp(min=1.0)


def audible_band_error(est_power: torch.Tensor, clean_power: torch.Tensor, widths: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """The audible term (module doc) of estimated and clean mean band powers (..., T, bands), full-scale units,
    for band widths (bands,) (shares of the bins) over the frames where mask (..., T) is 1."""
    floor = 10 ** (FLOOR_DB / 10)
    log_widths = torch.log(widths)
    clean_log = torch.log(clean_power + floor) + log_widths
    frame_floor = clean_log.amax(-1, keepdim=True) - AUDIBLE_RANGE_DB * math.log(10) / 10
    est_log = torch.log(est_power + floor) + log_widths
    error = (torch.maximum(est_log, frame_floor) - torch.maximum(clean_log, frame_floor)).abs()
    audible = (clean_log > frame_floor).float() * mask[..., None]
    return (error * mask[..., None]).sum() / audible.sum().clamp(min=1.0)


def _windowed_db(power: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mean band powers (B, T, bands) and band widths (bands,) -> summed band power in dB over ViSQOL's windows
    (B, bands, T'), T' = (T - PATCH_WINDOW_FRAMES) // PATCH_HOP_FRAMES + 1."""
    window = torch.hann_window(PATCH_WINDOW_FRAMES + 2, periodic=False, dtype=power.dtype)[1:-1]
    summed = (power * widths).transpose(1, 2)
    b, bands, t = summed.shape
    pooled = fn.conv1d(summed.reshape(b * bands, 1, t), (window / window.sum()).view(1, 1, -1),
                       stride=PATCH_HOP_FRAMES)
    return 10 * torch.log10(pooled.view(b, bands, -1) + 10 ** (FLOOR_DB / 10))


def _local_mean(x: torch.Tensor) -> torch.Tensor:
    """(B, bands, T') -> its NSIM_WINDOW-weighted local means, edges replicated (ViSQOL's boundary)."""
    padded = fn.pad(x[:, None], (1, 1, 1, 1), mode="replicate")
    return fn.conv2d(padded, NSIM_WINDOW.to(x.dtype)[None, None])[:, 0]


def patch_dissimilarity(est_power: torch.Tensor, clean_power: torch.Tensor, widths: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
    """The patch term (module doc), 1 - NSIM in 0..2, of estimated and clean mean band powers (B, T, bands),
    full-scale units, band widths (bands,), over the windows whose frames (mask (B, T) of 1 / 0) are active
    for the most part; crops shorter than a window score 0."""
    if est_power.shape[1] < PATCH_WINDOW_FRAMES:
        return est_power.new_zeros(())
    est_db, clean_db = _windowed_db(est_power, widths), _windowed_db(clean_power, widths)
    with torch.no_grad():
        floor = torch.maximum(est_db.amax(1, keepdim=True), clean_db.amax(1, keepdim=True)) - PATCH_RANGE_DB
        lowest = torch.minimum(est_db, clean_db).clamp(min=floor).amin((1, 2), keepdim=True)
        window = torch.full((1, 1, PATCH_WINDOW_FRAMES), 1.0 / PATCH_WINDOW_FRAMES, dtype=mask.dtype)
        active = (fn.conv1d(mask[:, None], window, stride=PATCH_HOP_FRAMES)[:, 0] > 0.5).float()
    est_db, clean_db = torch.maximum(est_db, floor) - lowest, torch.maximum(clean_db, floor) - lowest
    dissimilarity = (1.0 - nsim_map(est_db, clean_db)).mean(1)                # (B, T')
    return (dissimilarity * active).sum() / active.sum().clamp(min=1.0)


def nsim_map(est_db: torch.Tensor, clean_db: torch.Tensor, structure_c: float = STRUCTURE_C_DB2) -> torch.Tensor:
    """ViSQOL's NSIM per cell (B, bands, T') of two spectrograms in dB (B, bands, T'): intensity times
    structure in NSIM_WINDOW neighbourhoods, `structure_c` dB^2 in the structure term (ViSQOL's own: 4.5e-4)."""
    mean_e, mean_c = _local_mean(est_db), _local_mean(clean_db)
    var_e = (_local_mean(est_db * est_db) - mean_e * mean_e).clamp(min=0.0)
    var_c = (_local_mean(clean_db * clean_db) - mean_c * mean_c).clamp(min=0.0)
    covariance = _local_mean(est_db * clean_db) - mean_e * mean_c
    intensity = (2 * mean_e * mean_c + INTENSITY_C) / (mean_e * mean_e + mean_c * mean_c + INTENSITY_C)
    return intensity * (covariance + structure_c) / (torch.sqrt(var_e * var_c + 1e-6) + structure_c)


def confidence_divergence(logit: torch.Tensor, anchor_logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over band-frames of KL(anchor || estimate) between per-band Bernoulli confidences given as
    logits (..., bands); frames weighted by `mask` (...). 0 where the two agree."""
    target = torch.sigmoid(anchor_logit)
    divergence = (fn.binary_cross_entropy_with_logits(logit, target, reduction="none")
                  - fn.binary_cross_entropy_with_logits(anchor_logit, target, reduction="none"))
    return _masked_mean(divergence, mask)


def loss_terms(net: BandNet, out: Bands, decoded: torch.Tensor, clean: torch.Tensor,
               labels: torch.Tensor, band_term: str = BAND_TERMS[0],
               patch_weight: float = 0.0, over_weight: float = 1.0, anchor: Bands | None = None,
               hold_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Loss terms (module doc) of net's band outputs `out` for decoded and clean magnitudes (B, T, F) and band
    labels (B, T', bands) of the sparse frames (T' = len(range(T)[SPARSE])); `total` is their weighted sum
    (the patch term only where it is trained or nothing is: under torch.no_grad, as validation runs),
    with the envelope scored by `band_term` (BAND_TERMS), the patch term weighted by `patch_weight` and the
    band term's over-estimates by `over_weight` in all, and with an `anchor` network's outputs on the same
    crops its hold term by `hold_weight`."""
    if band_term not in BAND_TERMS:
        raise ValueError(f"band_term must be one of {BAND_TERMS}, got {band_term!r}")
    mask = active_frames(clean)
    fs = full_scale_magnitude()
    floor = 10 ** (FLOOR_DB / 10)
    with torch.no_grad():
        clean_power = net.band_powers(clean)
        clean_log = torch.log(clean[:, SPARSE] * (1.0 / fs) + floor ** 0.5)
    est_power = net.band_power(out)
    band_error = torch.log(est_power + floor) - torch.log(clean_power + floor)
    band = _masked_mean(band_error.abs(), mask)
    over = _masked_mean(band_error.clamp(min=0.0), mask)
    audible = audible_band_error(est_power, clean_power, net.band_widths[:, 0], mask)
    missing = ((out.power < clean_power * 10 ** (-MISSING_DB / 10)) & (clean_power > 10 ** (AUDIBLE_DB / 10))).float()
    lacking = mask * (missing.sum(-1) > 0).float()
    above = ((torch.log((est_power * missing).sum(-1) + floor) - torch.log((clean_power * missing).sum(-1) + floor)
              ).abs() * lacking).sum() / lacking.sum().clamp(min=1.0)
    est = net.expand(out.gain[:, SPARSE], out.fill[:, SPARSE], decoded[:, SPARSE])
    bins = _masked_mean((torch.log(est * (1.0 / fs) + floor ** 0.5) - clean_log).abs(), mask[:, SPARSE])
    confidence = _masked_mean(fn.binary_cross_entropy_with_logits(out.confidence_logit[:, SPARSE], labels,
                                                                  reduction="none"), mask[:, SPARSE])
    envelope = band if band_term == "band" else audible
    terms = {"band": band, "audible": audible, "bin": bins, "confidence": confidence, "above": above, "over": over}
    total = (envelope + BIN_WEIGHT * bins + CONFIDENCE_WEIGHT * confidence + ABOVE_WEIGHT * above
             + (over_weight - 1.0) * over)
    if anchor is not None:
        terms["hold"] = confidence_divergence(out.confidence_logit[:, SPARSE], anchor.confidence_logit[:, SPARSE],
                                              mask[:, SPARSE])
        total = total + hold_weight * terms["hold"]
    if patch_weight or not torch.is_grad_enabled():     # at weight 0 a measure: not worth a training step's 5 %
        terms["patch"] = patch_dissimilarity(est_power, clean_power, net.band_widths[:, 0], mask)
        total = total + patch_weight * terms["patch"]
    return {"total": total, **terms}
