"""What a codec leaves under a band edge, and what a model's confidence sees of it: the premise of the gate's
damage rule (realtime/engine/gate.py: above a cliff from `damage_from_hz` up the gate fills only while the
model finds codec damage under it, which a clean source's own cliff lacks), asked of the clips, source
variants and codecs of benchmarks/gate_noharm.py.

Per clip (its first channel), variant and condition, over the active frames (loss.py `active_frames`) and
the bins from 0 Hz to the gate's `damage_margin_hz` under the band edge (the variant's low-pass or the
codec's cliff, bandlimit.py `codec_cliff_hz`, whichever is lower), in the model's own framing:
    labelled       share of bins the training labels call codec-made (loss.py `codec_made`, "changed")
    audible holes  share of bins loss.py's "audible_holes" labels call codec-made: lowered by more than
                   HOLE_DB where the source lies within AUDIBLE_RANGE_DB of its frame's loudest bin
    flagged        share of bins at or above the gate's `confidence_from` (the statistic the gate averages)
    filled         share of bins the model raises by more than HOLE_DB at that confidence
Printed as medians and ranges over clips per (variant, condition).

    python -m training.v2 damage --model runs/v2/gapfill-v2.onnx [--clips 2] [--seconds 4]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realtime.engine.config import MODEL_RATE_HZ, load_config
from realtime.engine.stft import stft_offline
from realtime.engine.windows import full_scale_magnitude
from training.train import LABEL_FLOOR_DB
from training.v2.bandlimit import codec_cliff_hz
from training.v2.loss import BIN_LABELS, HOLE_DB, codec_made

VARIANTS = ("full", "lp12k", "lp8k")
CONDITIONS = ("clean_float", "lame_128k", "lame_96k", "lame_48k", "lame_32k_mono", "libmp3lame_32k")
ACTIVE_DB = -70.0
STATISTICS = ("labelled", "audible_holes", "flagged", "filled")


def damage_scores(source: np.ndarray, decoded: np.ndarray, estimate: np.ndarray, confidence: np.ndarray,
                  edge_hz: float, margin_hz: float, confidence_from: float, full_scale: float) -> dict[str, float]:
    """The statistics (module doc) of source and decoded magnitudes and a model's estimate and confidence,
    each (frames, F = fft_size / 2 + 1), under `edge_hz` - `margin_hz`; `full_scale`: the magnitude of a
    full-scale sine in that framing."""
    floor = full_scale * 10 ** (LABEL_FLOOR_DB / 20)
    top = max(1, int((edge_hz - margin_hz) * 2 * (source.shape[1] - 1) / MODEL_RATE_HZ))
    active = source.max(axis=1) > full_scale * 10 ** (ACTIVE_DB / 20)
    if not active.any():
        return dict.fromkeys(STATISTICS, 0.0)
    s, d = (torch.from_numpy(np.ascontiguousarray(m[active])) for m in (source, decoded))
    made = {labels: codec_made(d, s, labels, full_scale)[:, :top].numpy() for labels in BIN_LABELS}
    d_under, e_under = (np.maximum(m[active, :top], floor) for m in (decoded, estimate))
    confident = confidence[active, :top] >= confidence_from
    return {"labelled": float(made["changed"].mean()),
            "audible_holes": float(made["audible_holes"].mean()),
            "flagged": float(confident.mean()),
            "filled": float(((20 * np.log10(e_under / d_under) > HOLE_DB) & confident).mean())}


def damage_rows(model: str | Path, corpus: str | Path, clips: int, seconds: float) -> list[dict]:
    """One row per clip, variant and condition: the statistics of `model` (an ONNX file) on gate_noharm's
    `clips` clips per kind of the data v2 corpus, `seconds` of each."""
    from benchmarks.gate_noharm import BY_NAME, VARIANT_BY_NAME, band_limited, corpus_clips
    from benchmarks.models import degraded
    from training.export import stream_onnx

    config = load_config(None, {"model": {"path": str(model)}})
    gate, fft_size, hop, window = config.gate, config.fft_size, config.hop, config.window
    full_scale = full_scale_magnitude(fft_size, window, hop)

    def magnitudes(x: np.ndarray) -> np.ndarray:
        return np.abs(stft_offline(x.astype(np.float64), fft_size, hop, window)).astype(np.float32)

    rows = []
    for _, clip, _, _ in corpus_clips(Path(corpus), clips, 0, seconds):
        for variant in VARIANTS:
            source = band_limited(clip.samples, VARIANT_BY_NAME[variant])
            for condition in CONDITIONS:
                reference, decoded, _ = degraded(BY_NAME[condition], source, 0)
                s, d = magnitudes(reference[0]), magnitudes(decoded[0])
                n = min(len(s), len(d))
                estimate, confidence = (a[0] for a in stream_onnx(model, d[None, :n]))
                cliff = codec_cliff_hz(reference[0], decoded[0])
                edge = min(VARIANT_BY_NAME[variant].lowpass_hz or MODEL_RATE_HZ / 2, cliff or MODEL_RATE_HZ / 2)
                rows.append({"clip": clip.id, "kind": clip.kind, "variant": variant, "condition": condition,
                             "edge_hz": edge, **damage_scores(s[:n], d[:n], estimate, confidence, edge,
                                                              gate["damage_margin_hz"], gate["confidence_from"],
                                                              full_scale)})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| variant | condition | " + " | ".join(f"{s}: median (min-max)" for s in STATISTICS) + " |",
             "|---|---|" + "---:|" * len(STATISTICS)]
    for variant in VARIANTS:
        for condition in CONDITIONS:
            group = [r for r in rows if r["variant"] == variant and r["condition"] == condition]
            if not group:
                continue
            cells = []
            for statistic in STATISTICS:
                v = np.array([r[statistic] for r in group])
                cells.append(f"{np.median(v):.4f} ({v.min():.4f}-{v.max():.4f})")
            lines.append(f"| {variant} | {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
