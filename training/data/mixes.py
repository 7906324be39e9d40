"""Dense mixes built from stems, as released music is: a work's parts rendered as bass, chords and lead,
drums in time with them, a "vocal" line of speech and sometimes a soundtrack bed; each stem levelled, equalised
and panned, summed, bus-compressed, brightened a little and driven into a brick-wall limiter near 0 dBFS.

A mix draws every stem from units on one side of the split (`Pools`): a training-side work gets training-side
kits, voices and beds; a validation-side work only validation-side ones. Validation-side mixes of the first
TEST_MIX_WORKS works are the held-out dense-mix test set (split "test"), the others split "val".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ
from training import corpus
from training.corpus import Unit
from training.data import dsp, stems
from training.data.audio import read_source_48k

CLIP_S = 10.0
CLIPS_PER_MIX = 3
TEST_MIX_WORKS = 16             # x CLIPS_PER_MIX clips of CLIP_S: the dense-mix test set
VOICE_SECONDS = 25.0            # speech gathered for one vocal line
P_BED = 0.3


@dataclass
class Pools:
    """Units one side of the split offers a mix: drum kits, voices (lists of speech units read together)
    and soundtrack tracks for beds."""

    kits: list[Unit] = field(default_factory=list)
    voices: list[list[Unit]] = field(default_factory=list)
    beds: list[Unit] = field(default_factory=list)


def _side_ratio(x: np.ndarray) -> float:
    """RMS of the side (L - R) / 2 over RMS of the mid (L + R) / 2 of a stereo x (2, n)."""
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    return float(np.sqrt(np.mean(side ** 2) / max(float(np.mean(mid ** 2)), 1e-20)))


def _normalized(x: np.ndarray, level_db: float) -> np.ndarray:
    """x scaled so that its RMS over frames within 40 dB of its loudest is level_db."""
    levels = corpus.frame_levels_db(x)
    active = levels[levels > levels.max() - 40] if len(levels) else levels
    current = 10 * np.log10(np.mean(10 ** (active / 10))) if len(active) else -120.0
    return x * np.float32(dsp.db_to_gain(level_db - current))


def _voice_pieces(units: list[Unit], rng: random.Random) -> tuple[list[np.ndarray], list[str]]:
    """Trimmed mono speech pieces (1, samples) from the units' files in a seeded order, up to VOICE_SECONDS,
    and the units they came from."""
    files = [(u.uid, f) for u in units for f in u.files]
    rng.shuffle(files)
    pieces, used, total = [], set(), 0.0
    for uid, f in files[:80]:
        x, _ = read_source_48k(f)
        if x is None:
            continue
        x = corpus.trim_silence(x.mean(0, keepdims=True))
        if x.shape[1] > 0.3 * MODEL_RATE_HZ:
            pieces.append(x)
            used.add(uid)
            total += x.shape[1] / MODEL_RATE_HZ
        if total >= VOICE_SECONDS:
            break
    return pieces, sorted(used)


def _bed(unit: Unit, seconds: float, rng: random.Random) -> np.ndarray | None:
    """A stretch of `seconds` from a random place in a soundtrack track, stereo, or None if it is filtered out."""
    x, _ = read_source_48k(unit.files[0])
    n = int(seconds * MODEL_RATE_HZ)
    if x is None or x.shape[1] < n:
        return None
    start = rng.randrange(x.shape[1] - n + 1)
    x = x[:, start: start + n]
    return x if x.shape[0] == 2 else np.repeat(x[:1], 2, axis=0)


def master(mix: np.ndarray, rng: random.Random) -> tuple[np.ndarray, dict]:
    """The bus: high-pass 25 Hz, glue compression, a high-shelf lift, loudness to -8..-4 dBFS RMS, half the
    time a soft clipper, then the brick-wall limiter (ceiling -1..-0.1 dBFS): a crest factor of about
    8-11 dB, as loud released music has. Returns (mastered mix, the settings)."""
    settings = {"comp_ratio": round(rng.uniform(1.5, 4.0), 2), "comp_threshold_db": round(rng.uniform(-4, 2), 1),
                "air_db": round(rng.uniform(0, 2), 1), "drive_rms_db": round(rng.uniform(-8, -4), 1),
                "clip_above_ceiling_db": round(rng.uniform(0, 2), 1) if rng.random() < 0.5 else None,
                "ceiling_db": round(rng.uniform(-1.0, -0.1), 2), "limiter_release_s": round(rng.uniform(0.01, 0.08), 3)}
    y = dsp.equalize(mix, [("highpass", 25.0), ("highshelf", 10_000.0, settings["air_db"], 0.7)])
    y = dsp.compress(y, dsp.rms_db(y) + settings["comp_threshold_db"], settings["comp_ratio"],
                     rng.uniform(0.005, 0.03), rng.uniform(0.08, 0.3))
    y = y * np.float32(dsp.db_to_gain(settings["drive_rms_db"] - dsp.rms_db(y)))
    if settings["clip_above_ceiling_db"] is not None:
        y = dsp.soft_clip(y, dsp.db_to_gain(settings["ceiling_db"] + settings["clip_above_ceiling_db"]))
    y = dsp.limit(y, settings["ceiling_db"], rng.uniform(0.0015, 0.005), rng.uniform(0.002, 0.01),
                  settings["limiter_release_s"])
    return y, settings


def make_mix(work: Unit, pools: Pools, seed: str) -> tuple[list[np.ndarray], dict]:
    """CLIPS_PER_MIX stereo clips (2, CLIP_S * 48 kHz) of one mix of `work`, and the facts of the mix (bpm,
    programmes, the units of every stem, levels, master settings)."""
    rng = random.Random(seed)
    seconds = CLIP_S * CLIPS_PER_MIX
    bpm = rng.uniform(80, 150)
    arrangement = stems.arrange(stems.score_parts(work.files[0]), seconds * bpm / 60, rng)
    soundfont = corpus.SOUNDFONTS[rng.randrange(len(corpus.SOUNDFONTS))]
    parts = stems.render_parts(arrangement, bpm, seconds, soundfont)
    units, facts = [work.uid], {"bpm": round(bpm, 1), "soundfont": soundfont.rsplit("/", 1)[-1], "stems": []}
    mix = np.zeros((2, int(seconds * MODEL_RATE_HZ)), np.float32)
    side = rng.choice([-1, 1])
    for part, audio in zip(arrangement, parts):
        level = {"bass": rng.uniform(-22, -18), "lead": rng.uniform(-24, -19)}.get(part.role, rng.uniform(-28, -22))
        position = 0.0 if part.role == "bass" else side * rng.uniform(0.2, 0.8)
        side = -side
        bands = [("highpass", 30.0 if part.role == "bass" else rng.uniform(120, 300)),
                 ("peak", rng.uniform(300, 6000), rng.uniform(-3, 3), 1.0),
                 ("highshelf", rng.uniform(6000, 10000), rng.uniform(0, 4), 0.7)]
        width = min(1.3, rng.uniform(0.2, 0.6) / max(_side_ratio(audio), 1e-3))  # some presets are very wide
        mix += dsp.pan(_normalized(dsp.equalize(audio, bands), level), position, width)
        facts["stems"].append({"role": part.role, "program": part.program, "level_db": round(level, 1)})
    if pools.kits:
        kit = rng.choice(pools.kits)
        bank = stems.synth_bank(kit.uid) if kit.source == "synthetic-drums" else stems.kit_bank(kit.files[0])
        drums, groove = stems.sequence_drums(bank, bpm, seconds, rng)
        if np.any(drums):
            drums = dsp.equalize(drums, [("highshelf", 8000.0, rng.uniform(-9, -3), 0.7)])
            mix += _normalized(drums, rng.uniform(-22, -17))
            units.append(kit.uid)
            facts["stems"].append({"role": "drums", "kit": kit.uid, **groove})
    if pools.voices:
        voice = rng.choice(pools.voices)
        pieces, voice_units = _voice_pieces(voice, rng)
        vocal, vocal_facts = stems.vocal_line(pieces, bpm, seconds, rng)
        if np.any(vocal):
            mix += _normalized(vocal, rng.uniform(-19, -15))
            units += voice_units
            facts["stems"].append({"role": "vocal", "voice": voice[0].uid if len(voice) == 1 else
                                   f"{voice[0].source} ({len(voice_units)} files)", **vocal_facts})
    if pools.beds and rng.random() < P_BED:
        track = rng.choice(pools.beds)
        bed = _bed(track, seconds, rng)
        if bed is not None:
            mix += _normalized(bed, rng.uniform(-34, -28))
            units.append(track.uid)
            facts["stems"].append({"role": "bed", "track": track.uid})
    mastered, facts["master"] = master(mix, rng)
    n = int(CLIP_S * MODEL_RATE_HZ)
    clips = [mastered[:, k * n: (k + 1) * n] for k in range(CLIPS_PER_MIX)]
    facts["units"] = sorted(set(units))
    return clips, facts
