"""Stream course benchmark (#23): how much of the course above the cutoff an MP3 stream's own side info holds.

    python -m benchmarks.stream_course [--test-clips 12] [--seconds 6] [--condition libmp3lame_32k] [--json PATH]
    python -m benchmarks.stream_course --quick    # CI smoke run: two synthetic stereo clips, 2 s

The course of a band is its level per granule (dB) minus its centred mean over COURSE_WINDOW_S: how it rises
and falls, which the decoded signal has lost above the codec's cutoff (training/v2/campaign/README.md). Per
clip (data v2's test mixes as benchmarks/models.py picks them, their most active `--seconds`), coded by an
MP3 `--condition` and restored by the shipped engine, per granule of the stream (evaluation/mp3_side_info.py:
576 samples at the stream's rate; granule g of the stream over granule g of the aligned audio):
- the target: the clean mid's course from the gate's cutoff (the engine's codec report; CUTOFF_FALLBACK_HZ
  where it reports none) to COURSE_TOP_HZ;
- `output`: the engine's output mid's course there;
- `stream`: each channel's bits (part2_3_length) and global gain, their courses, at granules -BACK to +AHEAD
  around the granule (a file's stream can be read ahead of its audio at no latency).
Linear least-squares fits pooled over the other clips predict each clip's clean course from `output`,
`stream` and `output_stream`; each fit's correlation with the clean course is the mean over clips. ViSQOL
(audio mode, first channel against the clean) of the output, of the output with the band above the cutoff
scaled per granule to the `output_stream` prediction at the output's spread (a realisable correction, on file
input), and to the clean course itself (one gain per granule for the band above: the bound of any such
correction).

Prints a Markdown table; writes JSON (`--json`, default benchmarks/results/stream_course.json,
stream_course-quick.json with --quick): `benchmark`, `schema`, `quick`, `environment`, `engine`, `condition`,
`per_clip` [{clip, sample_rate, granules, cutoff_hz, r {fit: correlation}, visqol {output, stream_course,
clean_course}}], `summary` {r {fit: mean}, visqol {variant: mean}, stream_course_higher, stream_course_lower},
`wall_s`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clips import DEFAULT_CORPUS, REPO
from benchmarks.common import engine_config, environment, markdown_table, model_name, run_main, write_json
from benchmarks.models import BY_NAME, KEY_CONDITIONS, corpus_clips, degraded, encoding_for
from benchmarks.oracles import analysed, resynthesised
from benchmarks.quality import start_required_visqol, visqol_score
from benchmarks.stereo import synthetic_stereo_clips
from evaluation.chains import encode
from evaluation.metrics import FFT_SIZE, HOP
from evaluation.mp3_side_info import GRANULE_SAMPLES, SideInfo, side_info
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.restorer import Restorer

SCHEMA_VERSION = 1
DEFAULT_JSON = REPO / "benchmarks" / "results" / "stream_course.json"
QUICK_JSON = REPO / "benchmarks" / "results" / "stream_course-quick.json"
COURSE_WINDOW_S = 0.5
COURSE_TOP_HZ = 16_000.0
CUTOFF_FALLBACK_HZ = 6_000.0
BACK, AHEAD = 2, 6                 # granules of side info around each granule
VISQOL_STEP = 0.01                 # a ViSQOL change counted as higher or lower
FITS = {"output": ("output",), "stream": ("stream",), "output_stream": ("output", "stream")}


def course(levels_db: np.ndarray, window: int) -> np.ndarray:
    """(G,) levels in dB -> minus their centred moving mean over `window` granules."""
    return levels_db - np.convolve(levels_db, np.ones(window) / window, mode="same")


def granule_levels_db(x: np.ndarray, granule: int, low_hz: float, high_hz: float) -> np.ndarray:
    """(samples,) at 48 kHz -> (G,) power in dB of each whole granule (`granule` samples, Hann) from `low_hz`
    to `high_hz`."""
    count = len(x) // granule
    frames = x[: count * granule].reshape(count, granule) * np.hanning(granule)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(granule, 1.0 / MODEL_RATE_HZ)
    return 10.0 * np.log10(power[:, (freqs >= low_hz) & (freqs < high_hz)].sum(1) + 1e-12)


def stream_features(info: SideInfo, granules: int, window: int) -> np.ndarray:
    """(granules, 4 C (BACK + AHEAD + 1)): the courses of each channel's bits and global gain, at granules
    -BACK to +AHEAD around each (clamped at the stream's ends)."""
    series = np.concatenate([info.part2_3_bits, info.global_gain], axis=1).astype(np.float64)
    courses = np.stack([course(column, window) for column in series.T], axis=1)
    shifted = [courses[np.clip(np.arange(granules) + shift, 0, len(courses) - 1)]
               for shift in range(-BACK, AHEAD + 1)]
    return np.concatenate(shifted, axis=1)


def clip_courses(restorer: Restorer, condition: str, samples: np.ndarray, seed: int) -> dict[str, Any]:
    """One clip coded and restored: its clean and output courses, stream features and what ViSQOL needs."""
    reference, decoded, _ = degraded(BY_NAME[condition], samples, seed)
    info = side_info(encode(reference, encoding_for(BY_NAME[condition], samples.shape[0])))
    output = restorer.restore(decoded, MODEL_RATE_HZ)
    cutoff_hz = restorer.codec_report()["cutoff_hz"] or CUTOFF_FALLBACK_HZ
    granule = GRANULE_SAMPLES * MODEL_RATE_HZ // info.sample_rate
    window = max(3, round(COURSE_WINDOW_S * MODEL_RATE_HZ / granule))
    count = reference.shape[1] // granule
    levels = {name: granule_levels_db(x.mean(0), granule, cutoff_hz, COURSE_TOP_HZ)
              for name, x in (("clean", reference), ("output", output))}
    return {"reference": reference, "output": output, "cutoff_hz": cutoff_hz, "sample_rate": info.sample_rate,
            "granule": granule, "clean": course(levels["clean"], window),
            "inputs": {"output": course(levels["output"], window)[:, None],
                       "stream": stream_features(info, count, window)}}


def leave_one_out(clips: list[dict[str, Any]], parts: tuple[str, ...]) -> list[np.ndarray]:
    """Each clip's clean course predicted by a least-squares fit over the other clips' (inputs `parts`)."""
    def design(clip: dict[str, Any]) -> np.ndarray:
        return np.concatenate([clip["inputs"][part] for part in parts], axis=1)

    predictions = []
    for k, clip in enumerate(clips):
        others = [c for j, c in enumerate(clips) if j != k]
        coef, *_ = np.linalg.lstsq(np.concatenate([design(c) for c in others]),
                                   np.concatenate([c["clean"] for c in others]), rcond=None)
        predictions.append(design(clip) @ coef)
    return predictions


def with_course(clip: dict[str, Any], target: np.ndarray) -> np.ndarray:
    """The output's first channel with its band above the cutoff scaled per granule by target - its own course
    (dB), (samples,) f32."""
    spectra = analysed(clip["output"][0])
    change_db = target - clip["inputs"]["output"][:, 0]
    granule_of_frame = np.minimum(np.arange(len(spectra)) * HOP // clip["granule"], len(change_db) - 1)
    first_bin = int(round(clip["cutoff_hz"] * FFT_SIZE / MODEL_RATE_HZ))
    spectra[:, first_bin:] *= (10.0 ** (change_db[granule_of_frame] / 20.0))[:, None]
    return resynthesised(spectra, clip["output"].shape[1])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def evaluate(clips: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Per clip: each fit's correlation with the clean course and the three ViSQOL scores (module doc)."""
    predicted = {name: leave_one_out(clips, parts) for name, parts in FITS.items()}
    rows = []
    for k, clip in enumerate(clips):
        own = clip["inputs"]["output"][:, 0]
        stream_course = predicted["output_stream"][k]
        stream_course = stream_course * own.std() / (stream_course.std() + 1e-12)
        reference = clip["reference"][0]
        rows.append({"clip": ids[k], "sample_rate": clip["sample_rate"], "granules": len(clip["clean"]),
                     "cutoff_hz": clip["cutoff_hz"],
                     "r": {name: round(correlation(clip["clean"], p[k]), 4) for name, p in predicted.items()},
                     "visqol": {"output": round(visqol_score(reference, clip["output"][0]), 4),
                                "stream_course": round(visqol_score(reference, with_course(clip, stream_course)), 4),
                                "clean_course": round(visqol_score(reference, with_course(clip, clip["clean"])), 4)}})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    gains = [r["visqol"]["stream_course"] - r["visqol"]["output"] for r in rows]
    return {"r": {name: round(float(np.mean([r["r"][name] for r in rows])), 3) for name in FITS},
            "visqol": {name: round(float(np.mean([r["visqol"][name] for r in rows])), 3)
                       for name in rows[0]["visqol"]},
            "stream_course_higher": sum(g > VISQOL_STEP for g in gains),
            "stream_course_lower": sum(g < -VISQOL_STEP for g in gains)}


def table(summary: dict[str, Any], clips: int) -> str:
    r, visqol = summary["r"], summary["visqol"]
    lines = [["the output's course", f"{r['output']:.3f}", f"{visqol['output']:.3f}"],
             ["the stream's side info alone", f"{r['stream']:.3f}", "-"],
             ["output and side info (ViSQOL: the output at that course, its own spread)",
              f"{r['output_stream']:.3f}", f"{visqol['stream_course']:.3f}"],
             ["the clean course (one gain per granule above the cutoff)", "1", f"{visqol['clean_course']:.3f}"]]
    return markdown_table([f"course above the cutoff ({clips} clips)", "r", "ViSQOL"], lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_course", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", metavar="DIR", default=str(DEFAULT_CORPUS), help="data v2 (data/v2)")
    parser.add_argument("--test-clips", type=int, default=12, metavar="N", help="test mixes (12)")
    parser.add_argument("--seconds", type=float, default=6.0, help="most active part of each clip, s (6)")
    parser.add_argument("--condition", default="libmp3lame_32k",
                        choices=[c for c in KEY_CONDITIONS if BY_NAME[c].encoding.container == "mp3"],
                        help="an MP3 condition of benchmarks/models.py (libmp3lame_32k)")
    parser.add_argument("--json", metavar="PATH", help="results (default benchmarks/results/stream_course.json)")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: two synthetic 2 s clips")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    start_required_visqol("stream course")
    config = engine_config(None, "default")
    restorer = Restorer(config)
    chosen = (synthetic_stereo_clips(min(args.seconds, 2.0)) if args.quick
              else corpus_clips(Path(args.corpus), args.test_clips, 0, args.seconds, val_kinds=())[0].clips)
    clips = [clip_courses(restorer, args.condition, clip.samples, i) for i, clip in enumerate(chosen)]
    rows = evaluate(clips, [clip.id for clip in chosen])
    summary = summarise(rows)
    result = {"benchmark": "stream_course", "schema": SCHEMA_VERSION, "quick": bool(args.quick),
              "environment": environment(), "engine": {"model": model_name(config), "stft": dict(config.stft)},
              "condition": args.condition, "per_clip": rows, "summary": summary,
              "wall_s": round(time.perf_counter() - began, 1)}
    print(f"\ngapfill stream course: {model_name(config)}, {args.condition}; fits left out clip by clip\n")
    print(table(summary, len(rows)))
    write_json(result, args.json or str(QUICK_JSON if args.quick else DEFAULT_JSON))
    return 0


if __name__ == "__main__":
    run_main(main)
