"""Strength curve (issue 24): LSD and ViSQOL of gapfill's output at strengths 0 to 1.

    python -m benchmarks.strength [--json PATH] [--clips 3] [--seconds 6]
    python -m benchmarks.strength --quick        # CI smoke run: two synthetic 2 s clips, one chain

Clips: recordings of the validation split (training/split.json, never trained on) from the packages
the training corpus reads (training/corpus.py): speech from tuxpaint's spoken descriptions, one language
per clip (phrases trimmed of silence and joined), music from the hedgewars and wesnoth soundtracks
(`seconds` from MUSIC_START_S in); mono at 48 kHz. Each is encoded as LAME 32 kbit/s and decoded by the
training chain (minimp3, float) and the usual one (ffmpeg to 16-bit TPDF at 48 kHz), as in
benchmarks/quality.py, and restored at every strength of STRENGTHS. Scored against the clean reference:
the full-band log-spectral distance (evaluation/metrics.py) and ViSQOL v3 in audio mode (MOS-LQO, checked
against the reference implementation's identity value as benchmarks/quality.py does). Checked on every
clip: strength 0 is the pass-through's output (model.path passthrough, phase.method decoded) bit for bit,
strength 1 the default output bit for bit, and each metric moves one way from 0 to 1 (`monotonic`).

JSON: `benchmark`, `quick`, `environment`, `strengths`, `chains`, `clips` [{id, kind, source, seconds}],
`visqol` {used, status, identity}, `per_clip` [{clip, kind, chain, lsd_full [per strength], visqol [per
strength or null], strength0_is_passthrough, strength1_is_default, lsd_monotonic, visqol_monotonic}],
`curve` {chain: {kind: {lsd_full, visqol}}} (means per strength; kind speech, music, all),
`all_exact`, `monotonic` {lsd_clips, visqol_clips (how many of `clips` rows move one way), clips, means (the
curve's means all do)}, `table` {chain: Markdown}, `wall_s`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.clips import KINDS, Clip, synthetic_clips
from benchmarks.common import environment, format_table, markdown_table, mean_present, run_main, write_json
from benchmarks.quality import (
    BY_NAME, TRAINING, VISQOL_IDENTITY_REFERENCE, VISQOL_TOLERANCE, _as_16_bit, degraded, visqol_status,
)
from evaluation.metrics import clip_metrics, codec_cutoff_bin, power_db
from realtime.engine.config import MODEL_RATE_HZ
from realtime.errors import GapfillError

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHAINS = (TRAINING, "ffmpeg_s16_tpdf_48k")
QUICK_CHAINS = ("ffmpeg_s16_tpdf_48k",)
PASSTHROUGH = {"model": {"path": "passthrough"}, "phase": {"method": "decoded"}}
SPEECH_LANGUAGES = ("ru", "fr", "da", "bg", "ro", "be")
MUSIC_UNITS = ("hwmusic/Rock.ogg", "wesnoth/frantic.ogg", "hwmusic/main_theme.ogg", "wesnoth/wanderer.ogg")
MUSIC_START_S = 20.0
PHRASE_GAP_S = 0.15


def package_clips(per_kind: int, seconds: float) -> list[Clip]:
    """`per_kind` speech and music clips (mono (samples,) float32 at 48 kHz, `seconds` long) from the
    validation split's recordings in the installed packages (module doc)."""
    from training.corpus import list_units, load_split, read_48k, trim_silence

    split = load_split()
    units = {u.uid: u for u in list_units() if split.get(u.uid) == "val"}
    n = int(seconds * MODEL_RATE_HZ)
    clips = []
    for language in SPEECH_LANGUAGES[:per_kind]:
        phrases = sorted(uid for uid, u in units.items() if u.source == "tuxpaint" and uid.endswith(f"_{language}.ogg"))
        pieces, total = [], 0
        for uid in phrases:
            audio = read_48k(units[uid].files[0])
            if audio is None:
                continue
            phrase = trim_silence(audio).mean(axis=0)
            pieces += [phrase, np.zeros(int(PHRASE_GAP_S * MODEL_RATE_HZ), np.float32)]
            total += phrase.size + pieces[-1].size
            if total >= n:
                break
        if total < n:
            raise GapfillError(f"the validation split's tuxpaint '{language}' phrases last less than {seconds} s")
        clips.append(Clip(f"tuxpaint/{language}", "speech", "tuxpaint", np.concatenate(pieces)[:n]))
    for uid in MUSIC_UNITS[:per_kind]:
        if uid not in units:
            raise GapfillError(f"'{uid}' is not installed or not in the validation split")
        audio = read_48k(units[uid].files[0])
        start = int(MUSIC_START_S * MODEL_RATE_HZ)
        if audio is None or audio.shape[1] < start + n:
            raise GapfillError(f"'{uid}' is shorter than {MUSIC_START_S + seconds} s")
        clips.append(Clip(uid, "music", units[uid].source, np.ascontiguousarray(audio.mean(axis=0)[start : start + n])))
    if len(clips) < 2 * per_kind:
        raise GapfillError(f"{per_kind} clips of each kind wanted, found {len(clips)}")
    return clips


def is_monotonic(values: list[float]) -> bool:
    """Whether `values` never rise or never fall."""
    steps = np.diff(values)
    return bool(np.all(steps <= 0) or np.all(steps >= 0))


def evaluate(clip: Clip, index: int, chain: str, restorers: dict[str, Any], visqol: Any) -> dict[str, Any]:
    """One clip under one chain: LSD and ViSQOL at every strength, and the exactness checks."""
    reference, decoded, _ = degraded(BY_NAME[chain], clip.samples, seed=index)
    reference_db = power_db(reference)
    cutoff = codec_cutoff_bin(reference_db, power_db(decoded))
    strength_restorer = restorers["strength"]
    outputs = []
    for strength in STRENGTHS:
        strength_restorer.set_strength(strength)
        outputs.append(strength_restorer.restore(decoded, MODEL_RATE_HZ))
    lsd = [round(clip_metrics(reference, out, cutoff, reference_db)["lsd_full"], 4) for out in outputs]
    scores = None
    if visqol is not None:
        scores = [round(float(visqol.measure_from_arrays(_as_16_bit(reference), _as_16_bit(out),
                                                         sample_rate=MODEL_RATE_HZ).moslqo), 4) for out in outputs]
    return {
        "clip": clip.id, "kind": clip.kind, "chain": chain, "lsd_full": lsd, "visqol": scores,
        "strength0_is_passthrough": bool(np.array_equal(outputs[0], restorers["passthrough"].restore(decoded, MODEL_RATE_HZ))),
        "strength1_is_default": bool(np.array_equal(outputs[-1], restorers["default"].restore(decoded, MODEL_RATE_HZ))),
        "lsd_monotonic": is_monotonic(lsd),
        "visqol_monotonic": None if scores is None else is_monotonic(scores),
    }


def curve(rows: list[dict[str, Any]], chains: tuple[str, ...]) -> dict[str, Any]:
    """Mean LSD and ViSQOL per strength, per chain and kind (speech, music, all)."""
    result: dict[str, Any] = {}
    for chain in chains:
        result[chain] = {}
        for kind in KINDS + ("all",):
            chosen = [r for r in rows if r["chain"] == chain and kind in (r["kind"], "all")]
            result[chain][kind] = {
                metric: [mean_present([r[metric][i] if r[metric] is not None else None for r in chosen])
                         for i in range(len(STRENGTHS))]
                for metric in ("lsd_full", "visqol")
            }
    return result


def table_rows(summary: dict[str, Any], chain: str) -> list[list[str]]:
    """One row per strength: LSD and ViSQOL for speech, music and all clips of `chain`."""
    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return [[f"{s:g}"] + [cell(summary[chain][kind]["lsd_full"][i], 2) for kind in KINDS + ("all",)]
            + [cell(summary[chain][kind]["visqol"][i], 3) for kind in KINDS + ("all",)]
            for i, s in enumerate(STRENGTHS)]


HEADERS = ("strength", "LSD speech", "LSD music", "LSD all", "ViSQOL speech", "ViSQOL music", "ViSQOL all")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.strength", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--clips", type=int, default=3, help="clips of each kind (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per clip (default 6)")
    parser.add_argument("--no-visqol", action="store_true", help="LSD only")
    parser.add_argument("--quick", action="store_true", help="two synthetic 2 s clips, one chain")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from realtime.engine.restorer import Restorer

    args = parse_args(argv)
    start = time.perf_counter()
    chains = QUICK_CHAINS if args.quick else CHAINS
    clips = synthetic_clips(2.0) if args.quick else package_clips(args.clips, args.seconds)
    usable, status = visqol_status()
    visqol = None
    identity = None
    if usable and not args.no_visqol:
        from visqol import VisqolApi

        visqol = VisqolApi()
        visqol.create(mode="audio")
        clean = _as_16_bit(clips[0].samples)
        identity = float(visqol.measure_from_arrays(clean, clean, sample_rate=MODEL_RATE_HZ).moslqo)
        if abs(identity - VISQOL_IDENTITY_REFERENCE) > VISQOL_TOLERANCE:
            raise GapfillError(f"ViSQOL identity score {identity} differs from the reference {VISQOL_IDENTITY_REFERENCE}")
    restorers = {"strength": Restorer.from_config(None), "default": Restorer.from_config(None),
                 "passthrough": Restorer.from_config(None, PASSTHROUGH)}
    rows = [evaluate(clip, index, chain, restorers, visqol) for chain in chains for index, clip in enumerate(clips)]
    summary = curve(rows, chains)
    tables = {chain: markdown_table(HEADERS, table_rows(summary, chain)) for chain in chains}
    text = "\n\n".join(format_table(HEADERS, table_rows(summary, chain), title=f"Strength curve, LAME 32 kbit/s, {chain}")
                       for chain in chains)
    exact = all(r["strength0_is_passthrough"] and r["strength1_is_default"] for r in rows)
    monotonic = {
        "lsd_clips": sum(r["lsd_monotonic"] for r in rows),
        "visqol_clips": sum(bool(r["visqol_monotonic"]) for r in rows) if visqol is not None else None,
        "clips": len(rows),
        "means": all(is_monotonic(values) for chain in summary.values() for kind in chain.values()
                     for values in kind.values() if None not in values),
    }
    text += f"\n\nstrength 0 = pass-through and 1 = default, bit for bit, on every clip: {exact}"
    text += (f"\nmonotonic in strength: LSD on {monotonic['lsd_clips']} of {len(rows)} clips, ViSQOL on "
             f"{monotonic['visqol_clips']} of {len(rows)}; the means of every chain and kind: {monotonic['means']}")
    print(text)
    write_json({"benchmark": "strength", "quick": args.quick, "environment": environment(),
                "strengths": list(STRENGTHS), "chains": list(chains),
                "clips": [{"id": c.id, "kind": c.kind, "source": c.source, "seconds": c.samples.size / MODEL_RATE_HZ}
                          for c in clips],
                "visqol": {"used": visqol is not None, "status": status, "identity": identity},
                "per_clip": rows, "curve": summary, "all_exact": exact, "monotonic": monotonic,
                "table": tables, "wall_s": round(time.perf_counter() - start, 1)}, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
