"""Stereo benchmark (#12, item 3): restore left/right as they come, or mid and side, on stereo codecs?

    python -m benchmarks.stereo [--clips 6] [--seconds 6] [--json PATH] [--model auto]
    python -m benchmarks.stereo --quick        # CI smoke run: two synthetic 2 s stereo clips, QUICK_ENCODINGS

Joint- and intensity-stereo coders spend fewer bits on the side (L - R) than on the mid (L + R), so the
side loses more. The engine's `model.stereo` chooses: `channels` restores left and right apart,
`mid_side` (the default) restores the mid M = (L + R) / 2 and side S = (L - R) / 2 and turns them back
(L = M + S, R = M - S). Stereo music clips of the validation split (benchmarks/clips.py; the corpus keeps
music in stereo) are encoded in stereo (ENCODINGS) and decoded by ffmpeg to dithered 16-bit at 48 kHz (the
quality benchmark's usual chain), or only stored that way (`clean_*`: no-harm); systems: `codec` (the
decoded input), `gapfill_lr` (`channels`) and `gapfill_ms` (`mid_side`). Metrics (evaluation/metrics.py
`clip_metrics`, cutoff per channel from the decoded and clean long-term spectra): LSD full band, below and
above the cutoff and holes per channel, averaged over left and right, and the LSD of the side signal (how
the stereo image is restored); per condition the change against the decoded input in %, clips made worse
(mean full-band LSD up by more than WORSE_DB), how many clips the gate engaged on (any channel) and the
largest sample change.

Prints a Markdown table; writes JSON (`--json`): `benchmark`, `quick`, `environment`, `engine`, `clips`,
`clean_formats`, `encodings`, `per_clip` [{clip, condition, system, lsd_full, lsd_below, lsd_above, holes,
side_lsd_full, gate_engaged, max_abs_change}], `summary` {condition: {system: {metric: mean}, changes: {system:
{metric: %}}, clips_worse, gate_engaged, max_abs_change: {system: value}}}, `readme_table`, `wall_s`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from benchmarks.clips import Clip, stereo_clips
from benchmarks.signals import program_material
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, markdown_table, max_abs_change, mean_present, model_name,
    percent_change, run_main, write_json,
)
from benchmarks.quality import USUAL_CHAIN, WORSE_DB
from evaluation.chains import DecodeChain, Encoding, degrade, store
from evaluation.metrics import clip_metrics, codec_cutoff_bin, power_db
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.restorer import Restorer

CLEAN_FORMATS = ("float", "s16_tpdf")
ENCODINGS: dict[str, Encoding] = {
    "lame_32k": Encoding("lameenc", 32, channels=2),
    "lame_48k": Encoding("lameenc", 48, channels=2),
    "lame_64k": Encoding("lameenc", 64, channels=2),
    "libmp3lame_48k": Encoding("libmp3lame", 48, channels=2),
    "aac_32k": Encoding("aac", 32, channels=2),
    "aac_64k": Encoding("aac", 64, channels=2),
    "libvorbis_q0": Encoding("libvorbis", quality=0, channels=2),
    "libopus_32k": Encoding("libopus", 32, channels=2),
    "libtwolame_96k": Encoding("libtwolame", 96, channels=2),
}
QUICK_ENCODINGS = ("lame_32k", "aac_32k")
SYSTEMS = ("codec", "gapfill_lr", "gapfill_ms")
METRICS = ("lsd_full", "lsd_below", "lsd_above", "holes", "side_lsd_full")


def side(x: np.ndarray) -> np.ndarray:
    """(2, n) left/right -> (n,) side (L - R) / 2."""
    return ((x[0] - x[1]) / 2).astype(np.float32)


def stereo_metrics(reference: np.ndarray, output: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """clip_metrics per channel of (2, n) signals, averaged over left and right, plus the side's full-band LSD
    (cutoffs from the decoded input's long-term spectrum against the clean one, per signal)."""
    per_channel = []
    for c in range(2):
        reference_db = power_db(reference[c])
        cutoff = codec_cutoff_bin(reference_db, power_db(decoded[c]))
        per_channel.append(clip_metrics(reference[c], output[c], cutoff, reference_db))
    row = {k: float(np.mean([m[k] for m in per_channel])) for k in per_channel[0]}
    side_ref, side_dec, side_out = (side(s) for s in (reference, decoded, output))
    side_db = power_db(side_ref)
    row["side_lsd_full"] = clip_metrics(side_ref, side_out, codec_cutoff_bin(side_db, power_db(side_dec)),
                                        side_db)["lsd_full"]
    return row


def restore(restorer: Restorer, audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """(2, n) through the restorer, delay-compensated; whether its gate engaged."""
    out = restorer.restore(audio, MODEL_RATE_HZ)
    return out, bool(restorer.codec_report()["engaged"])


def synthetic_stereo_clips(seconds: float) -> list[Clip]:
    """Two music-like stereo clips (independent voices left and right) from fixed seeds, for --quick."""
    return [Clip(f"synthetic/stereo{seed}", "music", "benchmarks.signals",
                 program_material(seconds, MODEL_RATE_HZ, 2, seed)) for seed in (7, 8)]


def conditions(clip: np.ndarray, seed: int, encodings: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, reference, decoded) for a clean (2, n) clip: stored clean (CLEAN_FORMATS), then `encodings`."""
    for sample_format in CLEAN_FORMATS:
        stored = store(clip, DecodeChain(sample_format=sample_format), np.random.default_rng(seed))
        yield f"clean_{sample_format}", clip, np.ascontiguousarray(stored, dtype=np.float32)
    for name in encodings:
        reference, decoded, _ = degrade(clip, ENCODINGS[name], USUAL_CHAIN, seed=seed)
        yield name, reference, decoded


def run(clips: list[Clip], restorers: dict[str, Restorer], encodings: tuple[str, ...] = tuple(ENCODINGS),
        progress: bool = True) -> list[dict[str, Any]]:
    """Rows of metrics per clip, condition and system; `restorers`: gapfill system name -> Restorer."""
    rows = []
    for index, clip in enumerate(clips):
        for name, reference, decoded in conditions(clip.samples, index, encodings):
            outputs = {"codec": (decoded, False)} | {s: restore(r, decoded) for s, r in restorers.items()}
            for system, (output, engaged) in outputs.items():
                metrics = stereo_metrics(reference, output, decoded)
                rows.append({"clip": clip.id, "condition": name, "system": system, "gate_engaged": engaged,
                             **{k: None if np.isnan(v) else round(v, 4) for k, v in metrics.items()},
                             "max_abs_change": max_abs_change(output, decoded)})
        if progress:
            print(f"stereo: clip {index + 1}/{len(clips)} {clip.id}", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], encodings: tuple[str, ...] = tuple(ENCODINGS)) -> dict[str, Any]:
    """condition -> per system the mean of each metric; per gapfill system the change against the decoded
    input in %, clips worse, clips engaged and the largest sample change."""
    summary = {}
    for name in (*(f"clean_{f}" for f in CLEAN_FORMATS), *encodings):
        by_system = {s: [r for r in rows if r["condition"] == name and r["system"] == s] for s in SYSTEMS}
        means = {s: {m: mean_present([r[m] for r in rs]) for m in METRICS} for s, rs in by_system.items()}
        codec_by_clip = {r["clip"]: r for r in by_system["codec"]}
        summary[name] = {
            **means,
            "changes": {s: {m: percent_change(means[s][m], means["codec"][m]) for m in METRICS} for s in SYSTEMS[1:]},
            "clips_worse": {s: sum(r["lsd_full"] > codec_by_clip[r["clip"]]["lsd_full"] + WORSE_DB
                                   for r in by_system[s]) for s in SYSTEMS[1:]},
            "gate_engaged": {s: sum(r["gate_engaged"] for r in by_system[s]) for s in SYSTEMS[1:]},
            "max_abs_change": {s: max(r["max_abs_change"] for r in by_system[s]) for s in SYSTEMS[1:]},
        }
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"


def table(summary: dict[str, Any], clips: int) -> str:
    """The README table: per condition the decoded input's LSD and, for left/right then mid/side restoring,
    the changes, clips worse, clips engaged and the largest sample change ('-': the decoded value is 0)."""
    rows = []
    gapfill = SYSTEMS[1:]
    for name, block in summary.items():
        c = block["changes"]
        rows.append([name, f"{block['codec']['lsd_full']:.2f}", *(_percent(c[s]["lsd_full"]) for s in gapfill),
                     *(_percent(c[s]["holes"]) for s in gapfill), f"{block['codec']['side_lsd_full']:.2f}",
                     *(_percent(c[s]["side_lsd_full"]) for s in gapfill),
                     *(f"{block['clips_worse'][s]}/{clips}" for s in gapfill),
                     *(f"{block['gate_engaged'][s]}/{clips}" for s in gapfill),
                     *(f"{block['max_abs_change'][s]:.2g}" for s in gapfill)])
    return markdown_table(["stereo input", "decoded LSD dB", "LSD L/R", "LSD M/S", "holes L/R", "holes M/S",
                           "decoded side LSD dB", "side LSD L/R", "side LSD M/S", "worse L/R", "worse M/S",
                           "engaged L/R", "engaged M/S", "max change L/R", "max change M/S"], rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stereo", description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=6, help="stereo music clips of the validation split")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--model", default="auto", help=MODEL_CHOICES)
    p.add_argument("--config", default=None, help="engine YAML (default: the shipped settings)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="smoke run: two synthetic 2 s clips, QUICK_ENCODINGS")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    config = engine_config(args.config, args.model)
    restorers = {f"gapfill_{short}": Restorer(replace(config, model={**config.model, "stereo": stereo}))
                 for short, stereo in (("lr", "channels"), ("ms", "mid_side"))}
    clips = synthetic_stereo_clips(2.0) if args.quick else stereo_clips(args.clips, args.seconds)
    encodings = QUICK_ENCODINGS if args.quick else tuple(ENCODINGS)
    rows = run(clips, restorers, encodings)
    summary = summarise(rows, encodings)
    text = table(summary, len(clips))
    print(text)
    write_json({"benchmark": "stereo", "quick": args.quick, "environment": environment(),
                "engine": {"model": model_name(config), "gate": dict(config.gate)},
                "clean_formats": list(CLEAN_FORMATS),
                "clips": [{"id": c.id, "source": c.source, "seconds": c.samples.shape[1] / MODEL_RATE_HZ}
                          for c in clips],
                "encodings": {k: ENCODINGS[k].name for k in encodings}, "per_clip": rows, "summary": summary,
                "readme_table": text, "wall_s": round(time.perf_counter() - start, 1)}, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
