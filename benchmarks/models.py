"""Model benchmark (#23, item 5): a candidate model against the shipped one and the decoded input, in one run.

    python -m benchmarks.models --candidate runs/v2/ablation/v2.onnx [--candidate-config FILE]
        [--test-clips 48] [--val-clips 4] [--seconds 6] [--visqol key] [--as-files] [--workers 1] [--json PATH]
    python -m benchmarks.models --quick      # CI smoke run: two synthetic 2 s clips, QUICK_CONDITIONS, no ViSQOL

Clips of data v2 (`python -m training.data build`, data/v2/manifest.json) that no model trained on:
- `test`: the dense stereo mixes of split "test" (`--test-clips`, all 48 by default);
- `val`: split "val" per kind, speech (mono), music and mix (stereo), `--val-clips` each, spread over as
  many sources and units as possible (benchmarks/clips.py's order); augmented copies are left out.
Every clip is cut to its most active `--seconds` (`active_part`).

Conditions (`CONDITIONS`; benchmarks/quality.py's `Condition`), each through the dithered 16-bit ffmpeg decode
at 48 kHz (quality.py's USUAL_CHAIN, evaluation/chains.py's `degrade`): LAME 32 kbit/s mono (a stereo clip's
mid) and stereo (stereo clips only; LAME codes it at 16 kHz, low-pass ~5.5 kHz), ffmpeg's libmp3lame
32/48/64 kbit/s (joint stereo), AAC 32k, MP2 64k and the no-harm set Vorbis q0, Opus 16k and 32k, AAC 64k,
LAME 128k; every other condition codes a clip with its own channels (mono clips mono, stereo stereo). The
clean clip stored as 16-bit and as float must come out unchanged (the largest sample change is reported).

Systems: `codec` (the decoded input), `shipped` (the shipped model with the shipped settings, today's
default engine) and `candidate` (`--candidate` ONNX file; its framing, stft fft_size / hop / window, from
the model's metadata, or every setting from `--candidate-config` YAML over the defaults). Stereo runs
through the engine as stereo (its mid/side path); with `--as-files` both models' gates are told, run by run,
what a file of the condition's coding says in its header, as `gapfill restore` tells them (benchmarks/common.py's
`read_as_file`). Metrics per clip, per channel and averaged over channels
(evaluation/metrics.py; the cutoff from each channel's decoded and clean long-term spectra): LSD full,
below and above the cutoff (dB), holes (share), level error above the cutoff (dB, < 0: too quiet) and
ViSQOL v3 audio mode (quality.py's `visqol_score`, per channel; `--visqol key`: KEY_CONDITIONS, `all`:
every coded condition, `none`). Per condition and clip group (test mix; val speech, music, mix): means,
each model against the decoded input (LSD and holes change in %, ViSQOL difference, clips worse: LSD full
up by more than quality.py's WORSE_DB, clips the gate engaged on, largest sample change) and the
candidate against the shipped model (LSD change in %, ViSQOL difference, clips worse and better).

Before it runs it prints its CPU estimate on one free core (`estimate_s`, COST_S). The defaults (all 48 test
mixes, 4 validation clips per kind, 6 s each, `--visqol key`) take about 40 minutes; the engine's two models
are about half of it, ViSQOL a third.

Prints Markdown tables (README-ready); writes JSON (`--json`, default benchmarks/results/models.json):
`benchmark`, `schema`, `quick`, `environment`, `engines` {shipped, candidate: {model, path, stft, settings}},
`as_files`, `corpus`, `clips` [{id, set, kind, source, unit, channels, start_s, seconds}], `conditions` [quality.py's
`Condition.describe`, plus `visqol`], `groups`, `visqol` {used, status, selection, conformance},
`per_clip` [{clip, set, kind, group, channels, condition, encoding, system, cutoff_hz, lag_samples,
residual_lag_samples, lsd_full, lsd_below, lsd_above, holes, level_above_db, crest_above_db, peak (evaluation/
metrics.py), visqol; models also
gate_engaged, max_abs_change}], `summary` {condition: {group: {clips, cutoff_hz_mean, systems {system:
{metric: mean}}, models {shipped, candidate: {lsd_change_pct, lsd_above_change_pct, holes_change_pct,
visqol_delta, clips_worse, gate_engaged, max_abs_change}}, candidate_vs_shipped {lsd_change_pct,
visqol_delta, clips_worse, clips_better}}}}, `estimate_s`, `timing_s`, `cpu_s`, `wall_s`, `readme_tables`.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import codec, quality
from benchmarks.clips import DEFAULT_CORPUS, REPO, Clip, corpus_segments, spread, synthetic_clips
from benchmarks.common import (
    engine_config, environment, map_clips, markdown_table, max_abs_change, mean_present, model_name, model_setting,
    percent_change, read_as_file, run_main, write_json,
)
from benchmarks.quality import (
    BY_NAME as QUALITY_CONDITIONS, CODEC_EXTRA_HINT, USUAL_CHAIN, VISQOL_CHOICES, WORSE_DB, Condition, names_chosen,
    start_visqol, visqol_facts, visqol_score, visqol_status,
)
from benchmarks.stereo import synthetic_stereo_clips
from evaluation.chains import Encoding, degrade, store
from evaluation.metrics import (
    bin_hz, codec_cutoff_bin, crest_excess_above, level_error_above, power_db, spectrum_metrics,
)
from realtime.engine.config import MODEL_RATE_HZ, EngineConfig, load_config
from realtime.engine.model_files import model_file
from realtime.errors import GapfillError

SCHEMA_VERSION = 1
DEFAULT_JSON = REPO / "benchmarks" / "results" / "models.json"
QUICK_JSON = REPO / "benchmarks" / "results" / "models-quick.json"
SYSTEMS = ("codec", "shipped", "candidate")
MODELS = SYSTEMS[1:]
METRICS = ("lsd_full", "lsd_below", "lsd_above", "holes", "level_above_db", "crest_above_db", "peak", "visqol")
VAL_KINDS = ("speech", "music", "mix")
GROUPS = ("test_mix", *(f"val_{kind}" for kind in VAL_KINDS))
"""Clip groups of the summary: `<set>_<kind>`."""
GROUP_TITLES = {"test_mix": "Test set: dense stereo mixes", "val_speech": "Validation: speech",
                "val_music": "Validation: music", "val_mix": "Validation: mixes"}


def _coded(name: str, group: str, title: str, encoding: Encoding) -> Condition:
    return Condition(name, group, title, encoding, USUAL_CHAIN)


CONDITIONS: tuple[Condition, ...] = (
    QUALITY_CONDITIONS["clean_s16"],
    QUALITY_CONDITIONS["clean_float"],
    _coded("lame_32k_mono", "mp3", "LAME 32 kbit/s mono (lameenc)", Encoding("lameenc", 32)),
    _coded("lame_32k_stereo", "mp3", "LAME 32 kbit/s stereo (lameenc)", Encoding("lameenc", 32, channels=2)),
    *(_coded(f"libmp3lame_{b}k", "mp3", f"libmp3lame {b} kbit/s, joint stereo (ffmpeg)",
             Encoding("libmp3lame", b, channels=2)) for b in (32, 48, 64)),
    _coded("aac_32k", "codecs", "AAC-LC 32 kbit/s (ffmpeg aac)", Encoding("aac", 32, channels=2)),
    _coded("libtwolame_64k", "codecs", "MP2 64 kbit/s (twolame)", Encoding("libtwolame", 64, channels=2)),
    _coded("libvorbis_q0", "no_harm", "Vorbis q0", Encoding("libvorbis", quality=0, channels=2)),
    _coded("libopus_16k", "no_harm", "Opus 16 kbit/s", Encoding("libopus", 16, channels=2)),
    _coded("libopus_32k", "no_harm", "Opus 32 kbit/s", Encoding("libopus", 32, channels=2)),
    _coded("aac_64k", "no_harm", "AAC-LC 64 kbit/s (ffmpeg aac)", Encoding("aac", 64, channels=2)),
    _coded("lame_128k", "no_harm", "LAME 128 kbit/s (lameenc)", Encoding("lameenc", 128, channels=2)),
)
BY_NAME = {c.name: c for c in CONDITIONS}
FIXED_CHANNELS = {"lame_32k_mono": 1, "lame_32k_stereo": 2}
"""Conditions coded with these channels whatever the clip's (mono: its mid; stereo: stereo clips only)."""
KEY_CONDITIONS = tuple(c.name for c in CONDITIONS if c.group == "mp3")
"""Where `--visqol key` measures: every MP3 condition of issue #23's bars (ViSQOL up by 1.0 / 1.5)."""
QUICK_CONDITIONS = ("clean_s16", "libmp3lame_32k")
COST_S = {"decode": 0.03, "models": 0.06, "spectral": 0.006, "visqol": 0.18}
"""CPU seconds on one free core per audio second of one channel, measured on the development machine (Xeon,
2 cores): the degrade chain, one model through the engine (model v1 0.066, v2 at hop 128 0.043),
the spectra of one system, one ViSQOL score."""
ACTIVE_FRAME_S, ACTIVE_RANGE_DB = 0.1, 30.0

_worker: dict[str, Any] = {}


# -- clips ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ClipSet:
    """The clips of one set (`test` or `val`), each with where its samples start in the segment (s)."""

    name: str
    clips: list[Clip]
    starts_s: list[float]
    units: list[str]


def active_part(x: np.ndarray, seconds: float) -> tuple[np.ndarray, float]:
    """(x[:, start:start + seconds], start in s) for x (channels, samples) at 48 kHz: the stretch with the most
    0.1 s frames within ACTIVE_RANGE_DB of the loudest frame (the earliest of equals); x itself if shorter."""
    n = int(round(seconds * MODEL_RATE_HZ))
    if x.shape[1] <= n:
        return x, 0.0
    frame = int(ACTIVE_FRAME_S * MODEL_RATE_HZ)
    frames = x.shape[1] // frame
    energy = np.mean(x[:, : frames * frame].astype(np.float64).reshape(x.shape[0], frames, frame) ** 2, axis=(0, 2))
    level_db = 10 * np.log10(energy + 1e-20)
    active = (level_db > level_db.max() - ACTIVE_RANGE_DB).astype(np.int64)
    window = max(1, min(frames, n // frame))
    counts = np.convolve(active, np.ones(window, np.int64), mode="valid")
    start = min(int(np.argmax(counts)) * frame, x.shape[1] - n)
    return np.ascontiguousarray(x[:, start: start + n]), start / MODEL_RATE_HZ


def corpus_clips(corpus: Path, test_clips: int | None, val_clips: int, seconds: float,
                 val_kinds: tuple[str, ...] = VAL_KINDS) -> list[ClipSet]:
    """The test set (`test_clips` of split "test", None: all) and `val_clips` per kind of `val_kinds` of split "val",
    spread over sources and units, unaugmented, each cut to its most active `seconds`."""
    from training.data.audio import load_segment

    segments = corpus_segments(corpus)
    wanted = {"test": [("mix", test_clips)], "val": [(kind, val_clips) for kind in val_kinds]}
    sets = []
    for split, kinds in wanted.items():
        chosen: list[tuple[str, dict]] = []
        for kind, count in kinds:
            candidates = [s for s in segments if s["split"] == split and s["kind"] == kind]
            count = len(candidates) if count is None else count
            chosen += [(kind, s) for s in spread(candidates, count, f"{split} {kind}")]
        clips, starts = [], []
        for kind, s in chosen:
            samples, start = active_part(load_segment(corpus, s), seconds)
            clips.append(Clip(s["id"], kind, s.get("source", ""), samples))
            starts.append(start)
        sets.append(ClipSet(split, clips, starts, [s.get("unit", "") for _, s in chosen]))
    return sets


def quick_clips(seconds: float) -> list[ClipSet]:
    """A synthetic stereo 'mix' as the test set and a synthetic mono speech clip as the validation set."""
    speech = synthetic_clips(seconds)[0]
    mix = dataclasses.replace(synthetic_stereo_clips(seconds)[0], kind="mix")
    speech = dataclasses.replace(speech, samples=speech.samples.reshape(1, -1))
    return [ClipSet("test", [mix], [0.0], [""]), ClipSet("val", [speech], [0.0], [""])]


# -- engines --------------------------------------------------------------------------------------------
def candidate_config(path: str, config_path: str | None) -> tuple[EngineConfig, str]:
    """(engine config, where its settings come from) of the candidate model at `path`: every setting from
    `config_path` over the defaults, or the defaults (whose framing is the model's own, from its metadata)."""
    resolved = model_setting(path, load_config())
    config = load_config(config_path, {"model": {"path": resolved}})
    return config, config_path or ("model metadata" if Path(resolved).is_file() else "the shipped settings")


def describe_engine(config: EngineConfig, settings: str) -> dict[str, Any]:
    """An engine in the JSON: model name and file, stft settings, where its settings come from."""
    path = config.model["path"]
    return {"model": model_name(config), "path": str(model_file(path)),
            "stft": dict(config.stft), "settings": settings}


# -- conditions -----------------------------------------------------------------------------------------
def applies(condition: Condition, channels: int) -> bool:
    """Whether `condition` scores a clip of `channels` (stereo coding needs a stereo clip)."""
    return FIXED_CHANNELS.get(condition.name, 1) <= channels


def encoding_for(condition: Condition, channels: int) -> Encoding | None:
    """The encoding `condition` codes a clip of `channels` with, where it `applies`; None for clean storage."""
    if condition.encoding is None:
        return None
    return dataclasses.replace(condition.encoding, channels=FIXED_CHANNELS.get(condition.name, channels))


def visqol_here(name: str, selection: str) -> bool:
    """Whether --visqol `selection` scores condition `name` (never the clean ones: they must be unchanged)."""
    coded = BY_NAME[name].encoding is not None
    return coded and (selection == "all" or (selection == "key" and name in KEY_CONDITIONS))


def degraded(condition: Condition, clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(reference, decoded, facts), each signal (channels, samples) at 48 kHz, for clean (channels, samples)."""
    encoding = encoding_for(condition, clean.shape[0])
    if encoding is None:
        stored = store(clean, condition.chain, np.random.default_rng(seed))
        return clean, np.ascontiguousarray(stored, dtype=np.float32), {}
    return degrade(clean, encoding, condition.chain, seed)


def estimate_s(sets: list[ClipSet], names: tuple[str, ...], selection: str) -> dict[str, float]:
    """CPU seconds (COST_S) the run should take on one free core, per part and in total."""
    parts = dict.fromkeys(COST_S, 0.0)
    for clip in (c for clip_set in sets for c in clip_set.clips):
        seconds, channels = clip.samples.shape[1] / MODEL_RATE_HZ, clip.samples.shape[0]
        for name in names:
            condition = BY_NAME[name]
            if not applies(condition, channels):
                continue
            audio_s = seconds * FIXED_CHANNELS.get(name, channels)
            parts["decode"] += COST_S["decode"] * audio_s
            parts["models"] += COST_S["models"] * audio_s * len(MODELS)
            parts["spectral"] += COST_S["spectral"] * audio_s * len(SYSTEMS)
            parts["visqol"] += COST_S["visqol"] * audio_s * len(SYSTEMS) * visqol_here(name, selection)
    return {**{k: round(v) for k, v in parts.items()}, "total": round(sum(parts.values()))}


# -- scoring --------------------------------------------------------------------------------------------
def _init_worker(configs: dict[str, EngineConfig], use_visqol: bool, as_files: bool) -> None:
    from realtime.engine.restorer import Restorer

    _worker["restorers"] = {system: Restorer(config) for system, config in configs.items()}
    _worker["as_files"] = as_files
    if use_visqol:
        start_visqol()


def channel_mean(values: list[float]) -> float | None:
    """Mean over channels (4 decimals) of the values that are defined; None when none is."""
    return mean_present([None if v is None or not np.isfinite(v) else float(v) for v in values])


def score(reference: np.ndarray, decoded: np.ndarray, outputs: dict[str, np.ndarray],
          visqol_systems: tuple[str, ...]) -> tuple[dict[str, dict[str, Any]], float, float]:
    """Metrics of every system's output (channels, samples) against the reference, per channel and averaged
    (module doc), ViSQOL for `visqol_systems`; the mean codec cutoff over channels (Hz); ViSQOL's time (s)."""
    per_channel: dict[str, list[dict[str, float]]] = {s: [] for s in outputs}
    cutoffs, visqol_s = [], 0.0
    for c in range(reference.shape[0]):
        reference_db, decoded_db = power_db(reference[c]), power_db(decoded[c])
        cutoff = codec_cutoff_bin(reference_db, decoded_db)
        cutoffs.append(bin_hz(cutoff))
        for system, output in outputs.items():
            output_db = decoded_db if system == "codec" else power_db(output[c])
            metrics = spectrum_metrics(reference_db, output_db, cutoff)
            metrics["level_above_db"] = level_error_above(reference_db, output_db, cutoff)
            metrics["crest_above_db"] = crest_excess_above(reference[c], output[c], cutoff)
            metrics["peak"] = float(np.max(np.abs(output[c])))
            start = time.perf_counter()
            metrics["visqol"] = visqol_score(reference[c], output[c]) if system in visqol_systems else None
            visqol_s += time.perf_counter() - start
            per_channel[system].append(metrics)
    rows = {s: {m: channel_mean([channel[m] for channel in channels]) for m in METRICS}
            for s, channels in per_channel.items()}
    return rows, float(np.mean(cutoffs)), visqol_s


def evaluate_clip(task: tuple[int, str, Clip, tuple[str, ...], str]) -> dict[str, Any]:
    """Every system under every condition that applies to one clip; clip 0 also scores ViSQOL's identity."""
    index, set_name, clip, names, selection = task
    use_visqol = quality.visqol_started()
    seconds = {"decode": 0.0, "models": 0.0, "spectral": 0.0, "visqol": 0.0}
    facts: dict[str, Any] = {}
    if index == 0 and use_visqol:
        facts["visqol_identity"] = visqol_score(clip.samples[0], clip.samples[0])
    rows = []
    for name in names:
        condition = BY_NAME[name]
        if not applies(condition, clip.samples.shape[0]):
            continue
        start = time.perf_counter()
        reference, decoded, chain_facts = degraded(condition, clip.samples, seed=index)
        seconds["decode"] += time.perf_counter() - start
        start = time.perf_counter()
        outputs, engaged = {"codec": decoded}, {}
        for system, restorer in _worker["restorers"].items():
            if _worker["as_files"]:
                read_as_file(restorer, encoding_for(condition, clip.samples.shape[0]), clip.samples.shape[0])
            outputs[system] = restorer.restore(decoded, MODEL_RATE_HZ)
            engaged[system] = bool(restorer.codec_report()["engaged"])
        seconds["models"] += time.perf_counter() - start
        start = time.perf_counter()
        scored = SYSTEMS if use_visqol and visqol_here(name, selection) else ()
        metrics, cutoff_hz, visqol_s = score(reference, decoded, outputs, scored)
        seconds["spectral"] += time.perf_counter() - start - visqol_s
        seconds["visqol"] += visqol_s
        encoding = encoding_for(condition, clip.samples.shape[0])
        for system in SYSTEMS:
            row = {"clip": clip.id, "set": set_name, "kind": clip.kind, "group": f"{set_name}_{clip.kind}",
                   "channels": int(decoded.shape[0]), "condition": name,
                   "encoding": None if encoding is None else encoding.name, "system": system,
                   "cutoff_hz": round(cutoff_hz), **chain_facts, **metrics[system]}
            if system in MODELS:
                row["gate_engaged"] = engaged[system]
                row["max_abs_change"] = max_abs_change(outputs[system], decoded)
            rows.append(row)
    return {"clip": clip.id, "rows": rows, "facts": facts, "seconds": {k: round(v, 2) for k, v in seconds.items()}}


def run_clips(sets: list[ClipSet], names: tuple[str, ...], configs: dict[str, EngineConfig], selection: str,
              use_visqol: bool, workers: int, as_files: bool = False) -> list[dict[str, Any]]:
    """evaluate_clip for every clip, in `workers` processes (1: in this process, one numba thread each);
    `as_files`: each system's gate told what each coding's file header says (`read_as_file`)."""
    tasks = [(i, clip_set.name, clip, names, selection)
             for i, (clip_set, clip) in enumerate((s, c) for s in sets for c in s.clips)]
    return map_clips("models", evaluate_clip, tasks, workers, _init_worker, (configs, use_visqol, as_files))


# -- summary --------------------------------------------------------------------------------------------
def _mean(rows: list[dict[str, Any]], metric: str) -> float | None:
    return mean_present([r[metric] for r in rows])


def _paired(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """(after, before) rows of the same clip."""
    by_clip = {r["clip"]: r for r in before}
    return [(a, by_clip[a["clip"]]) for a in after]


def _delta(pairs: list[tuple[dict, dict]], metric: str) -> float | None:
    return mean_present([a[metric] - b[metric] for a, b in pairs if a[metric] is not None and b[metric] is not None])


def _worse(pairs: list[tuple[dict, dict]], sign: int = 1) -> int:
    """Clips whose full-band LSD moved by more than WORSE_DB up (sign 1) or down (-1) against the pair's other."""
    return sum(sign * (a["lsd_full"] - b["lsd_full"]) > WORSE_DB for a, b in pairs
               if a["lsd_full"] is not None and b["lsd_full"] is not None)


def compare(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's rows against another's under one condition and group."""
    pairs = _paired(after, before)
    return {"lsd_change_pct": percent_change(_mean(after, "lsd_full"), _mean(before, "lsd_full")),
            "lsd_above_change_pct": percent_change(_mean(after, "lsd_above"), _mean(before, "lsd_above")),
            "holes_change_pct": percent_change(_mean(after, "holes"), _mean(before, "holes")),
            "visqol_delta": _delta(pairs, "visqol"), "clips_worse": _worse(pairs)}


def summarise(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    """condition -> group -> the block the module doc lists (only groups with clips under the condition)."""
    summary: dict[str, Any] = {}
    for name in names:
        blocks = {}
        for group in GROUPS:
            mine = [r for r in rows if r["condition"] == name and r["group"] == group]
            if not mine:
                continue
            by_system = {s: [r for r in mine if r["system"] == s] for s in SYSTEMS}
            models = {m: {**compare(by_system[m], by_system["codec"]),
                          "gate_engaged": sum(r["gate_engaged"] for r in by_system[m]),
                          "max_abs_change": max(r["max_abs_change"] for r in by_system[m])} for m in MODELS}
            versus = compare(by_system["candidate"], by_system["shipped"])
            blocks[group] = {
                "clips": len(by_system["codec"]), "cutoff_hz_mean": _mean(by_system["codec"], "cutoff_hz"),
                "systems": {s: {m: _mean(these, m) for m in METRICS} for s, these in by_system.items()},
                "models": models,
                "candidate_vs_shipped": {"lsd_change_pct": versus["lsd_change_pct"],
                                         "visqol_delta": versus["visqol_delta"], "clips_worse": versus["clips_worse"],
                                         "clips_better": _worse(_paired(by_system["candidate"], by_system["shipped"]),
                                                                sign=-1)}}
        summary[name] = blocks
    return summary


def _cell(value: float | None, digits: int = 2, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _trio(block: dict[str, Any], metric: str, digits: int = 2) -> str:
    """'codec / shipped / candidate' means of one metric."""
    return " / ".join(_cell(block["systems"][s][metric], digits) for s in SYSTEMS)


def _models(block: dict[str, Any], key: str, digits: int = 0, unit: str = "") -> str:
    """'shipped / candidate' of one entry of the models' comparison against the decoded input."""
    return " / ".join(_cell(block["models"][m][key], digits, signed=True) for m in MODELS) + unit


GROUP_HEADERS = ["input", "cutoff kHz", "LSD dB codec / shipped / cand.", "LSD change", "LSD above change",
                 "holes change", "level above dB", "ViSQOL codec / shipped / cand.", "ViSQOL change",
                 "worse shipped / cand.", "cand. vs shipped: LSD, ViSQOL, worse / better"]


def group_table(summary: dict[str, Any], group: str) -> str | None:
    """Markdown table of the coded conditions for one clip group (changes: shipped / candidate vs codec)."""
    rows = []
    for name, blocks in summary.items():
        if BY_NAME[name].encoding is None or group not in blocks:
            continue
        b = blocks[group]
        v = b["candidate_vs_shipped"]
        rows.append([BY_NAME[name].title, _cell(b["cutoff_hz_mean"] / 1000, 1), _trio(b, "lsd_full"),
                     _models(b, "lsd_change_pct", unit=" %"), _models(b, "lsd_above_change_pct", unit=" %"),
                     _models(b, "holes_change_pct", unit=" %"), _trio(b, "level_above_db", 1), _trio(b, "visqol"),
                     _models(b, "visqol_delta", 2),
                     " / ".join(f"{b['models'][m]['clips_worse']}/{b['clips']}" for m in MODELS),
                     f"{_cell(v['lsd_change_pct'], 0, True)} %, {_cell(v['visqol_delta'], 2, True)}, "
                     f"{v['clips_worse']} / {v['clips_better']}"])
    return markdown_table(GROUP_HEADERS, rows) if rows else None


def clean_table(summary: dict[str, Any]) -> str | None:
    """Markdown table of the clean conditions: the largest sample change of each model, per group."""
    rows = []
    for name, blocks in summary.items():
        if BY_NAME[name].encoding is not None:
            continue
        for group, b in blocks.items():
            models = [b["models"][m] for m in MODELS]

            def each(cell: Any) -> str:
                return " / ".join(cell(m) for m in models)

            rows.append([BY_NAME[name].title, group, b["clips"], each(lambda m: f"{m['max_abs_change']:.3g}"),
                         each(lambda m: "yes" if m["max_abs_change"] == 0 else "no"),
                         each(lambda m: str(m["gate_engaged"])), each(lambda m: str(m["clips_worse"]))])
    headers = ["clean input", "group", "clips", "max sample change shipped / cand.", "bit-identical", "gate engaged",
               "worse"]
    return markdown_table(headers, rows) if rows else None


def readme_tables(summary: dict[str, Any]) -> dict[str, str]:
    """Markdown for README: one table per clip group present, and `clean`."""
    tables = {group: table for group in GROUPS if (table := group_table(summary, group)) is not None}
    if (table := clean_table(summary)) is not None:
        tables["clean"] = table
    return tables


def print_report(result: dict[str, Any]) -> None:
    engines = result["engines"]
    print(f"\ngapfill model benchmark: shipped {engines['shipped']['model']} against candidate "
          f"{engines['candidate']['model']} (stft {engines['candidate']['stft']}, from "
          f"{engines['candidate']['settings']}); {len(result['clips'])} clips; ViSQOL: {result['visqol']['status']}\n"
          "Through the dithered 16-bit ffmpeg decode at 48 kHz. LSD in dB (lower is better); changes against "
          "the decoded input, shipped / candidate; level above = mean level error above the cutoff, codec / "
          f"shipped / candidate (< 0: too quiet); worse = LSD full up by more than {WORSE_DB} dB\n")
    for name, table in result["readme_tables"].items():
        title = GROUP_TITLES.get(name, "Clean input: must come out unchanged")
        print(f"{title}\n\n{table}\n")
    print(f"benchmark wall time {result['wall_s']:.0f} s, CPU {result['cpu_s']:.0f} s "
          f"(estimated {result['estimate_s']['total']} s)")


# -- main -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", metavar="PATH", help="the candidate ONNX model (needed unless --quick, "
                        "where it defaults to the shipped model with the shipped settings)")
    parser.add_argument("--candidate-config", metavar="YAML", help="the candidate's engine settings over the "
                        "defaults (default: the defaults with the framing in the model's metadata)")
    parser.add_argument("--corpus", metavar="DIR", default=str(DEFAULT_CORPUS), help="data v2 (data/v2)")
    parser.add_argument("--test-clips", type=int, metavar="N", help="test mixes, spread over the set (default all)")
    parser.add_argument("--val-clips", type=int, default=4, metavar="N",
                        help=f"validation clips per kind, {', '.join(VAL_KINDS)} (4)")
    parser.add_argument("--val-kinds", nargs="+", choices=VAL_KINDS, default=list(VAL_KINDS), metavar="KIND",
                        help=f"only these validation kinds, of: {', '.join(VAL_KINDS)} (default all)")
    parser.add_argument("--seconds", type=float, default=6.0, help="most active part of each clip scored, s (6)")
    parser.add_argument("--conditions", nargs="+", metavar="NAME", help=f"only these, of: {', '.join(BY_NAME)}")
    parser.add_argument("--visqol", choices=VISQOL_CHOICES, default="key",
                        help=f"ViSQOL on every coded condition, on {', '.join(KEY_CONDITIONS)} (default), or none")
    parser.add_argument("--as-files", action="store_true", help="tell both systems' gates what each coding's file "
                        "header says, as `gapfill restore` does (gate.coded_input: auto)")
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--json", metavar="PATH", help="results (default benchmarks/results/models.json, "
                        "models-quick.json with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: two synthetic 2 s clips (mono "
                        f"speech, a stereo mix), {', '.join(QUICK_CONDITIONS)}, no ViSQOL, one process")
    return parser.parse_args(argv)


def chosen_conditions(args: argparse.Namespace) -> tuple[str, ...]:
    """Condition names to run, in CONDITIONS order."""
    if args.quick:
        return QUICK_CONDITIONS
    if args.conditions:
        return names_chosen(args.conditions, BY_NAME, "condition")
    return tuple(BY_NAME)


def engines(args: argparse.Namespace) -> tuple[dict[str, EngineConfig], dict[str, Any]]:
    """The shipped and candidate engine configs, and how each is described in the JSON."""
    shipped = engine_config(None, "default")
    if args.candidate is None and not args.quick:
        raise GapfillError("--candidate PATH is needed (the ONNX model to measure), or --quick")
    if args.candidate is None:
        candidate, settings = shipped, "the shipped settings"
    else:
        candidate, settings = candidate_config(args.candidate, args.candidate_config)
    configs = {"shipped": shipped, "candidate": candidate}
    return configs, {"shipped": describe_engine(shipped, "the shipped settings"),
                     "candidate": describe_engine(candidate, settings)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if not codec.available() or shutil.which("ffmpeg") is None:
        raise GapfillError(f"the model benchmark needs lameenc, miniaudio, soxr and ffmpeg ({CODEC_EXTRA_HINT})")
    if args.quick:
        args.seconds, args.workers, args.visqol = min(args.seconds, 2.0), 1, "none"
    json_path = args.json or str(QUICK_JSON if args.quick else DEFAULT_JSON)
    names = chosen_conditions(args)
    configs, described = engines(args)
    sets = quick_clips(args.seconds) if args.quick else corpus_clips(Path(args.corpus), args.test_clips,
                                                                      args.val_clips, args.seconds,
                                                                      tuple(args.val_kinds))
    use_visqol, note = (False, "skipped (--visqol none)") if args.visqol == "none" else visqol_status()
    clips = sum(len(s.clips) for s in sets)
    if clips == 0:
        raise GapfillError("no clips to score (--test-clips and --val-clips are both 0)")
    estimate = estimate_s(sets, names, args.visqol if use_visqol else "none")
    workers = max(1, args.workers)
    print(f"models: {clips} clips, {len(names)} conditions; estimated {estimate['total'] / 60:.0f} CPU min on one "
          f"free core (ViSQOL {estimate['visqol'] / 60:.0f}), about {estimate['total'] / 60 / workers:.0f} min with "
          f"{workers} worker(s) on free cores", file=sys.stderr, flush=True)
    results = run_clips(sets, names, configs, args.visqol, use_visqol, workers, args.as_files)
    rows = [row for clip_result in results for row in clip_result["rows"]]
    identity = next((r["facts"]["visqol_identity"] for r in results if "visqol_identity" in r["facts"]), None)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = summarise(rows, names)
    result = {
        "benchmark": "models", "schema": SCHEMA_VERSION, "quick": bool(args.quick), "environment": environment(),
        "engines": described, "as_files": args.as_files, "corpus": None if args.quick else str(args.corpus),
        "clips": [{"id": c.id, "set": s.name, "kind": c.kind, "source": c.source, "unit": unit,
                   "channels": int(c.samples.shape[0]), "start_s": round(start, 3),
                   "seconds": round(c.samples.shape[1] / MODEL_RATE_HZ, 3)}
                  for s in sets for c, start, unit in zip(s.clips, s.starts_s, s.units)],
        "conditions": [{**BY_NAME[n].describe(SYSTEMS, use_visqol and visqol_here(n, args.visqol)),
                        "fixed_channels": FIXED_CHANNELS.get(n)} for n in names],
        "groups": [g for g in GROUPS if any(g in blocks for blocks in summary.values())],
        "visqol": visqol_facts(args.visqol, use_visqol, note, identity),
        "summary": summary, "per_clip": rows, "estimate_s": estimate,
        "timing_s": {k: round(sum(r["seconds"][k] for r in results), 1) for k in results[0]["seconds"]},
        "cpu_s": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1),
    }
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["readme_tables"] = readme_tables(summary)
    print_report(result)
    write_json(result, json_path)
    return 0


if __name__ == "__main__":
    run_main(main)
