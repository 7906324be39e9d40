"""Validation metrics, per clip, through the real engine (`realtime.engine.restorer.Restorer`).

For each chosen validation clip (speech and music separately, spread over sources) the engine (shipped
config + the given ONNX model, gate on, 48 kHz mono, 1 thread) restores
    - the MP3 32 kbit/s decode (reference case),
    - the MP3 128 kbit/s decode and the clean signal itself (no-harm checks),
and its output, compensated by `latency_samples`, is compared with the clean reference, as is the
decoded input. Spectra: `realtime.engine.stft.stft_offline` (periodic Hann 1024, hop 256), power in dB re
a full-scale sine, floored at FLOOR_DB.

    LSD        mean over active frames (clean frame peak above ACTIVE_DB) of
               sqrt(mean over bins of (dB_out - dB_ref)^2); full band = bins 0..512,
               below = bins under the codec cutoff, above = cutoff..20 kHz.
    cutoff     1 + highest bin (< 20 kHz) whose long-term decoded power is within 30 dB of the clean's
               and at least 10 dB above the floor.
    holes      share of reference bins below the cutoff (active frames, reference at least HOLE_DB above
               the floor) whose output is HOLE_DB or more quieter than the reference.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.stft import stft_offline

FFT_SIZE, HOP = 1024, 256
FLOOR_DB = -100.0
ACTIVE_DB = -60.0
HOLE_DB = 20.0
TOP_HZ = 20_000.0
REF_POWER = (FFT_SIZE / 4) ** 2
_TOP_BIN = int(TOP_HZ * FFT_SIZE / 48_000)


def magnitude_db(magnitudes: np.ndarray) -> np.ndarray:
    """(frames, 513) linear |rfft| magnitudes -> power in dB re a full-scale sine, floored at FLOOR_DB."""
    power = np.asarray(magnitudes, np.float64) ** 2 / REF_POWER
    return 10 * np.log10(np.maximum(power, 10 ** (FLOOR_DB / 10)))


def power_db(x: np.ndarray) -> np.ndarray:
    """(samples,) -> (frames, 513) power in dB re a full-scale sine, floored at FLOOR_DB."""
    return magnitude_db(np.abs(stft_offline(np.asarray(x, np.float64), FFT_SIZE, HOP)))


def codec_cutoff_bin(clean_db: np.ndarray, dec_db: np.ndarray) -> int:
    lt_c = 10 * np.log10(np.mean(10 ** (clean_db / 10), axis=0))
    lt_d = 10 * np.log10(np.mean(10 ** (dec_db / 10), axis=0))
    ok = np.nonzero((lt_d[:_TOP_BIN] >= lt_c[:_TOP_BIN] - 30.0) & (lt_d[:_TOP_BIN] > FLOOR_DB + 10.0))[0]
    return int(ok[-1]) + 1 if len(ok) else 0


def level_error_above(r: np.ndarray, o: np.ndarray, cutoff: int) -> float | None:
    """Mean signed level error (dB, o minus r) above the cutoff (bins cutoff..20 kHz, active frames) of
    output power o against reference power r, both (frames, 513) dB; None where that region is empty. LSD
    says how far; this says which way: too loud (> 0) or too quiet."""
    active = r.max(axis=1) > ACTIVE_DB
    if cutoff >= _TOP_BIN or not active.any():
        return None
    return float(np.mean(o[active, cutoff:_TOP_BIN] - r[active, cutoff:_TOP_BIN]))


def clip_metrics(clean: np.ndarray, out: np.ndarray, cutoff: int, ref_db: np.ndarray | None = None) -> dict:
    return spectrum_metrics(power_db(clean) if ref_db is None else ref_db, power_db(out), cutoff)


def spectrum_metrics(r: np.ndarray, o: np.ndarray, cutoff: int) -> dict:
    """LSD full / below / above and holes (module doc) of output power o against reference power r, both
    (frames, 513) dB from `power_db` or `magnitude_db`."""
    active = r.max(axis=1) > ACTIVE_DB
    r, o = r[active], o[active]

    def lsd(lo: int, hi: int) -> float:
        if hi <= lo or len(r) == 0:
            return float("nan")
        return float(np.mean(np.sqrt(np.mean((o[:, lo:hi] - r[:, lo:hi]) ** 2, axis=1))))

    cand = r[:, :cutoff] >= FLOOR_DB + HOLE_DB
    holes = (r[:, :cutoff] - o[:, :cutoff] >= HOLE_DB) & cand
    return {"lsd_full": lsd(0, r.shape[1]), "lsd_below": lsd(0, cutoff), "lsd_above": lsd(cutoff, _TOP_BIN),
            "holes": float(holes.sum() / max(1, cand.sum()))}


def _patch_filled_bins_phase(stage, keep_db: float = 6.0) -> None:
    """Evaluation only: the change proposed for realtime/phase.py's `decoded` method. A bin whose output
    magnitude exceeds |decoded| by more than keep_db (the gate filled it) gets no decoded phase: its decoded
    value is zeroed before the stage runs, so the stage takes a phase from its random table. The decoded
    phase of a near-empty bin is the window leakage of loud low bins (phase steps of pi between bins, i.e.
    energy at the frame edges), which the synthesis window cancels: about 16 dB of the filled band is lost.
    Unfilled bins keep the decoded phase exactly, so full-band input is still reproduced bit for bit."""
    original = stage.process
    ratio = 10 ** (keep_db / 20)

    def process(mag, decoded, out):
        d = decoded.copy()
        d[mag > np.abs(decoded) * ratio] = 0
        original(mag, d, out)

    stage.process = process


class EngineRunner:
    """Runs audio through a Restorer with the given model (48 kHz mono), latency compensated."""

    def __init__(self, model: str | Path, gate: bool = True, threads: int = 1, phase: str | None = None,
                 phase_fix: bool = False):
        from realtime.engine.restorer import Restorer

        self._tmp = tempfile.TemporaryDirectory()
        cfg = Path(self._tmp.name) / "eval.yaml"
        cfg.write_text(f"model:\n  path: '{Path(model).resolve()}'\n  threads: {threads}\n"
                       f"gate:\n  enabled: {'true' if gate else 'false'}\n"
                       + (f"phase:\n  method: {phase}\n" if phase else ""))
        self.restorer = Restorer.from_config(cfg)
        if phase_fix:
            _patch_filled_bins_phase(self.restorer.phase)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(samples,) at 48 kHz -> restored, aligned, same length (`Restorer.restore`)."""
        return self.restorer.restore(np.asarray(x, np.float32), MODEL_RATE_HZ)


def choose_clips(rows: list[dict], per_kind: int) -> list[dict]:
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
             gate: bool = True, phase: str | None = None, phase_fix: bool = False) -> dict:
    from tqdm import tqdm

    pairs_root = Path(pairs_root)
    man = json.loads((pairs_root / "manifest.json").read_text())
    val = [r for r in man["pairs"] if r["split"] == "val"]
    ref_rows = [r for r in val if r["codec"] == "mp3_32k_mono_48k"]
    nh_rows = {r["segment"]: r for r in val if r["codec"] == "mp3_128k_mono_48k"}
    clips = choose_clips(ref_rows, clips_per_kind)
    run = EngineRunner(model, gate=gate, phase=phase, phase_fix=phase_fix)
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
        audio_s += 2 * len(clean) / 48_000
        row = {"clip": r["segment"], "kind": r["kind"], "source": r["source"], "seconds": round(len(clean) / 48_000, 2),
               "cutoff_hz": round(cutoff * 48_000 / FFT_SIZE)}
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
            audio_s += len(clean) / 48_000
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
    return {"model": str(model), "gate": gate, "phase": (phase or "config default") + (" + filled-bin phase fix" if phase_fix else ""),
            "floor_db": FLOOR_DB,
            "active_db": ACTIVE_DB, "hole_db": HOLE_DB,
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
