"""Oracle benchmark (#23): where the restored output's quality is lost, by replacing parts of its magnitudes
with the clean ones.

    python -m benchmarks.oracles [--model PATH] [--test-clips 2] [--val-clips 3] [--seconds 6]
        [--condition lame_32k_mono] [--json PATH]
    python -m benchmarks.oracles --quick      # CI smoke run: benchmarks/models.py's two synthetic clips, 2 s

Clips: benchmarks/models.py's (data v2 test mixes and validation speech, music and mixes, their most active
`--seconds`), coded by `--condition` (a benchmarks/models.py condition, with its channels: a stereo mix stays
stereo, jointly coded, where the condition codes it so; mono clips skip the stereo-only one) and restored by
the engine (`--model`, at the framing its metadata names), every channel; the first channel is scored. The
output, the decoded and the clean clip are analysed with a Hann STFT (FFT_SIZE, HOP); each variant below
keeps the output's phase, changes its magnitudes and is resynthesised; ViSQOL (audio mode) against the clean
clip. The cutoff is the metrics' codec cutoff of the decoded clip against the clean one (evaluation/metrics.py:
the top of the band the codec kept; each row carries the gate's own, `gate_cutoff_hz`, None where the gate
engaged without a band limit, beside it); "band powers" are the mean powers over the bins above the cutoff of
each of model v2's BANDS bands, flat inside the band:
- `decoded`, `output`: as they are (`output` resynthesised: `resynthesis_error` checks the round trip);
- `clean_under_cutoff`: the clean magnitudes under the cutoff, the output's above;
- `clean_band_powers_above`: above the cutoff the clean band powers;
- `clean_magnitudes_above`: above the cutoff the clean magnitudes;
- `clean_level_output_shape` / `clean_shape_output_level`: above the cutoff the output's band powers scaled
  to the clean summed power of each frame / the clean band powers scaled to the output's summed power;
- `band_powers_smoothed`: the clean band powers smoothed over SMOOTH_FRAMES frames (Hann);
- `band_powers_held`: the clean band powers of every HOLD_FRAMES-th frame held for the frames after it;
- `band_powers_3db`, `band_powers_6db`: the clean band powers with that much random error (normal, dB,
  per band and frame, fixed seed);
- `clean_level_per_band_above`: above the cutoff the output's band powers, each band scaled by one gain over
  the clip to the clean band's level (mean dB over the frames where both have power): the output's course at
  the clean per-band level of the clip;
- `holes_clean`: the clean magnitudes in the decoded clip's holes under the cutoff only (bins HOLE_DB or more
  under the clean, the clean at least HOLE_DB above the metrics' floor), the output elsewhere;
- `clean_band_powers_under`: under the cutoff the output's bins scaled per band and frame to the clean power
  of the band's bins there (the output's fine structure), the output's above; `band_powers_under_3db` the same
  with 3 dB of random error per band and frame, as `band_powers_3db` above the cutoff;
- `clean_magnitudes`: the clean magnitudes everywhere, the output's phase: what any magnitude restorer with
  this phase can reach;
- stereo clips only (None on mono ones), the first channel rebuilt as mid + side (M = (L + R) / 2, S = (L - R)
  / 2, each analysed alike): `clean_side_envelope_above` / `clean_mid_envelope_above`, above the cutoff the
  output's side / mid at the clean one's band powers (flat inside each band, the output's phase), the other
  as output: how much of the exact envelope above the cutoff lies in the side and how much in the mid.
Summary per set and kind: mean ViSQOL of each variant over the clips the gate engaged on (the output
differs from the decoded clip; the stereo variants over the stereo ones among them), and the clips it did not.

Prints a Markdown table; writes JSON (`--json`, default benchmarks/results/oracles.json, oracles-quick.json
with --quick): `benchmark`, `schema`, `quick`, `environment`, `engine`, `condition`, `variants`, `per_clip`
[{set, kind, clip, channels (as coded), engaged, cutoff_hz, gate_cutoff_hz, resynthesis_error, <variant>:
ViSQOL}], `summary`
{set/kind: {clips, not_engaged, <variant>: mean}}, `wall_s`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.clips import DEFAULT_CORPUS, REPO
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, markdown_table, model_name, run_main, write_json,
)
from benchmarks.models import BY_NAME, applies, corpus_clips, degraded, quick_clips
from benchmarks.quality import start_required_visqol, visqol_score
from evaluation.metrics import FFT_SIZE, HOP, codec_cutoff_bin, hole_bins, magnitude_db, power_db
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.restorer import Restorer
from realtime.engine.stft import istft_offline, stft_offline

SCHEMA_VERSION = 3
DEFAULT_JSON = REPO / "benchmarks" / "results" / "oracles.json"
QUICK_JSON = REPO / "benchmarks" / "results" / "oracles-quick.json"
BANDS = 32
SMOOTH_FRAMES = 19                 # about 100 ms at HOP
HOLD_FRAMES = 2                    # about 10.7 ms at HOP: model v2's GRU update interval
SEED = 3
Magnitudes = Callable[[dict[str, np.ndarray]], np.ndarray]
STEREO_VARIANTS = ("clean_side_envelope_above", "clean_mid_envelope_above")


def band_membership(bands: int = BANDS) -> np.ndarray:
    """(F, bands) 0/1: which of model v2's bands each bin belongs to (training/v2/features.py's edges)."""
    from training.v2.features import band_edges

    edges = band_edges(bands)
    member = np.zeros((FFT_SIZE // 2 + 1, bands))
    for b in range(bands):
        member[edges[b]: edges[b + 1], b] = 1.0
    return member


def band_powers_above(mag: np.ndarray, above: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(frames, F) magnitudes -> (frames, F): each bin above the cutoff (`above`, (F,) 0/1) at the mean power
    of its band's bins above the cutoff, as a magnitude; 0 under the cutoff."""
    counts = np.maximum(above @ member, 1.0)
    return np.sqrt((((mag ** 2) * above) @ member / counts) @ member.T) * above


def _held(x: np.ndarray, frames: int) -> np.ndarray:
    return x[(np.arange(len(x)) // frames) * frames]


def _smoothed(power: np.ndarray, frames: int) -> np.ndarray:
    kernel = np.hanning(frames + 2)[1:-1]
    kernel /= kernel.sum()
    return np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="same"), 0, power)


def _scaled(envelope: np.ndarray, to: np.ndarray) -> np.ndarray:
    """envelope scaled per frame to the summed power of `to` (both (frames, F), zero under the cutoff)."""
    ratio = ((to ** 2).sum(1, keepdims=True) + 1e-30) / ((envelope ** 2).sum(1, keepdims=True) + 1e-30)
    return envelope * np.sqrt(ratio)


def _with_error(envelope: np.ndarray, db: float, member: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return envelope * (10 ** (rng.normal(0.0, db, (len(envelope), member.shape[1])) / 20) @ member.T)


def band_powers_matched(mag: np.ndarray, to: np.ndarray, region: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(frames, F) magnitudes `mag`, inside `region` ((F,) 0/1) scaled per band and frame so that the power of
    each band's bins in the region is that of `to` there; 0 outside the region."""
    ratio = (((to * region) ** 2) @ member + 1e-30) / (((mag * region) ** 2) @ member + 1e-30)
    return mag * region * np.sqrt(ratio @ member.T)


def clip_level_matched(envelope: np.ndarray, to: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(frames, F) band-flat `envelope` scaled per band by one gain: the mean over frames where both have power
    of the band's log power ratio `to` / `envelope` (both band-flat, (frames, F))."""
    counts = np.maximum(member.sum(0), 1.0)
    power, target = (envelope ** 2) @ member / counts, (to ** 2) @ member / counts
    both = (power > 1e-30) & (target > 1e-30)
    log_ratio = np.where(both, np.log(np.where(both, target, 1.0) / np.where(both, power, 1.0)), 0.0)
    gain = np.exp(0.5 * log_ratio.sum(0) / np.maximum(both.sum(0), 1))
    return envelope * (gain @ member.T)


def decoded_holes(clean: np.ndarray, decoded: np.ndarray, below: np.ndarray) -> np.ndarray:
    """(frames, F) 0/1: the metrics' holes (`evaluation.metrics.hole_bins`) of the decoded magnitudes against
    the clean ones, under the cutoff (`below`)."""
    return hole_bins(magnitude_db(clean), magnitude_db(decoded)) * below


def variants(member: np.ndarray, rng: np.random.Generator) -> dict[str, Magnitudes]:
    """Variant name -> its magnitudes (frames, F) from a dict of the clip's `clean`, `decoded`, `output`
    magnitudes, `above`/`below` (F,) 0/1, `env` / `env_out` (the clean / output band powers above the
    cutoff) and `holes` (frames, F) 0/1 (`decoded_holes`)."""
    def above_from(key: str) -> Magnitudes:
        return lambda m: m["output"] * m["below"] + m[key] * m["above"]

    return {
        "decoded": lambda m: m["decoded"],
        "output": lambda m: m["output"],
        "clean_under_cutoff": lambda m: m["clean"] * m["below"] + m["output"] * m["above"],
        "clean_band_powers_above": above_from("env"),
        "clean_magnitudes_above": above_from("clean"),
        "clean_level_output_shape": lambda m: m["output"] * m["below"] + _scaled(m["env_out"], m["env"]),
        "clean_shape_output_level": lambda m: m["output"] * m["below"] + _scaled(m["env"], m["env_out"]),
        "band_powers_smoothed": lambda m: m["output"] * m["below"] + np.sqrt(_smoothed(m["env"] ** 2,
                                                                                       SMOOTH_FRAMES)),
        "band_powers_held": lambda m: m["output"] * m["below"] + _held(m["env"], HOLD_FRAMES),
        "band_powers_3db": lambda m: m["output"] * m["below"] + _with_error(m["env"], 3.0, member, rng),
        "band_powers_6db": lambda m: m["output"] * m["below"] + _with_error(m["env"], 6.0, member, rng),
        "clean_level_per_band_above": lambda m: m["output"] * m["below"] + clip_level_matched(m["env_out"],
                                                                                             m["env"], member),
        "holes_clean": lambda m: m["clean"] * m["holes"] + m["output"] * (1.0 - m["holes"]),
        "clean_band_powers_under": lambda m: band_powers_matched(m["output"], m["clean"], m["below"], member)
        + m["output"] * m["above"],
        "band_powers_under_3db": lambda m: band_powers_matched(m["output"], _with_error(m["clean"], 3.0, member, rng),
                                                               m["below"], member) + m["output"] * m["above"],
        "clean_magnitudes": lambda m: m["clean"],
    }


def analysed(x: np.ndarray) -> np.ndarray:
    """Hann STFT (frames, F) of (samples,), FFT_SIZE trailing zeros included so that it holds every sample."""
    return stft_offline(np.concatenate([x.astype(np.float64), np.zeros(FFT_SIZE)]), FFT_SIZE, HOP)


def resynthesised(spectra: np.ndarray, samples: int) -> np.ndarray:
    """The first `samples` of the Hann ISTFT of (frames, F) spectra of `analysed`, aligned to its input,
    float32."""
    padded = np.concatenate([spectra, np.zeros((FFT_SIZE // HOP, spectra.shape[1]), spectra.dtype)])
    return istft_offline(padded, FFT_SIZE, HOP)[FFT_SIZE - 1: FFT_SIZE - 1 + samples].astype(np.float32)


def stereo_variants(clean: np.ndarray, output: np.ndarray, above: np.ndarray,
                    member: np.ndarray) -> dict[str, np.ndarray]:
    """Stereo clean and output clips (2, samples) -> each of STEREO_VARIANTS (module doc) as its first channel
    (samples,) f32: mid + side, one of the output's two with the clean one's band powers above the cutoff
    (`above`, (F,) 0/1)."""
    samples = clean.shape[1]
    halves = {"mid": 0.5, "side": -0.5}
    spectra = {(part, name): analysed(0.5 * x[0] + sign * x[1])
               for part, sign in halves.items() for name, x in (("clean", clean), ("output", output))}

    def enveloped(part: str) -> np.ndarray:
        out = spectra[part, "output"]
        envelope = band_powers_above(np.abs(spectra[part, "clean"]), above, member)
        return out * (1.0 - above) + envelope * np.exp(1j * np.angle(out))

    made = {}
    for name, part in zip(STEREO_VARIANTS, ("side", "mid")):
        other = "mid" if part == "side" else "side"
        made[name] = resynthesised(enveloped(part) + spectra[other, "output"], samples)
    return made


def evaluate_clip(restorer: Restorer, condition: str, clip_samples: np.ndarray, seed: int,
                  member: np.ndarray) -> dict[str, Any] | None:
    """One clip's row (module doc): coded and restored as benchmarks/models.py does (every channel, the
    condition's own channel count), scored on the first channel; None where the condition does not apply to
    the clip (stereo coding of a mono clip)."""
    if not applies(BY_NAME[condition], clip_samples.shape[0]):
        return None
    reference, decoded, _ = degraded(BY_NAME[condition], clip_samples, seed)
    output = restorer.restore(decoded, MODEL_RATE_HZ)
    stereo = (reference, output) if reference.shape[0] == 2 else None
    reference, decoded, output = reference[:1], decoded[:1], output[:1]
    n = reference.shape[1]
    spectra = {name: analysed(x[0]) for name, x in (("clean", reference), ("decoded", decoded), ("output", output))}
    cutoff = codec_cutoff_bin(power_db(reference[0]), power_db(decoded[0]))
    above = (np.arange(FFT_SIZE // 2 + 1) >= cutoff).astype(np.float64)
    m = {name: np.abs(s) for name, s in spectra.items()}
    m.update(above=above, below=1.0 - above, env=band_powers_above(m["clean"], above, member),
             env_out=band_powers_above(m["output"], above, member))
    m["holes"] = decoded_holes(m["clean"], m["decoded"], m["below"])
    phase = np.exp(1j * np.angle(spectra["output"]))
    row: dict[str, Any] = {"channels": 1 if stereo is None else 2,
                           "engaged": bool(np.max(np.abs(output - decoded)) > 0.0),
                           "cutoff_hz": cutoff * MODEL_RATE_HZ / FFT_SIZE,
                           "gate_cutoff_hz": restorer.codec_report()["cutoff_hz"]}
    rng = np.random.default_rng(SEED + seed)
    for name, magnitudes in variants(member, rng).items():
        signal = decoded[0] if name == "decoded" else resynthesised(magnitudes(m) * phase, n)
        if name == "output":
            row["resynthesis_error"] = float(np.max(np.abs(signal - output[0])))
        row[name] = round(visqol_score(reference[0], signal), 4)
    made = {} if stereo is None else stereo_variants(*stereo, above, member)
    for name in STEREO_VARIANTS:
        row[name] = round(visqol_score(reference[0], made[name]), 4) if name in made else None
    return row


def summarise(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    summary = {}
    for key in sorted({f"{r['set']}/{r['kind']}" for r in rows}):
        mine = [r for r in rows if f"{r['set']}/{r['kind']}" == key]
        engaged = [r for r in mine if r["engaged"]]
        summary[key] = {"clips": len(engaged), "not_engaged": len(mine) - len(engaged)}
        for name in names:
            scores = [r[name] for r in engaged if r[name] is not None]
            summary[key][name] = round(float(np.mean(scores)), 3) if scores else None
    return summary


def table(summary: dict[str, Any], names: list[str]) -> str:
    header = ["ViSQOL", *(f"{key} ({block['clips']})" for key, block in summary.items())]
    lines = [[name, *("-" if block[name] is None else f"{block[name]:.2f}" for block in summary.values())]
             for name in names]
    return markdown_table(header, lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oracles", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help=f"model: {MODEL_CHOICES} (default: the shipped one)")
    parser.add_argument("--corpus", metavar="DIR", default=str(DEFAULT_CORPUS), help="data v2 (data/v2)")
    parser.add_argument("--test-clips", type=int, default=2, metavar="N", help="test mixes (2)")
    parser.add_argument("--val-clips", type=int, default=3, metavar="N", help="validation clips per kind (3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="most active part of each clip, s (6)")
    parser.add_argument("--condition", default="lame_32k_mono", choices=sorted(BY_NAME), help="(lame_32k_mono)")
    parser.add_argument("--json", metavar="PATH", help="results (default benchmarks/results/oracles.json)")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: two synthetic 2 s clips")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    start_required_visqol("oracle")
    config = engine_config(None, args.model)
    restorer = Restorer(config)
    sets = (quick_clips(min(args.seconds, 2.0)) if args.quick
            else corpus_clips(Path(args.corpus), args.test_clips, args.val_clips, args.seconds))
    member = band_membership()
    rows = []
    for clip_set in sets:
        for i, clip in enumerate(clip_set.clips):
            row = evaluate_clip(restorer, args.condition, clip.samples, i, member)
            if row is not None:
                rows.append({"set": clip_set.name, "kind": clip.kind, "clip": clip.id, **row})
            print(f"oracles: {clip.id} done after {time.perf_counter() - began:.0f} s", flush=True)
    names = [*variants(member, np.random.default_rng(0)), *STEREO_VARIANTS]
    summary = summarise(rows, names)
    result = {"benchmark": "oracles", "schema": SCHEMA_VERSION, "quick": bool(args.quick),
              "environment": environment(), "engine": {"model": model_name(config), "stft": dict(config.stft)},
              "condition": args.condition, "variants": names, "per_clip": rows, "summary": summary,
              "wall_s": round(time.perf_counter() - began, 1)}
    print(f"\ngapfill oracles: {model_name(config)}, {args.condition}; mean ViSQOL over the clips the gate "
          "engaged on (count in brackets)\n")
    print(table(summary, names))
    write_json(result, args.json or str(QUICK_JSON if args.quick else DEFAULT_JSON))
    return 0


if __name__ == "__main__":
    run_main(main)
