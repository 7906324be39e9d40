"""Codec gate no-harm benchmark (#23): clean sources whose own band ends in a cliff, at every bitrate.

    python -m benchmarks.gate_noharm [--clips 4] [--children 2] [--seconds 6] [--workers 1] [--config YAML]
        [--model PATH] [--as-files]
        [--variants NAME...] [--conditions NAME...] [--json PATH]
    python -m benchmarks.gate_noharm --quick     # CI smoke run: two synthetic 2 s clips, QUICK_VARIANTS x conditions

A clean source whose band ends at 8-12 kHz (an old recording, a 22.05 or 24 kHz file, a soundfont) has
the same steady cliff a low-bitrate codec's low-pass leaves; the gate must leave it alone (the decoded
spectrum synthesised bit for bit) while still engaging on what low bitrates do to it.

Clips of data v2 (`python -m training.data build`, data/v2/manifest.json), splits "val" and "test" only,
unaugmented: `--clips` each of speech, music and mix (stereo), spread over sources and units
(benchmarks/clips.py's `spread`), each cut to its most active `--seconds` (benchmarks/models.py's
`active_part`); and `--children` children's voices: tuxpaint stamp descriptions of the validation split
(spoken words, children and adults) and hedgewars voices of the validation split raised by CHILD_SEMITONES
(pitch and formants, training/data/augment.py's `shift_pitch`), scored full band only.

Band variants of each main clip (`VARIANTS`), the clean source every system is scored against:
`full`; `lp8k`, `lp11k`, `lp12k` (a zero-phase order-16 Butterworth low-pass, -6 dB at the frequency,
-55 dB 1.5 kHz above it); `rs22k`, `rs24k` (soxr VHQ to 22.05 / 24 kHz and back: a cliff at ~10.5 / 11.5
kHz); `at22k`, `at24k` (the file at 22.05 / 24 kHz itself, restored at that rate through the engine's
resampler; clean storage only; scored after soxr VHQ to 48 kHz, both the input and the output).

Conditions (`CONDITIONS`, through evaluation/chains.py's `degrade` and the dithered 16-bit ffmpeg decode at
48 kHz, benchmarks/quality.py's USUAL_CHAIN; a clip coded with its own channels unless the name says mono
or stereo), in three groups:
- `clean`: stored as float and as dithered 16-bit: must pass bit for bit;
- `no_harm`: LAME 128k and 96k (LAME's own cutoff is 16-20 kHz there, outside the gate's search range):
  must not engage;
- `low_bitrate`: LAME 32k mono and stereo, LAME 48k, libmp3lame 32 and 64k, AAC 32k, MP2 64k: what the
  gate is for.

System: the default engine (`Restorer`, the shipped model and settings; `--config` and `--model` change
them: a candidate model runs at the framing its metadata names), delay compensated; with `--as-files` its gate
is told, run by run, what a file of the condition's coding says in its header, as `gapfill restore` tells it
(benchmarks/common.py's `read_as_file`: low-rate MP3s' cliffs are the codec's, high-rate MP3s' the source's).
Per run: the gate's report (`Restorer.codec_report()`: engaged, cutoff, restored share, the model's
codec-made share and its damage share under the cliff, the evidence a band limit above `damage_from_hz`
needs), the LSD over the full band (evaluation/metrics.py, active frames) of the decoded input and of the
output against the clean source, worse (output LSD above the input's by more than quality.py's
WORSE_DB), the largest sample change. Summary per condition and variant: clips, engaged, worse, mean LSD.

Prints Markdown tables (README-ready); writes JSON (`--json`, default benchmarks/results/gate_noharm.json,
gate_noharm-quick.json with --quick): `benchmark`, `schema`, `quick`, `environment`, `engine` {model,
config, gate, as_files}, `corpus`, `clips` [{id, set, kind, source, channels, start_s, seconds, semitones}], `variants`,
`conditions` [quality.py's `Condition.describe`], `per_run` [{clip, set, kind, channels, variant,
condition, group, engaged, gate_cutoff_hz, restored_share, codec_made_share, damage_share, lsd_decoded,
lsd_restored, worse, max_abs_change}], `summary` {set: {condition: {variant: {clips, engaged, worse, lsd_decoded,
lsd_restored, max_abs_change}}}}, `timing_s`, `wall_s`, `readme_tables` {main_engaged, main_lsd,
children}.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import codec
from benchmarks.clips import DEFAULT_CORPUS, REPO, Clip, corpus_segments, spread, synthetic_clips
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, markdown_table, max_abs_change, mean_present, model_name,
    read_as_file, run_main, write_json,
)
from benchmarks.models import active_part, applies, degraded, encoding_for
from benchmarks.models import BY_NAME as MODEL_CONDITIONS
from benchmarks.quality import BY_NAME as QUALITY_CONDITIONS
from benchmarks.quality import CODEC_EXTRA_HINT, USUAL_CHAIN, WORSE_DB, Condition, names_chosen
from benchmarks.stereo import synthetic_stereo_clips
from evaluation.chains import Encoding, resample, store
from evaluation.metrics import power_db, spectrum_metrics
from realtime.engine.config import MODEL_RATE_HZ, EngineConfig
from realtime.errors import GapfillError

SCHEMA_VERSION = 1
DEFAULT_JSON = REPO / "benchmarks" / "results" / "gate_noharm.json"
QUICK_JSON = REPO / "benchmarks" / "results" / "gate_noharm-quick.json"
KINDS = ("speech", "music", "mix")
SPLITS = ("val", "test")
CHILD_SEMITONES = 6.0
LOWPASS_ORDER = 16


@dataclasses.dataclass(frozen=True)
class Variant:
    """A clean source's band: low-passed at `lowpass_hz`, or through `rate` Hz (soxr VHQ) and back; `native`:
    the file stays at `rate` and is restored there (clean storage only)."""

    name: str
    title: str
    lowpass_hz: float | None = None
    rate: int | None = None
    native: bool = False


VARIANTS = (
    Variant("full", "full band"),
    Variant("lp8k", "low-pass 8 kHz", lowpass_hz=8_000.0),
    Variant("lp11k", "low-pass 11 kHz", lowpass_hz=11_000.0),
    Variant("lp12k", "low-pass 12 kHz", lowpass_hz=12_000.0),
    Variant("rs22k", "via 22.05 kHz", rate=22_050),
    Variant("rs24k", "via 24 kHz", rate=24_000),
    Variant("at22k", "22.05 kHz file", rate=22_050, native=True),
    Variant("at24k", "24 kHz file", rate=24_000, native=True),
)
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}


def _coded(name: str, group: str, title: str, encoding: Encoding) -> Condition:
    return Condition(name, group, title, encoding, USUAL_CHAIN)


CONDITIONS: tuple[Condition, ...] = (
    dataclasses.replace(QUALITY_CONDITIONS["clean_float"], group="clean"),
    dataclasses.replace(QUALITY_CONDITIONS["clean_s16_tpdf"], group="clean"),
    dataclasses.replace(MODEL_CONDITIONS["lame_128k"], group="no_harm"),
    _coded("lame_96k", "no_harm", "LAME 96 kbit/s (lameenc)", Encoding("lameenc", 96, channels=2)),
    dataclasses.replace(MODEL_CONDITIONS["lame_32k_mono"], group="low_bitrate"),
    dataclasses.replace(MODEL_CONDITIONS["lame_32k_stereo"], group="low_bitrate"),
    _coded("lame_48k", "low_bitrate", "LAME 48 kbit/s (lameenc)", Encoding("lameenc", 48, channels=2)),
    *(dataclasses.replace(MODEL_CONDITIONS[name], group="low_bitrate")
      for name in ("libmp3lame_32k", "libmp3lame_64k", "aac_32k", "libtwolame_64k")),
)
BY_NAME = {c.name: c for c in CONDITIONS}
GROUPS = ("clean", "no_harm", "low_bitrate")
QUICK_VARIANTS = ("full", "lp11k", "at22k")
QUICK_CONDITIONS = ("clean_float", "lame_128k", "lame_32k_mono")

_worker: dict[str, Any] = {}


# -- clips and variants ---------------------------------------------------------------------------------
def _soxr(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    return np.ascontiguousarray(resample(np.ascontiguousarray(x, dtype=np.float32), in_rate, out_rate, "soxr_vhq"))


def band_limited(x: np.ndarray, variant: Variant) -> np.ndarray:
    """The clean source (channels, samples) float32 at 48 kHz of `variant` for clean x (channels, samples)."""
    if variant.lowpass_hz is not None:
        from scipy.signal import butter, sosfiltfilt

        sos = butter(LOWPASS_ORDER, variant.lowpass_hz, fs=MODEL_RATE_HZ, output="sos")
        return np.ascontiguousarray(sosfiltfilt(sos, x.astype(np.float64), axis=1), dtype=np.float32)
    if variant.rate is not None:
        return _soxr(_soxr(x, MODEL_RATE_HZ, variant.rate), variant.rate, MODEL_RATE_HZ)[:, : x.shape[1]]
    return np.ascontiguousarray(x, dtype=np.float32)


def corpus_clips(corpus: Path, per_kind: int, children: int, seconds: float) -> list[tuple[str, Clip, float, float]]:
    """(set, clip, start s, semitones): `per_kind` clips of each KINDS ('main'), then `children` tuxpaint
    clips and `children` hedgewars voices raised by CHILD_SEMITONES ('children'), none chosen twice."""
    from training.data.audio import load_segment
    from training.data.augment import shift_pitch

    segments = [s for s in corpus_segments(corpus) if s["split"] in SPLITS]
    chosen: list[tuple[str, dict, float]] = []
    for kind in KINDS:
        chosen += [("main", s, 0.0) for s in spread([s for s in segments if s["kind"] == kind], per_kind,
                                                     f"val/test {kind}")]
    taken = {s["id"] for _, s, _ in chosen}
    for source, semitones in (("tuxpaint", 0.0), ("hedgewars", CHILD_SEMITONES)):
        candidates = [s for s in segments if s["kind"] == "speech" and source in s["source"] and s["id"] not in taken]
        chosen += [("children", s, semitones) for s in spread(candidates, children, f"val/test {source} speech")]
    clips = []
    for set_name, s, semitones in chosen:
        audio = load_segment(corpus, s)
        if semitones:
            audio = shift_pitch(audio, semitones)
        samples, start = active_part(audio, seconds)
        name = s["id"] + (f"+{semitones:g}st" if semitones else "")
        kind = "child" if set_name == "children" else s["kind"]
        clips.append((set_name, Clip(name, kind, s.get("source", ""), samples), start, semitones))
    return clips


def quick_clips(seconds: float) -> list[tuple[str, Clip, float, float]]:
    """A synthetic mono speech clip and a synthetic stereo mix."""
    speech = synthetic_clips(seconds)[0]
    speech = dataclasses.replace(speech, samples=speech.samples.reshape(1, -1))
    mix = dataclasses.replace(synthetic_stereo_clips(seconds)[0], kind="mix")
    return [("main", speech, 0.0, 0.0), ("main", mix, 0.0, 0.0)]


def runs_of(set_name: str, variants: tuple[str, ...], conditions: tuple[str, ...],
            channels: int) -> list[tuple[str, str]]:
    """(variant, condition) pairs scored for a clip: children full band only; native-rate files stored clean
    only; stereo coding only for stereo clips."""
    names = ("full",) if set_name == "children" else variants
    return [(v, c) for v in names for c in conditions
            if applies(BY_NAME[c], channels) and not (VARIANT_BY_NAME[v].native and BY_NAME[c].encoding is not None)]


# -- scoring --------------------------------------------------------------------------------------------
def _init_worker(config: EngineConfig, as_files: bool) -> None:
    from realtime.engine.restorer import Restorer

    _worker["restorer"] = Restorer(config)
    _worker["as_files"] = as_files


def _lsd(reference: np.ndarray, signal: np.ndarray) -> float:
    """Full-band LSD (dB) of signal against reference, both (channels, samples) at 48 kHz, mean over channels."""
    values = []
    for c in range(reference.shape[0]):
        values.append(spectrum_metrics(power_db(reference[c]), power_db(signal[c]), 0)["lsd_full"])
    return round(float(np.mean(values)), 4)


def run_one(clip: Clip, variant: Variant, condition: Condition, seed: int) -> dict[str, Any]:
    """One clip's source in `variant` under `condition`, through the engine: the JSON row (module doc)."""
    restorer = _worker["restorer"]
    if _worker["as_files"]:
        read_as_file(restorer, encoding_for(condition, clip.samples.shape[0]), clip.samples.shape[0])
    source = band_limited(clip.samples, variant)
    if variant.native:
        stored = store(_soxr(clip.samples, MODEL_RATE_HZ, variant.rate), condition.chain, np.random.default_rng(seed))
        stored = np.ascontiguousarray(stored, dtype=np.float32)
        restored = restorer.restore(stored, variant.rate)
        change = max_abs_change(restored, stored)
        n = source.shape[1]
        decoded, restored = (_soxr(y, variant.rate, MODEL_RATE_HZ)[:, :n] for y in (stored, restored))
    else:
        source, decoded, _ = degraded(condition, source, seed)
        restored = restorer.restore(decoded, MODEL_RATE_HZ)
        change = max_abs_change(restored, decoded)
    report = restorer.codec_report()
    lsd_decoded, lsd_restored = _lsd(source, decoded), _lsd(source, restored)
    return {"clip": clip.id, "kind": clip.kind, "channels": int(decoded.shape[0]), "variant": variant.name,
            "condition": condition.name, "group": condition.group, "engaged": bool(report["engaged"]),
            "gate_cutoff_hz": report["cutoff_hz"], "restored_share": report["restored_share"],
            "codec_made_share": report["codec_made_share"], "damage_share": report["damage_share"],
            "lsd_decoded": lsd_decoded, "lsd_restored": lsd_restored,
            "worse": bool(lsd_restored - lsd_decoded > WORSE_DB), "max_abs_change": change}


def evaluate_clip(task: tuple[int, str, Clip, tuple[str, ...], tuple[str, ...]]) -> dict[str, Any]:
    """Every (variant, condition) of one clip (`runs_of`)."""
    index, set_name, clip, variants, conditions = task
    began = time.perf_counter()
    rows = [{"set": set_name, **run_one(clip, VARIANT_BY_NAME[v], BY_NAME[c], seed=index)}
            for v, c in runs_of(set_name, variants, conditions, clip.samples.shape[0])]
    return {"clip": clip.id, "rows": rows, "seconds": round(time.perf_counter() - began, 1)}


def run_clips(tasks: list[tuple], config: EngineConfig, workers: int, as_files: bool = False) -> list[dict[str, Any]]:
    """evaluate_clip for every task, in `workers` processes (1: in this process); `as_files`: the gate told
    what each coding's file header says (`read_as_file`)."""
    if workers <= 1:
        _init_worker(config, as_files)
        results = map(evaluate_clip, tasks)
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (config, as_files))
        results = pool.imap(evaluate_clip, tasks, chunksize=1)
    began, done = time.perf_counter(), []
    for result in results:
        done.append(result)
        print(f"gate_noharm: clip {len(done)}/{len(tasks)} ({result['clip']}) done after "
              f"{time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    if workers > 1:
        pool.close()
        pool.join()
    return done


# -- summary --------------------------------------------------------------------------------------------
def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """set -> condition -> variant -> {clips, engaged, worse, lsd_decoded, lsd_restored, max_abs_change}."""
    summary: dict[str, Any] = {}
    for row in rows:
        cell = summary.setdefault(row["set"], {}).setdefault(row["condition"], {}).setdefault(row["variant"], [])
        cell.append(row)
    return {s: {c: {v: {"clips": len(these), "engaged": sum(r["engaged"] for r in these),
                        "worse": sum(r["worse"] for r in these),
                        "lsd_decoded": mean_present([r["lsd_decoded"] for r in these]),
                        "lsd_restored": mean_present([r["lsd_restored"] for r in these]),
                        "max_abs_change": max(r["max_abs_change"] for r in these)}
                    for v, these in by_variant.items()}
                for c, by_variant in by_condition.items()}
            for s, by_condition in summary.items()}


def _ordered(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    conditions = [c.name for c in CONDITIONS if c.name in summary]
    variants = [v.name for v in VARIANTS if any(v.name in summary[c] for c in conditions)]
    return conditions, variants


def engaged_table(summary: dict[str, Any]) -> str:
    """Conditions x variants: 'engaged/clips' and the clips made worse ('w' after it, only when any)."""
    conditions, variants = _ordered(summary)
    rows = []
    for c in conditions:
        cells = []
        for v in variants:
            b = summary[c].get(v)
            worse = f" w{b['worse']}" if b is not None and b["worse"] else ""
            cells.append("" if b is None else f"{b['engaged']}/{b['clips']}{worse}")
        rows.append([BY_NAME[c].title, BY_NAME[c].group, *cells])
    return markdown_table(["condition", "group", *(VARIANT_BY_NAME[v].title for v in variants)], rows)


def lsd_table(summary: dict[str, Any]) -> str:
    """Conditions x variants: mean full-band LSD (dB) of the decoded input -> the output."""
    conditions, variants = _ordered(summary)
    rows = [[BY_NAME[c].title, *("" if (b := summary[c].get(v)) is None
                                 else f"{b['lsd_decoded']:.2f} -> {b['lsd_restored']:.2f}" for v in variants)]
            for c in conditions]
    return markdown_table(["condition", *(VARIANT_BY_NAME[v].title for v in variants)], rows)


def children_table(rows: list[dict[str, Any]]) -> str:
    """One line per children's clip: per condition group, engaged / runs and worse, and the clean LSD change."""
    clips = sorted({r["clip"] for r in rows if r["set"] == "children"})
    lines = []
    for clip in clips:
        mine = [r for r in rows if r["clip"] == clip]
        cells = []
        for group in GROUPS:
            these = [r for r in mine if r["group"] == group]
            cells.append(f"{sum(r['engaged'] for r in these)}/{len(these)}, w{sum(r['worse'] for r in these)}")
        clean = [r for r in mine if r["group"] == "clean"]           # none where --conditions left them out
        change = f"{max(r['max_abs_change'] for r in clean):.3g}" if clean else "-"
        share = f"{max(r['codec_made_share'] for r in clean):.3f}" if clean else "-"
        lines.append([clip, *cells, change, share])
    return markdown_table(["child-like clip", "clean: engaged, worse", "LAME 96-128k", "low bitrates",
                           "clean: max sample change", "clean: codec-made share"], lines)


def readme_tables(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, str]:
    tables = {"main_engaged": engaged_table(summary["main"]), "main_lsd": lsd_table(summary["main"])}
    if "children" in summary:
        tables["children"] = children_table(rows)
    return tables


# -- main -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate_noharm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", metavar="DIR", default=str(DEFAULT_CORPUS), help="data v2 (data/v2)")
    parser.add_argument("--clips", type=int, default=4, metavar="N", help=f"clips per kind, {', '.join(KINDS)} (4)")
    parser.add_argument("--children", type=int, default=2, metavar="N",
                        help="tuxpaint clips, and hedgewars voices raised in pitch, each (2)")
    parser.add_argument("--seconds", type=float, default=6.0, help="most active part of each clip scored, s (6)")
    parser.add_argument("--config", metavar="YAML", help="engine settings over the defaults")
    parser.add_argument("--model", default="default", help=f"model: {MODEL_CHOICES} (default: the shipped one)")
    parser.add_argument("--variants", nargs="+", metavar="NAME", help=f"only these, of: {', '.join(VARIANT_BY_NAME)}")
    parser.add_argument("--conditions", nargs="+", metavar="NAME", help=f"only these, of: {', '.join(BY_NAME)}")
    parser.add_argument("--as-files", action="store_true", help="tell the gate what each coding's file header "
                        "says, as `gapfill restore` does (gate.coded_input: auto)")
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--json", metavar="PATH", help="results (default benchmarks/results/gate_noharm.json, "
                        "gate_noharm-quick.json with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: two synthetic 2 s clips (mono "
                        f"speech, a stereo mix), variants {', '.join(QUICK_VARIANTS)}, conditions "
                        f"{', '.join(QUICK_CONDITIONS)}, one process")
    return parser.parse_args(argv)


def _chosen(wanted: list[str] | None, known: dict[str, Any], default: tuple[str, ...], what: str) -> tuple[str, ...]:
    return default if wanted is None else names_chosen(wanted, known, what)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if not codec.available() or shutil.which("ffmpeg") is None:
        raise GapfillError(f"the gate benchmark needs lameenc, miniaudio, soxr and ffmpeg ({CODEC_EXTRA_HINT})")
    if args.quick:
        args.seconds, args.workers = min(args.seconds, 2.0), 1
    variants = _chosen(args.variants, VARIANT_BY_NAME, QUICK_VARIANTS if args.quick else tuple(VARIANT_BY_NAME),
                       "variant")
    conditions = _chosen(args.conditions, BY_NAME, QUICK_CONDITIONS if args.quick else tuple(BY_NAME), "condition")
    config = engine_config(args.config, args.model)
    clips = quick_clips(args.seconds) if args.quick else corpus_clips(Path(args.corpus), args.clips, args.children,
                                                                       args.seconds)
    tasks = [(i, set_name, clip, variants, conditions) for i, (set_name, clip, _, _) in enumerate(clips)]
    results = run_clips(tasks, config, max(1, args.workers), args.as_files)
    rows = [row for result in results for row in result["rows"]]
    summary = summarise(rows)
    result = {
        "benchmark": "gate_noharm", "schema": SCHEMA_VERSION, "quick": bool(args.quick), "environment": environment(),
        "engine": {"model": model_name(config), "config": args.config, "gate": dict(config.gate),
                   "as_files": args.as_files},
        "corpus": None if args.quick else str(args.corpus),
        "clips": [{"id": c.id, "set": s, "kind": c.kind, "source": c.source, "channels": int(c.samples.shape[0]),
                   "start_s": round(start, 3), "seconds": round(c.samples.shape[1] / MODEL_RATE_HZ, 3),
                   "semitones": semitones} for s, c, start, semitones in clips],
        "variants": [dataclasses.asdict(VARIANT_BY_NAME[v]) for v in variants],
        "conditions": [BY_NAME[c].describe(("gapfill",), False) | {"group": BY_NAME[c].group} for c in conditions],
        "per_run": rows, "summary": summary,
        "timing_s": {r["clip"]: r["seconds"] for r in results},
    }
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["readme_tables"] = readme_tables(summary, rows)
    print(f"\ngapfill codec gate on clean band-limited sources: {len(clips)} clips, engine {model_name(config)} "
          f"({args.config or 'shipped settings'}); cells: clips the gate engaged on / clips, w = clips made worse "
          f"(full-band LSD up by more than {WORSE_DB} dB against the clean source)\n")
    print(result["readme_tables"]["main_engaged"], "\n\nFull-band LSD (dB), decoded -> restored\n")
    print(result["readme_tables"]["main_lsd"])
    if "children" in result["readme_tables"]:
        print("\nChildren's voices (full band)\n\n" + result["readme_tables"]["children"])
    print(f"\nbenchmark wall time {result['wall_s']:.0f} s")
    write_json(result, args.json or str(QUICK_JSON if args.quick else DEFAULT_JSON))
    return 0


if __name__ == "__main__":
    run_main(main)
