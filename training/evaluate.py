"""Validation of a trained model, per clip, through the real engine (`realtime.engine.restorer.Restorer`).

For each chosen validation clip (speech and music separately, spread over sources) the engine (shipped
config + the given ONNX model, gate on, 48 kHz mono, 1 thread) restores
    - the MP3 32 kbit/s decode (reference case),
    - the MP3 128 kbit/s decode and the clean signal itself (no-harm checks),
and its output, compensated by `latency_samples`, is compared with the clean reference, as is the
decoded input, by the metrics of evaluation/metrics.py (LSD full / below / above the codec cutoff, holes).
`compare_checkpoints` scores checkpoints without the engine (model only) with the same metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from evaluation.metrics import (
    ACTIVE_DB, FLOOR_DB, HOLE_DB, bin_hz, clip_metrics, codec_cutoff_bin, magnitude_db, power_db, spectrum_metrics,
)
from realtime.engine.config import MODEL_RATE_HZ
from training.pairs import NO_HARM, REFERENCE


class EngineRunner:
    """Runs audio through a Restorer with the given model (48 kHz mono), latency compensated."""

    def __init__(self, model: str | Path, gate: bool = True, threads: int = 1, phase: str | None = None):
        from realtime.engine.restorer import Restorer

        overrides = {"model": {"path": str(Path(model).resolve()), "threads": threads}, "gate": {"enabled": gate}}
        if phase:
            overrides["phase"] = {"method": phase}
        self.restorer = Restorer.from_config(None, overrides)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(samples,) at 48 kHz -> restored, aligned, same length (`Restorer.restore`)."""
        return self.restorer.restore(np.asarray(x, np.float32), MODEL_RATE_HZ)


def choose_clips(rows: list[dict], per_kind: int) -> list[dict]:
    """Up to `per_kind` manifest rows of each kind (speech, music), evenly spaced in (source, segment) order."""
    chosen = []
    for kind in ("speech", "music"):
        rk = sorted((r for r in rows if r["kind"] == kind), key=lambda r: (r["source"], r["segment"]))
        if per_kind >= len(rk):
            chosen += rk
        else:
            idx = np.linspace(0, len(rk) - 1, per_kind).round().astype(int)
            chosen += [rk[i] for i in sorted(set(idx))]
    return chosen


def evaluate(model: str | Path, pairs_root: str | Path = "data/pairs", clips_per_kind: int = 16,
             gate: bool = True, phase: str | None = None) -> dict:
    """Per-clip metrics (module doc) of `model` through the engine on `clips_per_kind` validation clips of each
    kind of the pairs at `pairs_root`, their means per kind, and the engine's real-time factor; `gate`:
    the codec gate on or off, `phase`: phase.method (None: the config's)."""
    from tqdm import tqdm

    pairs_root = Path(pairs_root)
    man = json.loads((pairs_root / "manifest.json").read_text())
    val = [r for r in man["pairs"] if r["split"] == "val"]
    ref_rows = [r for r in val if r["codec"] == REFERENCE.name]
    nh_rows = {r["segment"]: r for r in val if r["codec"] == NO_HARM.name}
    clips = choose_clips(ref_rows, clips_per_kind)
    run = EngineRunner(model, gate=gate, phase=phase)
    rows, t_engine, audio_s = [], 0.0, 0.0
    for r in tqdm(clips, desc="evaluate", unit="clip"):
        pair = np.load(pairs_root / r["file"])
        clean, dec = pair[0, 0], pair[1, 0]
        c_db, d_db = power_db(clean), power_db(dec)
        cutoff = codec_cutoff_bin(c_db, d_db)
        t0 = time.perf_counter()
        res = run(dec)
        res_clean = run(clean)
        t_engine += time.perf_counter() - t0
        audio_s += 2 * len(clean) / MODEL_RATE_HZ
        row = {"clip": r["segment"], "kind": r["kind"], "source": r["source"],
               "seconds": round(len(clean) / MODEL_RATE_HZ, 2), "cutoff_hz": round(bin_hz(cutoff))}
        m_dec = clip_metrics(clean, dec, cutoff, c_db)
        m_res = clip_metrics(clean, res, cutoff, c_db)
        for k in m_dec:
            row[f"{k}_mp3"] = m_dec[k]
            row[f"{k}_restored"] = m_res[k]
        row["noharm_clean_delta"] = clip_metrics(clean, res_clean, cutoff, c_db)["lsd_full"]  # LSD(clean, clean) = 0
        if r["segment"] in nh_rows:
            p128 = np.load(pairs_root / nh_rows[r["segment"]]["file"])
            t0 = time.perf_counter()
            res128 = run(p128[1, 0])
            t_engine += time.perf_counter() - t0
            audio_s += len(clean) / MODEL_RATE_HZ
            row["noharm_128k_delta"] = (clip_metrics(clean, res128, cutoff, c_db)["lsd_full"]
                                        - clip_metrics(clean, p128[1, 0], cutoff, c_db)["lsd_full"])
        rows.append(row)
    summary = {}
    for kind in ("speech", "music"):
        rk = [x for x in rows if x["kind"] == kind]
        if not rk:
            continue
        mean = {k: float(np.nanmean([x[k] for x in rk if k in x])) for k in rk[0] if isinstance(rk[0][k], float)}
        mean["clips"] = len(rk)
        mean["lsd_full_reduction_pct"] = 100 * (1 - mean["lsd_full_restored"] / mean["lsd_full_mp3"])
        mean["holes_reduction_pct"] = 100 * (1 - mean["holes_restored"] / max(1e-12, mean["holes_mp3"]))
        mean["noharm_clean_delta_max"] = float(max(x["noharm_clean_delta"] for x in rk))
        mean["noharm_128k_delta_max"] = float(max(x.get("noharm_128k_delta", 0.0) for x in rk))
        summary[kind] = mean
    return {"model": str(model), "gate": gate, "phase": phase or "config default",
            "floor_db": FLOOR_DB, "active_db": ACTIVE_DB, "hole_db": HOLE_DB,
            "engine_realtime_factor": audio_s / max(t_engine, 1e-9), "summary": summary, "clips": rows}


def format_report(res: dict) -> str:
    cols = ["lsd_full", "lsd_below", "lsd_above", "holes"]
    head = ("| clip | kind | cutoff Hz | " + " | ".join(f"{c} mp3 | {c} restored" for c in cols)
            + " | no-harm clean | no-harm 128k |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res["clips"]:
        vals = " | ".join(f"{r[c + '_mp3']:.3f} | {r[c + '_restored']:.3f}" for c in cols)
        lines.append(f"| {r['clip']} | {r['kind']} | {r['cutoff_hz']} | {vals} | {r['noharm_clean_delta']:+.3f} | "
                     f"{r.get('noharm_128k_delta', float('nan')):+.3f} |")
    for kind, m in res["summary"].items():
        vals = " | ".join(f"{m[c + '_mp3']:.3f} | {m[c + '_restored']:.3f}" for c in cols)
        lines.append(f"| **mean {kind}** ({m['clips']}) | | | {vals} | {m['noharm_clean_delta']:+.3f} | "
                     f"{m.get('noharm_128k_delta', float('nan')):+.3f} |")
    lines.append("")
    for kind, m in res["summary"].items():
        lines.append(f"{kind}: LSD full band -{m['lsd_full_reduction_pct']:.1f} %, holes -{m['holes_reduction_pct']:.1f} %, "
                     f"worst no-harm delta clean {m['noharm_clean_delta_max']:+.3f} dB, "
                     f"128k {m['noharm_128k_delta_max']:+.3f} dB")
    return "\n".join(lines)


def compare_checkpoints(checkpoints: list[str], pairs_root: str | Path = "data/pairs") -> dict:
    """Model-only comparison (no gate, no phase) of checkpoints on the fixed validation crops of
    `train.validation_sets`' reference set (MP3 32 kbit/s mono): normalised L1, LSD full/below/above cutoff, holes.
    Used to decide the loss (L1 vs L1 + log magnitude) at equal training steps."""
    import torch

    from training.export import load_checkpoint
    from training.train import validation_sets

    dec, clean, _ = validation_sets(pairs_root, synthetic=False)["reference"]

    c_db_all, d_db_all = magnitude_db(clean.numpy()), magnitude_db(dec.numpy())
    cut = [codec_cutoff_bin(c, d) for c, d in zip(c_db_all, d_db_all)]

    def metrics(out: np.ndarray) -> dict:
        per_crop = [spectrum_metrics(r, o, k) for r, o, k in zip(c_db_all, magnitude_db(out), cut)]
        return {"l1": float(np.abs(out - clean.numpy()).mean() / clean.numpy().mean()),
                **{key: float(np.mean([m[key] for m in per_crop])) for key in per_crop[0]}}

    res = {"crops": len(dec), "mp3": metrics(dec.numpy())}
    for ck in checkpoints:
        net, info = load_checkpoint(ck)
        with torch.no_grad():
            out = torch.cat([net(dec[i: i + 8]) for i in range(0, len(dec), 8)]).numpy()
        res[ck] = {"loss": info.get("loss"), "step": info.get("step"), **metrics(out)}
    return res
