"""Headroom benchmark: which stage limits restoration, the model, the gate or the phase?

    python -m benchmarks.headroom [--clips 4] [--seconds 6] [--conditions a,b] [--json PATH] [--model auto]
    python -m benchmarks.headroom --quick      # CI smoke run: the synthetic clips, 2 s, one condition

Per clip (mono validation clips, benchmarks/clips.py) and quality-benchmark condition (benchmarks/quality.py
`degraded`, seed = clip index), the engine restores the decoded input while its per-hop magnitudes are
recorded; then the full-band LSD against the clean reference (evaluation/metrics.py, at the clip's level)
of, on the same frames (the engine's: its hop and window; its fft_size must be the metrics' FFT_SIZE):

- `decoded`: the decoded input;
- `engine`: the engine's output (re-analysed);
- `gated`: the gate's magnitudes themselves (what the phase stage is asked to realise): engine minus gated is
  what the phase stage loses;
- `clean_phase`: the gated magnitudes resynthesised with the clean signal's phase (an oracle no real-time
  stage has, so engine minus clean_phase bounds what any phase estimate could add);
- `model_wide_open`: the model's estimate in every bin of every frame the gate restores (its gain, not
  its bin choice): gated minus this is what the gate's choice of bins costs (negative: what it saves).

LSD says how far each system is from the clean clip; a second measure says which way above the cutoff: the
mean signed level error there (dB, system minus clean; evaluation/metrics.py `level_error_above`), e.g.
how much quieter the engine's output is than the magnitudes the phase stage was given.

Prints a table of mean LSD per kind with the changes against the decoded input and one of the level errors;
writes JSON (`--json`): `benchmark`, `quick`, `environment`, `engine`, `clips`, `conditions`, `per_clip`
[{clip, kind, condition, <system>: LSD dB, level_above: {<system>: dB or null}}], `summary` {condition:
{kind: {system: mean LSD dB}}}, `level_above` {condition: {kind: {system: mean dB or null}}}, `table`,
`wall_s`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.clips import Clip, synthetic_clips, validation_clips
from benchmarks.common import MODEL_CHOICES, engine_config, environment, format_table, model_name, run_main, write_json
from benchmarks.quality import BY_NAME, degraded
from realtime.engine.config import MODEL_RATE_HZ
from realtime.errors import GapfillError
from realtime.engine.restorer import Restorer
from realtime.engine.stage import HopBuffers
from realtime.engine.stft import istft_offline, stft_offline
from realtime.engine.windows import synthesis_span
from evaluation.metrics import (
    FFT_SIZE, codec_cutoff_bin, level_error_above, magnitude_db, power_db, spectrum_metrics,
)

SYSTEMS = ("decoded", "engine", "gated", "clean_phase", "model_wide_open")
DEFAULT_CONDITIONS = ("ffmpeg_s16_tpdf_48k", "gain_minus30", "lame_48k", "aac_32k")
QUICK_CONDITIONS = ("ffmpeg_s16_tpdf_48k",)
MAX_FRAME_OFFSET = 8
ALIGNMENT_TOLERANCE = 1e-3
"""Largest difference between a recorded frame and the offline STFT's, relative to the largest magnitude."""


class Recorder:
    """Observes a Restorer's gate stage (`Restorer.observe`) to keep, per hop, channel 0's decoded,
    estimated and gated magnitudes and whether the gate was restoring."""

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer
        self.hops: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []
        self._gate = restorer.stages["gate"]
        restorer.observe(self)

    def stage_started(self, stage: str) -> None:
        """Observer hook: nothing to do before a stage."""

    def stage_finished(self, stage: str, buffers: HopBuffers) -> None:
        """Observer hook: after the gate, copy what it was given and what it wrote."""
        if stage == "gate":
            self.hops.append((buffers.aligned_magnitudes[0].copy(), buffers.estimate[0].copy(),
                              buffers.gated[0].copy(), bool(self._gate.activity[0] > 0)))

    def run(self, decoded: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(output (n,), {'decoded', 'estimate', 'gated': (frames, F), 'active': (frames,)}) for mono decoded
        (n,), the recorded hops of the restoring pass aligned with the frames of `stft_offline(decoded)` at the
        engine's framing (frames the engine did not reach stay zero). `restore` first runs the stream's head
        through the engine for the gate to decide from (`Restorer.decide_ahead`): those hops come first and
        are left out (the restoring pass is the last hops, at most MAX_FRAME_OFFSET more than the frames)."""
        self.hops.clear()
        output = self.restorer.restore(decoded[None, :], MODEL_RATE_HZ)[0]
        restorer = self.restorer
        spectra = np.abs(stft_offline(decoded, restorer.fft_size, restorer.hop, restorer.config.window))
        hops = self.hops[-(len(spectra) + MAX_FRAME_OFFSET):]
        recorded = np.array([h[0] for h in hops])
        offset = _frame_offset(recorded, spectra)
        frames = {k: np.zeros_like(spectra, dtype=np.float32) for k in ("decoded", "estimate", "gated")}
        frames["active"] = np.zeros(len(spectra), bool)
        for j, (dec, est, out, active) in enumerate(hops):
            t = j - offset
            if 0 <= t < len(spectra):
                frames["decoded"][t], frames["estimate"][t], frames["gated"][t] = dec, est, out
                frames["active"][t] = active
        return output, frames


def _frame_offset(recorded: np.ndarray, spectra: np.ndarray) -> int:
    """The k with recorded[j] == spectra[j - k], |k| <= MAX_FRAME_OFFSET, (frames, F) each (the engine's
    stream starts with padding); GapfillError where no k lines the frames up (float32 rounding allowed)."""
    def error(k: int) -> float:
        a, b = recorded[max(0, k):], spectra[max(0, -k):]
        m = min(len(a), len(b))
        return float(np.abs(a[:m] - b[:m]).max())
    best = min(range(-MAX_FRAME_OFFSET, MAX_FRAME_OFFSET + 1), key=error)
    if error(best) > ALIGNMENT_TOLERANCE * max(float(spectra.max()), 1e-9):
        raise GapfillError(f"headroom: the engine's recorded frames do not line up with the input's STFT "
                           f"(best offset {best}, error {error(best):.3g})")
    return best


def evaluate(clip: Clip, index: int, condition_name: str, recorder: Recorder) -> dict[str, Any]:
    """One row: the LSD of every system for `clip` under the condition."""
    condition = BY_NAME[condition_name]
    reference, decoded, _ = degraded(condition, clip.samples, index)
    hop, window = recorder.restorer.hop, recorder.restorer.config.window
    output, frames = recorder.run(decoded)
    level = 10 ** (-condition.chain.gain_db / 20)
    reference_db, decoded_db = power_db(reference * level, hop, window), power_db(decoded * level, hop, window)
    cutoff = codec_cutoff_bin(reference_db, decoded_db)
    clean_phase = np.exp(1j * np.angle(stft_offline(reference, FFT_SIZE, hop, window)))
    delay = synthesis_span(FFT_SIZE, hop, window) - 1
    resynthesised = istft_offline(frames["gated"] * clean_phase, FFT_SIZE, hop, window)[delay:]
    resynthesised = np.concatenate([resynthesised, np.zeros(len(decoded) - len(resynthesised))])
    wide_open = np.where(frames["active"][:, None], frames["estimate"], frames["decoded"])
    spectra = {"decoded": decoded_db, "engine": power_db(output * level, hop, window),
               "gated": magnitude_db(frames["gated"] * level, hop, window),
               "clean_phase": power_db(resynthesised * level, hop, window),
               "model_wide_open": magnitude_db(wide_open * level, hop, window)}
    return {"clip": clip.id, "kind": clip.kind, "condition": condition_name,
            **{s: spectrum_metrics(reference_db, spectra[s], cutoff)["lsd_full"] for s in SYSTEMS},
            "level_above": {s: level_error_above(reference_db, spectra[s], cutoff) for s in SYSTEMS}}


def _by_group(rows: list[dict[str, Any]], conditions: tuple[str, ...], reduce: Any) -> dict[str, Any]:
    """condition -> kind -> system -> reduce(rows of that condition and kind, system)."""
    return {c: {kind: {s: reduce([r for r in rows if r["condition"] == c and r["kind"] == kind], s) for s in SYSTEMS}
                for kind in sorted({r["kind"] for r in rows})} for c in conditions}


def summarise(rows: list[dict[str, Any]], conditions: tuple[str, ...]) -> dict[str, Any]:
    """condition -> kind -> system -> mean LSD (dB)."""
    return _by_group(rows, conditions, lambda group, s: round(float(np.mean([r[s] for r in group])), 3))


def summarise_level(rows: list[dict[str, Any]], conditions: tuple[str, ...]) -> dict[str, Any]:
    """condition -> kind -> system -> mean signed level error above the cutoff (dB), None where no clip has
    a region above the cutoff."""
    def mean(group: list[dict[str, Any]], s: str) -> float | None:
        known = [r["level_above"][s] for r in group if r["level_above"][s] is not None]
        return round(float(np.mean(known)), 2) if known else None
    return _by_group(rows, conditions, mean)


def table(summary: dict[str, Any]) -> str:
    """Mean LSD per condition and kind, each system with its change against the decoded input."""
    rows = []
    for condition, kinds in summary.items():
        for kind, means in kinds.items():
            base = means["decoded"]
            rows.append([f"{condition} {kind}", f"{base:.2f}",
                         *(f"{means[s]:.2f} ({100 * (means[s] / base - 1):+.1f} %)" for s in SYSTEMS[1:])])
    return format_table(["condition", "decoded dB", *SYSTEMS[1:]], rows, "full-band LSD (dB)")


def level_table(level: dict[str, Any]) -> str:
    """Mean signed level error above the cutoff per condition and kind ("-": no region above the cutoff)."""
    rows = [[f"{condition} {kind}", *("-" if means[s] is None else f"{means[s]:+.2f}" for s in SYSTEMS)]
            for condition, kinds in level.items() for kind, means in kinds.items()]
    return format_table(["condition", *SYSTEMS], rows,
                        "level above the cutoff against the clean clip (dB, mean signed)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.headroom", description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=4, help="validation clips per kind (speech, music)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS), help="quality-benchmark condition names")
    p.add_argument("--model", default="auto", help=MODEL_CHOICES)
    p.add_argument("--config", default=None, help="engine YAML (default: the shipped settings)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--quick", action="store_true", help="smoke run: the synthetic clips, 2 s, QUICK_CONDITIONS")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    conditions = QUICK_CONDITIONS if args.quick else tuple(args.conditions.split(","))
    unknown = [c for c in conditions if c not in BY_NAME]
    if unknown:
        raise GapfillError(f"unknown condition {unknown[0]!r} (see benchmarks/quality.py)")
    config = engine_config(args.config, args.model)
    if config.fft_size != FFT_SIZE:
        raise GapfillError(f"the headroom benchmark scores the engine's frames on the metrics' {FFT_SIZE // 2 + 1} "
                           f"bins: stft.fft_size must be {FFT_SIZE}, got {config.fft_size}")
    recorder = Recorder(Restorer(config))
    clips = synthetic_clips(2.0) if args.quick else validation_clips(args.clips, args.seconds)
    rows = [evaluate(clip, index, name, recorder) for name in conditions for index, clip in enumerate(clips)]
    summary, level = summarise(rows, conditions), summarise_level(rows, conditions)
    text = table(summary) + "\n\n" + level_table(level)
    print(text)
    write_json({"benchmark": "headroom", "quick": args.quick, "environment": environment(),
                "engine": {"model": model_name(config)}, "conditions": list(conditions),
                "clips": [{"id": c.id, "kind": c.kind} for c in clips], "per_clip": rows, "summary": summary,
                "level_above": level,
                "table": text, "wall_s": round(time.perf_counter() - start, 1)}, args.json)
    return 0


if __name__ == "__main__":
    run_main(main)
