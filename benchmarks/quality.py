"""Restoration quality benchmark (issue #6): gapfill against the codec output and simple baselines.

    python -m benchmarks.quality [--json PATH] [--png PATH] [--clips 6] [--seconds 8]
    python -m benchmarks.quality --quick          # CI smoke run: two synthetic 2 s clips, 32 kbit/s only

For every validation clip (never a training one, see benchmarks/clips.py), mixed to mono at 48 kHz, and for
every condition (clean input, and MP3 CBR at 24, 32, 48 and 64 kbit/s, mono, encoded and decoded by the
training pairs' chain in realtime/train/pairs.py: LAME -q 2, minimp3, codec delay removed at the MP3's
rate, soxr to 48 kHz; the residual lag is reported per clip), these systems are scored against the clean
clip:
- `codec`: the decoded input as it is (for the clean condition, the clean clip itself);
- `treble_shelf`, `noise_fill`: what a user could reach for instead (benchmarks/baselines.py);
- `gapfill[decoded]`, `gapfill[rtpghi]`, `gapfill[completion]`: the Restorer with each phase method,
  delay-compensated (output sample t is input sample t), everything else as configured.
Metrics: the training's validation metrics (realtime/train/evaluate.py: log-spectral distance over the full
band, below the codec cutoff and from it to 20 kHz, the hole ratio below the cutoff; the cutoff found by
comparing the decoded and clean long-term spectra) and ViSQOL v3 in audio mode (MOS-LQO, visqol-python
3.8.0; its identity score is checked against the reference implementation's conformance value). Per
clip and averaged for speech and music. The baselines find the cutoff blind, from the decoded signal.

Writes JSON (`--json`) and a PNG of spectrograms (`--png`: clean / MP3 32 kbit/s / restored for one
speech and one music clip, one colour scale), and prints one table per condition.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import codec
from benchmarks.baselines import noise_fill, treble_shelf
from benchmarks.clips import Clip, synthetic_clips, validation_clips
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, format_table, markdown_table, model_name, restore_offline,
    run_main, write_json,
)
from benchmarks.baselines import detect_cutoff_hz
from realtime.errors import GapfillError
from realtime.train.evaluate import FFT_SIZE, clip_metrics, codec_cutoff_bin, power_db

SAMPLE_RATE = 48_000
BITRATES_KBPS = (24, 32, 48, 64)
PHASE_METHODS = ("decoded", "rtpghi", "completion")
BASELINES = ("codec", "treble_shelf", "noise_fill")
SYSTEMS = BASELINES + tuple(f"gapfill/{m}" for m in PHASE_METHODS)
METRICS = ("lsd_full", "lsd_below", "lsd_above", "holes", "visqol")  # evaluate.py's names, and ViSQOL
VISQOL_VERSION = "3.8.0"
VISQOL_IDENTITY_REFERENCE = 4.732101253042348  # google/visqol src/include/conformance.h, v333
VISQOL_TOLERANCE = 1e-4  # the reference implementation's conformance tolerance
VISQOL_EXTRA_HINT = "pip install 'gapfill[quality]'"
CODEC_EXTRA_HINT = "pip install 'gapfill[train]'"
SCHEMA_VERSION = 1

_worker: dict[str, Any] = {}


# -- ViSQOL --------------------------------------------------------------------------------------------
def visqol_status() -> tuple[bool, str]:
    """(usable, why not or version): visqol-python of the verified version is importable."""
    try:
        import visqol
    except ImportError:
        return False, f"visqol-python is not installed ({VISQOL_EXTRA_HINT})"
    version = getattr(visqol, "__version__", "?")
    if version != VISQOL_VERSION:
        return False, f"visqol-python {version} found, {VISQOL_VERSION} is the version checked for conformance"
    return True, version


def _as_16_bit(x: np.ndarray) -> np.ndarray:
    """What a 16-bit WAV of x holds, as float64 (the reference implementation reads WAV files)."""
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0) / 32768.0


def visqol_score(reference: np.ndarray, test: np.ndarray) -> float:
    """ViSQOL v3 audio-mode MOS-LQO of test against reference, both mono (samples,) at 48 kHz."""
    api = _worker["visqol"]
    result = api.measure_from_arrays(_as_16_bit(reference), _as_16_bit(test), sample_rate=SAMPLE_RATE)
    return float(result.moslqo)


# -- per clip -----------------------------------------------------------------------------------------
def _init_worker(config_path: str | None, model: str, use_visqol: bool) -> None:
    from realtime.restorer import Restorer

    _worker["restorers"] = {m: Restorer(engine_config(config_path, model, phase_method=m)) for m in PHASE_METHODS}
    if use_visqol:
        from visqol import VisqolApi

        api = VisqolApi()
        api.create(mode="audio")
        _worker["visqol"] = api


def system_outputs(decoded: np.ndarray, cutoff_hz: float | None) -> dict[str, np.ndarray]:
    """Every system's output for one decoded mono signal (samples,), aligned with it."""
    outputs = {"codec": decoded, "treble_shelf": treble_shelf(decoded), "noise_fill": noise_fill(decoded, cutoff_hz)}
    for method, restorer in _worker["restorers"].items():
        outputs[f"gapfill/{method}"] = restore_offline(restorer, decoded[None, :], SAMPLE_RATE)[0]
    return outputs


def evaluate_clip(task: tuple[int, Clip, tuple[str, ...], bool]) -> dict[str, Any]:
    """Score every system under every condition for one clip; clip 0 also runs the ViSQOL identity check."""
    index, clip, conditions, use_visqol = task
    clean = clip.samples
    rows: list[dict[str, Any]] = []
    seconds = {"codec": 0.0, "systems": 0.0, "spectral": 0.0, "visqol": 0.0}
    facts: dict[str, Any] = {}
    if index == 0 and use_visqol:
        start = time.perf_counter()
        facts["visqol_identity"] = visqol_score(clean, clean)
        seconds["visqol"] += time.perf_counter() - start
    clean_db = power_db(clean)
    for condition in conditions:
        start = time.perf_counter()
        if condition == "clean":
            decoded, codec_facts = clean, {}
        else:
            coded, codec_facts = codec.mp3_roundtrip(clean[None, :], bitrate_of(condition))
            decoded = coded[0]
        cutoff_bin = codec_cutoff_bin(clean_db, power_db(decoded))
        seconds["codec"] += time.perf_counter() - start
        start = time.perf_counter()
        outputs = system_outputs(decoded, None if condition == "clean" else detect_cutoff_hz(decoded))
        seconds["systems"] += time.perf_counter() - start
        for system, output in outputs.items():
            start = time.perf_counter()
            row = {"clip": clip.id, "kind": clip.kind, "condition": condition, "system": system,
                   "cutoff_hz": round(cutoff_bin * SAMPLE_RATE / FFT_SIZE), **codec_facts,
                   **clip_metrics(clean, output, cutoff_bin, clean_db)}
            seconds["spectral"] += time.perf_counter() - start
            if use_visqol:
                start = time.perf_counter()
                row["visqol"] = visqol_score(clean, output)
                seconds["visqol"] += time.perf_counter() - start
            else:
                row["visqol"] = None
            rows.append({k: _json_number(v) for k, v in row.items()})
    return {"clip": clip.id, "rows": rows, "facts": facts, "seconds": {k: round(v, 2) for k, v in seconds.items()}}


def run_clips(clips: list[Clip], conditions: tuple[str, ...], config_path: str | None, model: str,
              use_visqol: bool, workers: int) -> list[dict[str, Any]]:
    """evaluate_clip for every clip, in `workers` processes (1: in this process)."""
    tasks = [(i, clip, conditions, use_visqol) for i, clip in enumerate(clips)]
    if workers <= 1:
        _init_worker(config_path, model, use_visqol)
        return [evaluate_clip(task) for task in tasks]
    saved = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"  # one core per worker (ViSQOL's kernels are parallel)
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _init_worker, (config_path, model, use_visqol)) as pool:
            return pool.map(evaluate_clip, tasks, chunksize=1)
    finally:
        if saved is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = saved


def _json_number(value: Any) -> Any:
    """Floats rounded to 4 decimals; NaN (a metric undefined for this clip) as None."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, 4)
    return value


# -- summary -------------------------------------------------------------------------------------------
def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 4) if present else None


def summarise(rows: list[dict[str, Any]], conditions: tuple[str, ...]) -> dict[str, Any]:
    """condition -> system -> metric -> {speech, music, all} means over clips (None where undefined)."""
    summary: dict[str, Any] = {}
    for condition in conditions:
        block: dict[str, Any] = {}
        cut = [r["cutoff_hz"] for r in rows if r["condition"] == condition and r["system"] == "codec"]
        for system in SYSTEMS:
            mine = [r for r in rows if r["condition"] == condition and r["system"] == system]
            block[system] = {metric: {"speech": _mean([r[metric] for r in mine if r["kind"] == "speech"]),
                                      "music": _mean([r[metric] for r in mine if r["kind"] == "music"]),
                                      "all": _mean([r[metric] for r in mine])} for metric in METRICS}
        summary[condition] = {"cutoff_hz_mean": _mean(cut), "systems": block}
    return summary


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bitrate_of(condition: str) -> int:
    """The bitrate in kbit/s of a condition named 'mp3_<kbps>k'."""
    return int(condition[len("mp3_"):-1])


def condition_title(condition: str, cutoff_hz: float | None) -> str:
    if condition == "clean":
        return "clean input (bands split at 20 kHz)"
    cutoff = "" if cutoff_hz is None else f" (cutoff {cutoff_hz / 1000:.1f} kHz)"
    return f"MP3 {bitrate_of(condition)} kbit/s{cutoff}"


def print_report(result: dict[str, Any]) -> None:
    print(f"gapfill quality benchmark: model {result['engine']['model']}, default phase "
          f"{result['engine']['phase_method']}; {len(result['clips'])} clips ({result['clip_source']}); "
          f"ViSQOL: {result['visqol']['status']}\n")
    headers = ["system", "LSD full", "LSD <cut", "LSD >cut", "holes <cut", "ViSQOL speech", "ViSQOL music"]
    for condition, block in result["summary"].items():
        rows = []
        for system, metrics in block["systems"].items():
            rows.append([system] + [_cell(metrics[m]["all"]) for m in ("lsd_full", "lsd_below", "lsd_above")]
                        + [_cell(metrics["holes"]["all"], 3), _cell(metrics["visqol"]["speech"]),
                           _cell(metrics["visqol"]["music"])])
        print(format_table(headers, rows, condition_title(condition, block["cutoff_hz_mean"])
                           + ": LSD in dB (lower is better), holes = share of reference bins left 20 dB low, "
                           "ViSQOL MOS-LQO (1 to 5)"))
        print()
    print(f"benchmark wall time {result['wall_s']:.1f} s")


def readme_tables(result: dict[str, Any]) -> dict[str, str]:
    """Markdown for README: `overview` (every condition: ViSQOL of the codec output, the baselines and
    gapfill with the default phase; LSD and holes of the codec output and gapfill) and `mp3_32k` (every
    system, phase variants included, at the reference bitrate)."""
    default = f"gapfill/{result['engine']['phase_method']}"
    rows = []
    for condition, block in result["summary"].items():
        m = block["systems"]
        rows.append([condition_title(condition, block["cutoff_hz_mean"])]
                    + [_cell(m[s]["visqol"]["all"]) for s in ("codec", "treble_shelf", "noise_fill", default)]
                    + [_cell(m[s][metric]["all"], 3 if metric == "holes" else 2)
                       for metric in ("lsd_full", "holes") for s in ("codec", default)])
    overview = markdown_table(["input", "ViSQOL codec", "ViSQOL treble shelf", "ViSQOL noise fill", "ViSQOL gapfill",
                               "LSD codec (dB)", "LSD gapfill (dB)", "holes codec", "holes gapfill"], rows)
    tables = {"overview": overview}
    if "mp3_32k" in result["summary"]:
        systems = result["summary"]["mp3_32k"]["systems"]
        tables["mp3_32k"] = markdown_table(
            ["system (MP3 32 kbit/s)", "LSD full", "LSD below cutoff", "LSD above cutoff", "holes",
             "ViSQOL speech", "ViSQOL music"],
            [[s] + [_cell(m[k]["all"]) for k in ("lsd_full", "lsd_below", "lsd_above")]
             + [_cell(m["holes"]["all"], 3), _cell(m["visqol"]["speech"]), _cell(m["visqol"]["music"])]
             for s, m in systems.items()])
    return tables


# -- figure ---------------------------------------------------------------------------------------------
def render_figure(clips: list[Clip], config_path: str | None, model: str, phase_method: str,
                  png: Path) -> dict[str, Any] | None:
    """Spectrograms clean / MP3 32 kbit/s / restored of the first speech and first music clip, colours in dB
    re the loudest bin of each row; {"path", "clips"}, or None (reason printed) without matplotlib."""
    from realtime.restorer import Restorer
    from realtime.spectrogram import Panel, render

    restorer = Restorer(engine_config(config_path, model, phase_method=phase_method))
    rows, titles, shown = [], [], []
    for kind in ("speech", "music"):
        clip = next((c for c in clips if c.kind == kind), None)
        if clip is None:
            continue
        coded, _ = codec.mp3_roundtrip(clip.samples[None, :], 32)
        restored = restore_offline(restorer, coded, SAMPLE_RATE)[0]
        rows.append([Panel("clean", clip.samples, SAMPLE_RATE), Panel("MP3 32 kbit/s", coded[0], SAMPLE_RATE),
                     Panel("gapfill", restored, SAMPLE_RATE)])
        titles.append(kind)
        shown.append(clip.id)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        render(rows, png, row_titles=titles, per_row=True)
    except GapfillError as exc:
        print(f"quality: no picture: {exc}")
        return None
    return {"path": str(png), "clips": shown}


# -- main -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--png", metavar="PATH", help="write the spectrogram figure (needs matplotlib)")
    parser.add_argument("--config", metavar="FILE", help="engine settings (YAML) over the shipped defaults")
    parser.add_argument("--model", default="auto", help=f"model: {MODEL_CHOICES} (default auto: the shipped U-Net "
                        "if models/ has it, else the config's)")
    parser.add_argument("--clips", type=int, default=6, help="validation clips per kind, speech and music (6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="longest clip in seconds (8)")
    parser.add_argument("--corpus", metavar="DIR", help="corpus directory (default data/clean)")
    parser.add_argument("--bitrates", type=int, nargs="+", default=list(BITRATES_KBPS), help="MP3 bitrates in kbit/s")
    parser.add_argument("--no-visqol", action="store_true", help="skip ViSQOL (the spectral metrics only)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic clips instead of the corpus")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: two synthetic 2 s clips, clean and 32 kbit/s, one process")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if not codec.available():
        raise GapfillError(f"the quality benchmark needs lameenc, miniaudio and soxr ({CODEC_EXTRA_HINT})")
    if args.quick:
        args.synthetic, args.seconds, args.bitrates, args.workers = True, min(args.seconds, 2.0), [32], 1
    config = engine_config(args.config, args.model)
    model = config.model["path"]
    if args.synthetic:
        clips, clip_source = synthetic_clips(args.seconds), "synthetic (benchmarks.signals)"
    else:
        from benchmarks.clips import DEFAULT_CORPUS

        corpus = Path(args.corpus) if args.corpus else DEFAULT_CORPUS
        clips, clip_source = validation_clips(args.clips, args.seconds, corpus), f"validation split of {corpus}"
    use_visqol, visqol_note = (False, "skipped (--no-visqol)") if args.no_visqol else visqol_status()
    conditions = ("clean",) + tuple(f"mp3_{b}k" for b in args.bitrates)
    results = run_clips(clips, conditions, args.config, model, use_visqol, max(1, args.workers))
    rows = [row for clip_result in results for row in clip_result["rows"]]
    identity = next((r["facts"]["visqol_identity"] for r in results if "visqol_identity" in r["facts"]), None)
    visqol_facts = {"used": use_visqol,
                    "status": f"visqol-python {visqol_note}, audio mode" if use_visqol else visqol_note}
    if use_visqol:
        conforms = identity is not None and abs(identity - VISQOL_IDENTITY_REFERENCE) <= VISQOL_TOLERANCE
        visqol_facts["conformance"] = {
            "check": "a clip scored against itself; the reference implementation's kConformanceCastanetsIdentity",
            "measured": identity, "expected": VISQOL_IDENTITY_REFERENCE, "tolerance": VISQOL_TOLERANCE,
            "ok": conforms}
        if not conforms:
            raise GapfillError(f"ViSQOL identity score {identity} differs from the reference "
                               f"{VISQOL_IDENTITY_REFERENCE}: not the verified implementation")
    figure = None
    if args.png:
        figure = render_figure(clips, args.config, model, config.phase["method"], Path(args.png))
    result = {
        "benchmark": "quality", "schema": SCHEMA_VERSION, "quick": bool(args.quick), "environment": environment(),
        "engine": {"model": model_name(config), "phase_method": config.phase["method"],
                   "gate": bool(config.gate["enabled"])},
        "clip_source": clip_source, "conditions": list(conditions), "systems": list(SYSTEMS),
        "metrics": list(METRICS),
        "clips": [{"id": c.id, "kind": c.kind, "source": c.source, "seconds": round(len(c.samples) / SAMPLE_RATE, 3)}
                  for c in clips],
        "visqol": visqol_facts, "summary": summarise(rows, conditions), "per_clip": rows,
        "timing_s": {k: round(sum(r["seconds"][k] for r in results), 1) for k in results[0]["seconds"]},
        "figure": figure,
    }
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["readme_tables"] = readme_tables(result)
    print_report(result)
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
