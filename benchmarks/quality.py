"""Restoration quality benchmark (issues #6, #11, #12): gapfill on the inputs users really have.

    python -m benchmarks.quality [--json PATH] [--png PATH] [--clips 6] [--seconds 8] [--visqol key] [--workers 2]
    python -m benchmarks.quality --quick          # CI smoke run: two synthetic 2 s clips, five conditions

Every validation clip of data v2 (never a training one, see benchmarks/clips.py), mono at 48 kHz, is degraded under
every condition: an `Encoding` and a `DecodeChain` of evaluation/chains.py (`degrade`: encoded by
lameenc or one of ffmpeg's encoders, decoded as a user's tools would, then to 48 kHz by gapfill's own
resampler, aligned to the reference with sub-sample precision; the residual lag is reported per clip).
Three groups (`CONDITIONS`):
- `clean`: the clean clip as float, 16-bit and 16-bit with TPDF dither, 30 dB quieter in dithered 16-bit, and
  over a white noise floor at -75 dBFS (no-harm check);
- `chains` (#11): LAME 32 kbit/s mono through every decode chain: the training chain (minimp3 at the MP3's
  rate, float), ffmpeg to float / 16-bit / dithered 16-bit at 48 kHz, scipy and soxr LQ resampling, the
  MP3 file itself (soundfile at 22.05 kHz), ffmpeg 16-bit at the MP3's rate, a sound card (24-bit, pink
  noise floor at -80 dBFS; white at -75 dBFS) and level changes of -20, -30 (16-bit, dithered) and +6 dB;
- `codecs` (#12): LAME 24-128 kbit/s and ffmpeg's libmp3lame (CBR, VBR), libshine, aac, libvorbis, libopus
  and libtwolame, all through the usual 16-bit dithered ffmpeg decode at 48 kHz.
These systems are scored against the clean reference (for the gain chains, the clean clip at that gain;
every metric is taken at the clip's own level, i.e. the gain undone before it, so that the LSD's -100 dB
floor cuts at the same depth below the signal as on every other condition, and ViSQOL, whose spectrogram
has a fixed floor, hears what a listener who turns the quiet file up hears):
- `codec`: the decoded input as it is;
- `treble_shelf`, `noise_fill`: what a user could reach for instead (benchmarks/baselines.py);
- `gapfill`: the Restorer with the configured settings (shipped defaults unless --config/--model),
  delay-compensated; on the training chain also `gapfill/<method>` for the other phase methods.
Metrics per clip, averaged for speech, music and all: the training's validation metrics
(evaluation/metrics.py: log-spectral distance over the full band, below the codec cutoff and from it
to 20 kHz, the hole ratio below the cutoff; the cutoff from the decoded and clean long-term spectra) and
ViSQOL v3 in audio mode (MOS-LQO, visqol-python 3.8.0, its identity score checked against the reference
implementation's conformance value). ViSQOL costs about a CPU second per audio second: `--visqol key`
(default) scores `codec` and `gapfill` on the KEY_CONDITIONS (every system on the training chain), `all`
on every condition, `none` nowhere. Per condition, for gapfill against the decoded input: the change of
the mean LSD in % (and in dB, clip by clip), the clips made worse (LSD full band up by more than
WORSE_DB), the gate's verdict per clip (`Restorer.codec_report()`: engaged, cutoff, restored share), the
largest sample change and the ViSQOL difference.

Prints one Markdown table per group (README-ready) and one of every system on the training chain; writes
JSON (`--json`) and a PNG (`--png`: clean / LAME 32 kbit/s through the dithered 16-bit ffmpeg decode /
restored, one speech and one music clip).

JSON (schema SCHEMA_VERSION = 2): `benchmark`, `schema`, `quick`, `environment`, `engine` {model,
phase_method, gate}, `clip_source`, `clips` [{id, kind, source, seconds}], `conditions` [{name, group,
title, encoding (Encoding.name or null for clean), encoding_settings, chain (DecodeChain.name, or
`clean_<format>`), chain_settings, systems, visqol}], `systems`, `metrics`, `visqol` {used, status,
selection, conformance}, `per_clip` [{clip, kind, condition, system, cutoff_hz, lag_samples,
residual_lag_samples, lsd_full, lsd_below, lsd_above, holes, visqol (null: not measured); for gapfill
systems also gate_engaged, gate_cutoff_hz, gate_engaged_after_s, gate_restored_share, max_abs_change}],
`summary` {condition: {group, title, cutoff_hz_mean, systems {system: {metric: {speech, music, all}}},
gapfill {clips, lsd_change_pct, lsd_change_db, holes_change_pct, clips_worse, gate_engaged,
gate_cutoff_hz_mean, restored_share_mean, visqol_delta, max_abs_change}}} (the per-kind entries are
{speech, music, all}), `timing_s`, `figure`, `wall_s`, `readme_tables` {clean, chains, codecs,
training_chain}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from benchmarks import codec
from benchmarks.baselines import detect_cutoff_hz, noise_fill, treble_shelf
from benchmarks.clips import Clip, synthetic_clips, validation_clips
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, map_clips, markdown_table, max_abs_change, mean_present, model_name,
    percent_change, run_main, write_json,
)
from evaluation.chains import TRAINING_CHAIN, DecodeChain, Encoding, degrade, store
from evaluation.metrics import bin_hz, clip_metrics, codec_cutoff_bin, power_db
from realtime.engine.config import MODEL_RATE_HZ
from realtime.errors import GapfillError

GROUPS = ("clean", "chains", "codecs")
PHASE_METHODS = ("decoded", "rtpghi", "completion")
BASELINES = ("codec", "treble_shelf", "noise_fill")
SYSTEMS = BASELINES + ("gapfill",)
METRICS = ("lsd_full", "lsd_below", "lsd_above", "holes", "visqol")  # evaluation/metrics.py's names, and ViSQOL
WORSE_DB = 0.01  # a clip is made worse when gapfill's full-band LSD exceeds the decoded input's by more
VISQOL_CHOICES = ("all", "key", "none")
VISQOL_VERSION = "3.8.0"
VISQOL_IDENTITY_REFERENCE = 4.732101253042348  # google/visqol src/include/conformance.h, v333
VISQOL_TOLERANCE = 1e-4  # the reference implementation's conformance tolerance
VISQOL_EXTRA_HINT = "pip install 'gapfill[quality]'"
CODEC_EXTRA_HINT = "pip install 'gapfill[train]' and the ffmpeg program"
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Condition:
    """One way the clean clip reaches gapfill: `encoding` (None: not encoded, only stored in
    `chain.sample_format`) decoded by `chain`; `name` is its key in the JSON, `title` its table row."""

    name: str
    group: str
    title: str
    encoding: Encoding | None
    chain: DecodeChain

    @property
    def chain_name(self) -> str:
        return self.chain.name if self.encoding is not None else f"clean_{self.chain.storage_name}"

    def describe(self, systems: tuple[str, ...], visqol: bool) -> dict[str, Any]:
        chain = asdict(self.chain)
        if self.encoding is None:    # not decoded: only the level, noise floor and sample format apply
            chain = {k: chain[k] for k in ("gain_db", "noise_dbfs", "noise_color", "sample_format")}
        return {"name": self.name, "group": self.group, "title": self.title,
                "encoding": None if self.encoding is None else self.encoding.name,
                "encoding_settings": None if self.encoding is None else asdict(self.encoding),
                "chain": self.chain_name, "chain_settings": chain, "systems": list(systems), "visqol": visqol}


LAME_32K = Encoding("lameenc", 32)
USUAL_CHAIN = DecodeChain("ffmpeg", MODEL_RATE_HZ, "swr", sample_format="s16_tpdf")
"""ffmpeg to 16-bit at 48 kHz with TPDF dither: what sox, Audacity and most editors write."""


def _ffmpeg_48k(sample_format: str = "float", resampler: str = "swr", **extra: Any) -> DecodeChain:
    return DecodeChain("ffmpeg", MODEL_RATE_HZ, resampler, sample_format=sample_format, **extra)


def _codec(name: str, title: str, encoding: Encoding) -> Condition:
    return Condition(name, "codecs", title, encoding, USUAL_CHAIN)


CONDITIONS: tuple[Condition, ...] = (
    Condition("clean_float", "clean", "clean, float", None, DecodeChain(sample_format="float")),
    Condition("clean_s16", "clean", "clean, 16-bit", None, DecodeChain(sample_format="s16")),
    Condition("clean_s16_tpdf", "clean", "clean, 16-bit TPDF dither", None, DecodeChain(sample_format="s16_tpdf")),
    Condition("clean_quiet", "clean", "clean, gain -30 dB, 16-bit TPDF dither", None,
              DecodeChain(sample_format="s16_tpdf", gain_db=-30.0)),
    Condition("clean_noise_white_75", "clean", "clean, 24-bit, white noise floor -75 dBFS", None,
              DecodeChain(sample_format="s24", noise_dbfs=-75.0)),
    Condition("training_chain", "chains", "minimp3 at the MP3's rate, float (training chain)", LAME_32K,
              TRAINING_CHAIN),
    Condition("ffmpeg_float_48k", "chains", "ffmpeg, float at 48 kHz (swr)", LAME_32K, _ffmpeg_48k()),
    Condition("ffmpeg_s16_48k", "chains", "ffmpeg, 16-bit at 48 kHz (swr)", LAME_32K, _ffmpeg_48k("s16")),
    Condition("ffmpeg_s16_tpdf_48k", "chains", "ffmpeg, 16-bit TPDF at 48 kHz (swr)", LAME_32K, USUAL_CHAIN),
    Condition("scipy_float_48k", "chains", "scipy resample_poly to 48 kHz, float", LAME_32K,
              _ffmpeg_48k(resampler="scipy")),
    Condition("soxr_lq_s16_48k", "chains", "soxr LQ to 48 kHz, 16-bit", LAME_32K,
              _ffmpeg_48k("s16", resampler="soxr_lq")),
    Condition("src_fastest_s16_tpdf_48k", "chains", "libsamplerate fastest sinc to 48 kHz, 16-bit TPDF (not trained on)",
              LAME_32K, _ffmpeg_48k("s16_tpdf", resampler="src_fastest")),
    Condition("mp3_file", "chains", "the MP3 file itself (soundfile, 22.05 kHz)", LAME_32K,
              DecodeChain("soundfile")),
    Condition("ffmpeg_s16_mp3_rate", "chains", "ffmpeg, 16-bit at the MP3's rate (22.05 kHz)", LAME_32K,
              DecodeChain("ffmpeg", sample_format="s16")),
    Condition("soundcard", "chains", "sound card: 24-bit, pink noise floor -80 dBFS", LAME_32K,
              _ffmpeg_48k("s24", noise_dbfs=-80.0, noise_color="pink")),
    Condition("noise_white_75", "chains", "24-bit, white noise floor -75 dBFS", LAME_32K,
              _ffmpeg_48k("s24", noise_dbfs=-75.0, noise_color="white")),
    Condition("gain_minus20", "chains", "gain -20 dB, 16-bit TPDF", LAME_32K,
              _ffmpeg_48k("s16_tpdf", gain_db=-20.0)),
    Condition("gain_minus30", "chains", "gain -30 dB, 16-bit TPDF", LAME_32K,
              _ffmpeg_48k("s16_tpdf", gain_db=-30.0)),
    Condition("gain_plus6", "chains", "gain +6 dB, float", LAME_32K, _ffmpeg_48k(gain_db=6.0)),
    *(_codec(f"lame_{b}k", f"LAME {b} kbit/s (lameenc)", Encoding("lameenc", b)) for b in (24, 32, 48, 64, 128)),
    _codec("libmp3lame_32k", "libmp3lame 32 kbit/s CBR (ffmpeg)", Encoding("libmp3lame", 32)),
    _codec("libmp3lame_vbr_q9", "libmp3lame VBR -q 9 (ffmpeg)", Encoding("libmp3lame", quality=9)),
    _codec("libshine_32k", "shine MP3 32 kbit/s", Encoding("libshine", 32)),
    _codec("aac_32k", "AAC-LC 32 kbit/s (ffmpeg aac)", Encoding("aac", 32)),
    _codec("aac_64k", "AAC-LC 64 kbit/s (ffmpeg aac)", Encoding("aac", 64)),
    _codec("libvorbis_q0", "Vorbis q0", Encoding("libvorbis", quality=0)),
    _codec("libopus_16k", "Opus 16 kbit/s", Encoding("libopus", 16)),
    _codec("libopus_24k", "Opus 24 kbit/s", Encoding("libopus", 24)),
    _codec("libtwolame_64k", "MP2 64 kbit/s (twolame)", Encoding("libtwolame", 64)),
)
BY_NAME = {c.name: c for c in CONDITIONS}
TRAINING = "training_chain"
KEY_CONDITIONS = (TRAINING, "ffmpeg_s16_tpdf_48k", "mp3_file", "src_fastest_s16_tpdf_48k", "noise_white_75",
                  "gain_minus20", "gain_minus30",
                  *(c.name for c in CONDITIONS if c.group == "codecs" and c.name != "lame_128k"))
"""Where `--visqol key` measures: the training chain, the usual decode, the MP3 file, a resampler never trained
on, the chains where the codec's band edge sinks into a floor, and every codec condition whose decoded input is
damaged (#12 asks ViSQOL of each)."""
QUICK_CONDITIONS = ("clean_float", "clean_s16_tpdf", TRAINING, "ffmpeg_s16_tpdf_48k", "aac_32k")
FIGURE = BY_NAME["ffmpeg_s16_tpdf_48k"]

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
    result = api.measure_from_arrays(_as_16_bit(reference), _as_16_bit(test), sample_rate=MODEL_RATE_HZ)
    return float(result.moslqo)


def visqol_systems(condition: Condition, systems: tuple[str, ...], selection: str) -> tuple[str, ...]:
    """The systems ViSQOL scores under `condition` for --visqol `selection`: every one on the training
    chain, `codec` and `gapfill` elsewhere (on KEY_CONDITIONS only with `key`)."""
    if selection == "none" or (selection == "key" and condition.name not in KEY_CONDITIONS):
        return ()
    return systems if condition.name == TRAINING else ("codec", "gapfill")


# -- conditions and systems ---------------------------------------------------------------------------
def systems_of(condition: Condition, default_method: str) -> tuple[str, ...]:
    """The systems scored under `condition`: SYSTEMS, and on the training chain the other phase methods."""
    extra = tuple(f"gapfill/{m}" for m in PHASE_METHODS if m != default_method) if condition.name == TRAINING else ()
    return SYSTEMS + extra


def degraded(condition: Condition, clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(reference, decoded, facts) for mono clean (samples,) at 48 kHz under `condition`, aligned; without an
    encoding the clean clip only takes the chain's gain (the reference too), noise floor and sample format."""
    if condition.encoding is None:
        reference = (clean * np.float32(10 ** (condition.chain.gain_db / 20))).astype(np.float32)
        stored = store(clean[None, :], condition.chain, np.random.default_rng(seed))[0]
        return reference, np.ascontiguousarray(stored, dtype=np.float32), {}
    reference, decoded, facts = degrade(clean[None, :], condition.encoding, condition.chain, seed)
    return reference[0], decoded[0], facts


def _init_worker(config_path: str | None, model: str, use_visqol: bool) -> None:
    from realtime.engine.restorer import Restorer

    default = engine_config(config_path, model)
    _worker["default_method"] = default.phase["method"]
    _worker["restorers"] = {"gapfill": Restorer(default)} | {
        f"gapfill/{m}": Restorer(engine_config(config_path, model, phase_method=m))
        for m in PHASE_METHODS if m != default.phase["method"]}
    if use_visqol:
        start_visqol()


def start_visqol() -> None:
    """ViSQOL's audio-mode API in this process, where `visqol_score` finds it."""
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    _worker["visqol"] = api


def start_required_visqol(benchmark: str) -> None:
    """`start_visqol` for a benchmark that cannot run without ViSQOL; GapfillError naming it where unusable."""
    usable, why = visqol_status()
    if not usable:
        raise GapfillError(f"the {benchmark} benchmark needs ViSQOL: {why}")
    start_visqol()


def visqol_started() -> bool:
    """Whether `start_visqol` ran in this process."""
    return "visqol" in _worker


def visqol_facts(selection: str, use: bool, note: str, identity: float | None) -> dict[str, Any]:
    """The JSON's `visqol` block (used, selection, status, conformance) for `--visqol selection`; raises when
    the identity score measured (a clip against itself) is not the reference implementation's."""
    if not use:
        return {"used": False, "selection": "none", "status": note}
    conforms = identity is not None and abs(identity - VISQOL_IDENTITY_REFERENCE) <= VISQOL_TOLERANCE
    if not conforms:
        raise GapfillError(f"ViSQOL identity score {identity} differs from the reference "
                           f"{VISQOL_IDENTITY_REFERENCE}: not the verified implementation")
    return {"used": True, "selection": selection, "status": f"visqol-python {note}, audio mode, --visqol {selection}",
            "conformance": {"check": "a clip scored against itself; the reference implementation's "
                                     "kConformanceCastanetsIdentity",
                            "measured": identity, "expected": VISQOL_IDENTITY_REFERENCE,
                            "tolerance": VISQOL_TOLERANCE, "ok": conforms}}


def system_outputs(decoded: np.ndarray, systems: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every system's output for one decoded mono signal (samples,), aligned with it, and the gate's
    `codec_report()` of each gapfill system."""
    outputs = {"codec": decoded, "treble_shelf": treble_shelf(decoded),
               "noise_fill": noise_fill(decoded, detect_cutoff_hz(decoded))}
    reports = {}
    for system in systems:
        if system.startswith("gapfill"):
            restorer = _worker["restorers"][system]
            outputs[system] = restorer.restore(decoded[None, :], MODEL_RATE_HZ)[0]
            reports[system] = restorer.codec_report()
    return outputs, reports


def _gate_fields(report: dict[str, Any], output: np.ndarray, decoded: np.ndarray) -> dict[str, Any]:
    return {"gate_engaged": bool(report["engaged"]), "gate_cutoff_hz": report["cutoff_hz"],
            "gate_engaged_after_s": report["engaged_after_s"], "gate_restored_share": report["restored_share"],
            "max_abs_change": max_abs_change(output, decoded)}


def evaluate_clip(task: tuple[int, Clip, tuple[str, ...], str]) -> dict[str, Any]:
    """Score every system under every condition for one clip; clip 0 also runs the ViSQOL identity check.
    Conditions with the same encoding and chain (LAME 32k through the usual decode) are computed once."""
    index, clip, names, selection = task
    use_visqol = visqol_started()
    clean = clip.samples
    rows: list[dict[str, Any]] = []
    seconds = {"decode": 0.0, "systems": 0.0, "spectral": 0.0, "visqol": 0.0}
    facts: dict[str, Any] = {}
    if index == 0 and use_visqol:
        start = time.perf_counter()
        facts["visqol_identity"] = visqol_score(clean, clean)
        seconds["visqol"] += time.perf_counter() - start
    computed: dict[tuple, tuple] = {}
    scores: dict[tuple, float] = {}
    for name in names:
        condition = BY_NAME[name]
        systems = systems_of(condition, _worker["default_method"])
        key = (condition.encoding, condition.chain, systems)
        if key not in computed:
            start = time.perf_counter()
            reference, decoded, chain_facts = degraded(condition, clean, seed=index)
            seconds["decode"] += time.perf_counter() - start
            start = time.perf_counter()
            outputs, reports = system_outputs(decoded, systems)
            seconds["systems"] += time.perf_counter() - start
            computed[key] = (reference, decoded, chain_facts, outputs, reports)
        reference, decoded, chain_facts, outputs, reports = computed[key]
        start = time.perf_counter()
        level = 10 ** (-condition.chain.gain_db / 20)   # gain undone
        reference_db = power_db(reference * level)
        cutoff_bin = codec_cutoff_bin(reference_db, power_db(decoded * level))
        seconds["spectral"] += time.perf_counter() - start
        scored = visqol_systems(condition, systems, selection) if use_visqol else ()
        for system in systems:
            output = outputs[system]
            start = time.perf_counter()
            row = {"clip": clip.id, "kind": clip.kind, "condition": name, "system": system,
                   "cutoff_hz": round(bin_hz(cutoff_bin)), **chain_facts,
                   **clip_metrics(reference * level, output * level, cutoff_bin, reference_db)}
            if system in reports:
                row.update(_gate_fields(reports[system], output, decoded))
            seconds["spectral"] += time.perf_counter() - start
            row["visqol"] = None
            if system in scored:
                if (key, system) not in scores:
                    start = time.perf_counter()
                    scores[(key, system)] = visqol_score(reference * level, output * level)
                    seconds["visqol"] += time.perf_counter() - start
                row["visqol"] = scores[(key, system)]
            rows.append({k: _json_number(v) for k, v in row.items()})
    return {"clip": clip.id, "rows": rows, "facts": facts, "seconds": {k: round(v, 2) for k, v in seconds.items()}}


def run_clips(clips: list[Clip], names: tuple[str, ...], config_path: str | None, model: str,
              selection: str, use_visqol: bool, workers: int) -> list[dict[str, Any]]:
    """evaluate_clip for every clip, in `workers` processes (1: in this process)."""
    tasks = [(i, clip, names, selection) for i, clip in enumerate(clips)]
    return map_clips("quality", evaluate_clip, tasks, workers, _init_worker, (config_path, model, use_visqol))


def _json_number(value: Any) -> Any:
    """Floats rounded to 4 decimals (a sample change to 3 significant digits); NaN as None."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, 4) if abs(value) >= 1e-3 else float(f"{value:.3g}")
    return value


# -- summary -------------------------------------------------------------------------------------------
def _per_kind(rows: list[dict[str, Any]], value: Any) -> dict[str, Any]:
    """{speech, music, all}: value(rows of that kind)."""
    return {"speech": value([r for r in rows if r["kind"] == "speech"]),
            "music": value([r for r in rows if r["kind"] == "music"]), "all": value(rows)}


def gapfill_summary(codec_rows: list[dict[str, Any]], gapfill_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """gapfill against the decoded input under one condition, per kind (pairs of rows by clip)."""
    codec_by_clip = {r["clip"]: r for r in codec_rows}
    pairs = [(codec_by_clip[g["clip"]], g) for g in gapfill_rows]

    def kind(rows: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
        clips = {r["clip"] for r in rows}
        return [(c, g) for c, g in pairs if g["clip"] in clips]

    def change_pct(metric: str):
        return lambda rows: percent_change(mean_present([g[metric] for _, g in kind(rows)]),
                                           mean_present([c[metric] for c, _ in kind(rows)]))

    def delta(metric: str):
        return lambda rows: mean_present([g[metric] - c[metric] for c, g in kind(rows)
                                          if g[metric] is not None and c[metric] is not None])

    engaged = [g for g in gapfill_rows if g["gate_engaged"]]
    return {
        "clips": _per_kind(gapfill_rows, len),
        "lsd_change_pct": _per_kind(gapfill_rows, change_pct("lsd_full")),
        "lsd_change_db": _per_kind(gapfill_rows, delta("lsd_full")),
        "holes_change_pct": _per_kind(gapfill_rows, change_pct("holes")),
        "clips_worse": _per_kind(gapfill_rows, lambda rows: sum(
            g["lsd_full"] > c["lsd_full"] + WORSE_DB for c, g in kind(rows)
            if g["lsd_full"] is not None and c["lsd_full"] is not None)),
        "gate_engaged": _per_kind(gapfill_rows, lambda rows: sum(bool(r["gate_engaged"]) for r in rows)),
        "gate_cutoff_hz_mean": mean_present([g["gate_cutoff_hz"] for g in engaged]),
        "restored_share_mean": _per_kind(gapfill_rows,
                                         lambda rows: mean_present([r["gate_restored_share"] for r in rows])),
        "visqol_delta": _per_kind(gapfill_rows, delta("visqol")),
        "max_abs_change": max((g["max_abs_change"] for g in gapfill_rows), default=None),
    }


def summarise(rows: list[dict[str, Any]], names: tuple[str, ...], default_method: str) -> dict[str, Any]:
    """condition -> {group, title, cutoff_hz_mean, systems: system -> metric -> {speech, music, all}
    means over clips (None where undefined), gapfill: `gapfill_summary`}."""
    summary: dict[str, Any] = {}
    for name in names:
        condition = BY_NAME[name]
        mine = [r for r in rows if r["condition"] == name]
        by_system = {s: [r for r in mine if r["system"] == s] for s in systems_of(condition, default_method)}
        block = {system: {metric: _per_kind(these, lambda rs, m=metric: mean_present([r[m] for r in rs]))
                          for metric in METRICS} for system, these in by_system.items()}
        summary[name] = {"group": condition.group, "title": condition.title,
                         "cutoff_hz_mean": mean_present([r["cutoff_hz"] for r in by_system["codec"]]),
                         "systems": block, "gapfill": gapfill_summary(by_system["codec"], by_system["gapfill"])}
    return summary


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(entry: dict[str, Any], digits: int = 2) -> str:
    """'speech / music' of a per-kind entry."""
    return f"{_cell(entry['speech'], digits)} / {_cell(entry['music'], digits)}"


def _change_cell(block: dict[str, Any]) -> str:
    """LSD change in %, speech / music; in dB where the decoded input's LSD is 0 (clean float)."""
    g = block["gapfill"]
    codec_lsd = block["systems"]["codec"]["lsd_full"]
    if not codec_lsd["speech"] or not codec_lsd["music"]:
        return f"{_signed(g['lsd_change_db']['speech'], 3)} / {_signed(g['lsd_change_db']['music'], 3)} dB"
    return f"{_signed(g['lsd_change_pct']['speech'], 0)} / {_signed(g['lsd_change_pct']['music'], 0)} %"


def _signed(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


GROUP_HEADERS = ["input", "cutoff (kHz)", "LSD codec (dB)", "LSD gapfill (dB)", "LSD change", "holes codec",
                 "holes gapfill", "ViSQOL codec", "ViSQOL gapfill", "clips worse", "gate engaged"]


def group_table(summary: dict[str, Any], group: str) -> str | None:
    """Markdown table of one group: a row per condition, each pair of numbers speech / music."""
    rows = []
    for block in summary.values():
        if block["group"] != group:
            continue
        m, g = block["systems"], block["gapfill"]
        cutoff = block["cutoff_hz_mean"]
        rows.append([block["title"], "-" if cutoff is None else f"{cutoff / 1000:.1f}",
                     _pair(m["codec"]["lsd_full"]), _pair(m["gapfill"]["lsd_full"]), _change_cell(block),
                     _pair(m["codec"]["holes"], 3), _pair(m["gapfill"]["holes"], 3),
                     _pair(m["codec"]["visqol"]), _pair(m["gapfill"]["visqol"]),
                     f"{g['clips_worse']['all']}/{g['clips']['all']}",
                     f"{g['gate_engaged']['all']}/{g['clips']['all']}"])
    return markdown_table(GROUP_HEADERS, rows) if rows else None


def systems_table(block: dict[str, Any]) -> str:
    """Markdown table of every system under one condition (the training chain)."""
    return markdown_table(
        ["system", "LSD full", "LSD below cutoff", "LSD above cutoff", "holes", "ViSQOL speech", "ViSQOL music"],
        [[s] + [_cell(m[k]["all"]) for k in ("lsd_full", "lsd_below", "lsd_above")]
         + [_cell(m["holes"]["all"], 3), _cell(m["visqol"]["speech"]), _cell(m["visqol"]["music"])]
         for s, m in block["systems"].items()])


GROUP_TITLES = {
    "clean": "Clean input (no-harm check; the cutoff is where the clean clip's own band ends)",
    "chains": "LAME 32 kbit/s mono through each decode chain (#11)",
    "codecs": "Codecs and bitrates, ffmpeg 16-bit TPDF decode at 48 kHz (#12)",
}


def readme_tables(result: dict[str, Any]) -> dict[str, str]:
    """Markdown for README: one table per group present, and `training_chain` (every system)."""
    tables = {group: table for group in GROUPS if (table := group_table(result["summary"], group)) is not None}
    if TRAINING in result["summary"]:
        tables["training_chain"] = systems_table(result["summary"][TRAINING])
    return tables


def print_report(result: dict[str, Any]) -> None:
    print(f"gapfill quality benchmark: model {result['engine']['model']}, phase {result['engine']['phase_method']}; "
          f"{len(result['clips'])} clips ({result['clip_source']}); ViSQOL: {result['visqol']['status']}\n"
          "LSD in dB (lower is better), holes = share of reference bins below the cutoff left 20 dB low, ViSQOL "
          "MOS-LQO (1 to 5); pairs are speech / music; clips worse = LSD full up by more than "
          f"{WORSE_DB} dB; gate engaged = clips where the codec gate restored anything\n")
    for name, table in result["readme_tables"].items():
        title = GROUP_TITLES.get(name, "Every system on the training chain (LAME 32 kbit/s, minimp3, float)")
        print(f"{title}\n\n{table}\n")
    print(f"benchmark wall time {result['wall_s']:.1f} s")


# -- figure ---------------------------------------------------------------------------------------------
def render_figure(clips: list[Clip], config_path: str | None, model: str, png: Path) -> dict[str, Any] | None:
    """Spectrograms clean / LAME 32 kbit/s through the dithered 16-bit ffmpeg decode / restored of the first
    speech and first music clip, colours in dB re the loudest bin of each row; {"path", "clips",
    "condition"}, or None (reason printed) without matplotlib."""
    from realtime.engine.restorer import Restorer
    from realtime.frontends.spectrogram import Panel, render

    restorer = Restorer(engine_config(config_path, model))
    rows, titles, shown = [], [], []
    for kind in ("speech", "music"):
        clip = next((c for c in clips if c.kind == kind), None)
        if clip is None:
            continue
        reference, decoded, _ = degraded(FIGURE, clip.samples, seed=0)
        restored = restorer.restore(decoded[None, :], MODEL_RATE_HZ)[0]
        rows.append([Panel("clean", reference, MODEL_RATE_HZ),
                     Panel("MP3 32 kbit/s, 16-bit dithered", decoded, MODEL_RATE_HZ),
                     Panel("gapfill", restored, MODEL_RATE_HZ)])
        titles.append(kind)
        shown.append(clip.id)
    try:
        png.parent.mkdir(parents=True, exist_ok=True)
        render(rows, png, row_titles=titles, per_row=True)
    except GapfillError as exc:
        print(f"quality: no picture: {exc}")
        return None
    return {"path": str(png), "clips": shown, "condition": FIGURE.name}


# -- main -----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--png", metavar="PATH", help="write the spectrogram figure (needs matplotlib)")
    parser.add_argument("--config", metavar="FILE", help="engine settings (YAML) over the shipped defaults")
    parser.add_argument("--model", default="auto", help=f"model: {MODEL_CHOICES} (default auto: the shipped model "
                        "if models/ has it, else the config's)")
    parser.add_argument("--clips", type=int, default=6, help="validation clips per kind, speech and music (6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="longest clip in seconds (8)")
    parser.add_argument("--corpus", metavar="DIR", help="data v2 (default data/v2)")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS), help="condition groups (all)")
    parser.add_argument("--conditions", nargs="+", metavar="NAME",
                        help=f"only these conditions, of: {', '.join(BY_NAME)}")
    parser.add_argument("--visqol", choices=VISQOL_CHOICES, default="key",
                        help="where ViSQOL is measured: every condition, the key ones (default), none")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic clips instead of the corpus")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: two synthetic 2 s clips, "
                        f"{len(QUICK_CONDITIONS)} conditions, one process")
    return parser.parse_args(argv)


def chosen_conditions(args: argparse.Namespace) -> tuple[str, ...]:
    """Condition names to run, in CONDITIONS order."""
    if args.quick:
        return QUICK_CONDITIONS
    if args.conditions:
        return names_chosen(args.conditions, BY_NAME, "condition")
    return tuple(c.name for c in CONDITIONS if c.group in args.groups)


def names_chosen(wanted: list[str], known: Iterable[str], what: str) -> tuple[str, ...]:
    """The names of `known` that `wanted` asks for, in the order of `known`; GapfillError naming any wanted
    name that is not known (`what`: the kind of name, for the message)."""
    known = list(known)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise GapfillError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(n for n in known if n in wanted)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if not codec.available() or shutil.which("ffmpeg") is None:
        raise GapfillError(f"the quality benchmark needs lameenc, miniaudio, soxr and ffmpeg ({CODEC_EXTRA_HINT})")
    if args.quick:
        args.synthetic, args.seconds, args.workers = True, min(args.seconds, 2.0), 1
    names = chosen_conditions(args)
    config = engine_config(args.config, args.model)
    model = config.model["path"]
    if args.synthetic:
        clips, clip_source = synthetic_clips(args.seconds), "synthetic (benchmarks.signals)"
    else:
        from benchmarks.clips import DEFAULT_CORPUS

        corpus = Path(args.corpus) if args.corpus else DEFAULT_CORPUS
        clips, clip_source = validation_clips(args.clips, args.seconds, corpus), f"validation split of {corpus}"
    use_visqol, visqol_note = (False, "skipped (--visqol none)") if args.visqol == "none" else visqol_status()
    results = run_clips(clips, names, args.config, model, args.visqol, use_visqol, max(1, args.workers))
    rows = [row for clip_result in results for row in clip_result["rows"]]
    identity = next((r["facts"]["visqol_identity"] for r in results if "visqol_identity" in r["facts"]), None)
    visqol = visqol_facts(args.visqol, use_visqol, visqol_note, identity)
    figure = render_figure(clips, args.config, model, Path(args.png)) if args.png else None
    method = config.phase["method"]
    result = {
        "benchmark": "quality", "schema": SCHEMA_VERSION, "quick": bool(args.quick), "environment": environment(),
        "engine": {"model": model_name(config), "phase_method": method, "gate": bool(config.gate["enabled"])},
        "clip_source": clip_source,
        "clips": [{"id": c.id, "kind": c.kind, "source": c.source, "seconds": round(len(c.samples) / MODEL_RATE_HZ, 3)}
                  for c in clips],
        "conditions": [BY_NAME[n].describe(systems_of(BY_NAME[n], method),
                                           use_visqol and bool(visqol_systems(BY_NAME[n], SYSTEMS, args.visqol)))
                       for n in names],
        "systems": list(SYSTEMS), "metrics": list(METRICS), "visqol": visqol,
        "summary": summarise(rows, names, method), "per_clip": rows,
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
