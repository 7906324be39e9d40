"""Stems for dense mixes: instrument parts rendered by fluidsynth, drums sequenced from one-shots (hydrogen
kits or kits synthesised here), and a "vocal" line made of speech. Every stem is float32 (2, samples) at 48 kHz,
`seconds` long, in time with the others (`bpm`, 16th-note steps).
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import signal

from realtime.engine.config import MODEL_RATE_HZ
from training import corpus
from training.data import augment, dsp

MIDI_TICKS_PER_QUARTER = 480
PART_GAP_S = 3.0                 # silence between parts rendered one after another in one fluidsynth run
FLUIDSYNTH_TIMEOUT_S = 600       # wall clock, generous: the build runs niced on a shared machine
DRUM_CLASSES = ("kick", "snare", "hat", "cym", "tom", "perc")   # corpus._drum_class's classes
ROLE_PROGRAMS = {
    "bass": [32, 33, 34, 35, 36, 38, 39],
    "lead": [80, 81, 82, 84, 87, 56, 65, 66, 73, 40, 29, 30, 11, 62],
    "chords": [0, 2, 4, 5, 16, 17, 18, 24, 25, 26, 27, 48, 49, 50, 88, 89, 90, 91, 94, 61, 52],
}


# -- instrument parts --------------------------------------------------------------------------------
@dataclass
class Part:
    """One stem's notes: (onset, duration) in quarter notes, MIDI pitch, velocity 1-127; GM programme."""

    role: str
    program: int
    notes: list[tuple[float, float, int, int]]


def score_parts(work: str) -> list[list[tuple[float, float, int]]]:
    """A music21 corpus work's parts as (onset, duration, pitch) lists in quarter notes, lowest part first
    (by mean pitch); empty parts left out."""
    from music21 import converter

    parts = []
    for p in converter.parse(work).parts:
        notes = [(float(n.offset), float(n.quarterLength), int(pitch.midi))
                 for n in p.flatten().notes for pitch in n.pitches if n.quarterLength > 0]
        if notes:
            parts.append(notes)
    return sorted(parts, key=lambda ns: np.mean([pitch for _, _, pitch in ns]))


def arrange(parts: list[list[tuple[float, float, int]]], quarters: float, rng: random.Random) -> list[Part]:
    """Up to five stems from a work's parts for `quarters` quarter notes (the work looped to fill them): the
    lowest part as bass (moved into E1-A2 by octaves), the highest as a lead, the others as chords, one of
    them pulsed in eighths; programmes drawn from ROLE_PROGRAMS."""
    if len(parts) > 5:
        parts = [parts[0]] + sorted(rng.sample(parts[1:-1], 3), key=parts.index) + [parts[-1]]
    out = []
    for i, notes in enumerate(parts):
        role = "bass" if i == 0 and len(parts) > 1 else "lead" if i == len(parts) - 1 else "chords"
        length = max(on + d for on, d, _ in notes)
        looped = [(on + k * length, d, p) for k in range(int(quarters // length) + 1) for on, d, p in notes
                  if on + k * length < quarters]
        shift = 0
        if role == "bass":
            shift = 12 * round((40 - np.mean([p for _, _, p in notes])) / 12)
        elif role == "lead" and np.mean([p for _, _, p in notes]) < 60:
            shift = 12
        pulse = role == "chords" and rng.random() < 0.5 and not any(r.role == "chords-pulse" for r in out)
        events = []
        for on, d, p in looped:
            d = min(d, quarters - on)
            if pulse:
                events += [(on + k * 0.5, min(0.45, on + d - (on + k * 0.5)), p + shift, rng.randint(60, 100))
                           for k in range(max(1, int(d / 0.5)))]
            else:
                events.append((on, d * rng.uniform(0.85, 1.0), p + shift, rng.randint(70, 110)))
        out.append(Part("chords-pulse" if pulse else role, rng.choice(ROLE_PROGRAMS[role]), events))
    return out


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(parts: list[Part], bpm: float, part_offset_q: float) -> bytes:
    """A format-0 standard MIDI file: part k on its own channel (9, the GM drum channel, skipped) starting
    at k * part_offset_q quarter notes, centred (we pan later), reverb send 30, chorus 0."""
    events: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big"))]
    for k, part in enumerate(parts):
        ch = k if k < 9 else k + 1
        start = k * part_offset_q
        events += [(0, 1, bytes([0xC0 | ch, part.program])), (0, 1, bytes([0xB0 | ch, 10, 64])),
                   (0, 1, bytes([0xB0 | ch, 7, 100])), (0, 1, bytes([0xB0 | ch, 91, 30])),
                   (0, 1, bytes([0xB0 | ch, 93, 0]))]
        for on, d, pitch, velocity in part.notes:
            if not 0 <= pitch <= 127:
                continue
            t0 = int(round((start + on) * MIDI_TICKS_PER_QUARTER))
            t1 = max(t0 + 1, int(round((start + on + d) * MIDI_TICKS_PER_QUARTER)))
            events += [(t0, 3, bytes([0x90 | ch, pitch, velocity])), (t1, 2, bytes([0x80 | ch, pitch, 0]))]
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = bytearray(), 0
    for tick, _, data in events:
        track += _vlq(tick - now) + data
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + MIDI_TICKS_PER_QUARTER.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def _fluidsynth(midi: bytes, soundfont: str) -> np.ndarray:
    """A standard MIDI file rendered by fluidsynth at 48 kHz (gain 0.6, its default reverb), (2, samples)."""
    with tempfile.TemporaryDirectory() as folder:
        mid, wav = os.path.join(folder, "parts.mid"), os.path.join(folder, "parts.wav")
        with open(mid, "wb") as f:
            f.write(midi)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(MODEL_RATE_HZ), "-F", wav, soundfont, mid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=FLUIDSYNTH_TIMEOUT_S)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == MODEL_RATE_HZ
    return np.ascontiguousarray(audio.T)


def render_parts(parts: list[Part], bpm: float, seconds: float, soundfont: str) -> list[np.ndarray]:
    """Each part rendered by fluidsynth (one run, the parts one after another), (2, seconds * 48 kHz) each."""
    n = int(seconds * MODEL_RATE_HZ)
    offset_q = (seconds + PART_GAP_S) * bpm / 60
    audio = _fluidsynth(midi_file(parts, bpm, offset_q), soundfont)
    stems = []
    for k in range(len(parts)):
        start = int(round(k * offset_q * 60 / bpm * MODEL_RATE_HZ))
        stem = audio[:, start: start + n]
        stems.append(np.pad(stem, ((0, 0), (0, n - stem.shape[1]))))
    return stems


def render_work(work: str, seed: str, max_seconds: float) -> np.ndarray | None:
    """A music21 work rendered whole, as corpus.render_score does (every part a programme of a random family
    of corpus.GM_PROGRAMS, one of the two soundfonts), at a drawn tempo of 70-130 bpm and cut after
    max_seconds (its notes, not fluidsynth's run, are cut: no wall-clock limit on a busy machine); peak at
    most 0.95. (2, samples), or None if silent."""
    rng = random.Random(seed)
    bpm = rng.uniform(70, 130)
    quarters = max_seconds * bpm / 60
    parts = [Part("part", rng.choice(corpus.GM_PROGRAMS[rng.choice(sorted(corpus.GM_PROGRAMS))]),
                  [(on, min(d, quarters - on), p, rng.randint(70, 110)) for on, d, p in notes if on < quarters])
             for notes in score_parts(work)]
    x = _fluidsynth(midi_file(parts, bpm, 0.0), corpus.SOUNDFONTS[rng.randrange(len(corpus.SOUNDFONTS))])
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 1e-4:
        return None
    return x * np.float32(min(1.0, 0.95 / peak))


# -- drums -------------------------------------------------------------------------------------------
def kit_bank(kit_dir: str) -> dict[str, list[np.ndarray]]:
    """A hydrogen kit's one-shots by class (corpus._drum_class), (2, samples) at 48 kHz, at most 2 s each."""
    bank: dict[str, list[np.ndarray]] = {}
    for name in sorted(os.listdir(kit_dir)):
        if name.rsplit(".", 1)[-1].lower() not in ("wav", "flac", "aiff", "aif"):
            continue
        try:
            x = corpus.read_48k_raw(os.path.join(kit_dir, name))
        except (RuntimeError, ValueError, sf.LibsndfileError):
            continue
        if x is not None:
            bank.setdefault(corpus._drum_class(name), []).append(x[:, : 2 * MODEL_RATE_HZ])
    return bank


def _decay(seconds: float, tau_s: float) -> np.ndarray:
    t = np.arange(int(seconds * MODEL_RATE_HZ)) / MODEL_RATE_HZ
    return np.exp(-t / tau_s)


def _band(noise: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    sos = signal.butter(2, [low_hz, min(high_hz, 23_000)], btype="band", fs=MODEL_RATE_HZ, output="sos")
    return signal.sosfilt(sos, noise)


def _dark(x: np.ndarray, corner_hz: float) -> np.ndarray:
    """x through a first-order low-pass (-6 dB/octave above corner_hz), as real cymbals fall off."""
    return signal.sosfilt(signal.butter(1, corner_hz, fs=MODEL_RATE_HZ, output="sos"), x)


def _metal(rng: np.random.Generator, seconds: float, scale: float) -> np.ndarray:
    """Six detuned square waves (the 808 cymbal's oscillators) times `scale`."""
    t = np.arange(int(seconds * MODEL_RATE_HZ)) / MODEL_RATE_HZ
    freqs = np.array([205.3, 304.4, 369.6, 522.7, 540.0, 800.0]) * scale * rng.uniform(0.97, 1.03, 6)
    return np.sign(np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 6.28, (6, 1)))).sum(0) / 6


def synth_bank(seed: str, variants: int = 3) -> dict[str, list[np.ndarray]]:
    """A drum kit synthesised from `seed`: `variants` one-shots per class of DRUM_CLASSES, (2, samples)."""
    rng = np.random.default_rng(int(corpus._hash01(f"synthkit:{seed}") * 2 ** 32))
    drive = rng.uniform(1.0, 3.0)
    metal_scale = rng.uniform(1.0, 1.7)
    bank: dict[str, list[np.ndarray]] = {c: [] for c in DRUM_CLASSES}
    for _ in range(variants):
        t = np.arange(int(0.6 * MODEL_RATE_HZ)) / MODEL_RATE_HZ
        f0, f1 = rng.uniform(110, 200), rng.uniform(38, 60)
        freq = f1 + (f0 - f1) * np.exp(-t / rng.uniform(0.02, 0.06))
        body = np.sin(2 * np.pi * np.cumsum(freq) / MODEL_RATE_HZ) * np.exp(-t / rng.uniform(0.12, 0.3))
        click = _band(rng.standard_normal(len(t)), 2000, 20000) * np.exp(-t / 0.002) * rng.uniform(0.2, 0.6)
        bank["kick"].append(np.tanh(drive * (body + click)) / np.tanh(drive))
        n = int(0.5 * MODEL_RATE_HZ)
        tone = sum(np.sin(2 * np.pi * rng.uniform(160, 260) * k * np.arange(n) / MODEL_RATE_HZ) for k in (1, 1.5))
        snare = tone * _decay(0.5, rng.uniform(0.04, 0.09)) * 0.5
        snare += _band(rng.standard_normal(n), rng.uniform(800, 2000), 20000) * _decay(0.5, rng.uniform(0.08, 0.18))
        bank["snare"].append(snare)
        closed = rng.random() < 0.6
        length = 0.25 if closed else 0.9
        hat = 0.6 * _metal(rng, length, metal_scale) + 0.4 * rng.standard_normal(int(length * MODEL_RATE_HZ))
        hat = _dark(_band(hat, rng.uniform(6000, 9000), 22000), rng.uniform(9000, 15000))
        bank["hat"].append(hat * _decay(length, 0.03 if closed else rng.uniform(0.15, 0.35)))
        cym = 0.5 * _metal(rng, 2.0, metal_scale * rng.uniform(1.0, 1.4)) + 0.5 * rng.standard_normal(2 * MODEL_RATE_HZ)
        cym = _dark(_band(cym, rng.uniform(3000, 6000), 22000), rng.uniform(8000, 14000))
        bank["cym"].append(cym * _decay(2.0, rng.uniform(0.4, 0.9)))
        t = np.arange(int(0.7 * MODEL_RATE_HZ)) / MODEL_RATE_HZ
        tom_f = rng.uniform(80, 240)
        tom = np.sin(2 * np.pi * np.cumsum(tom_f * (1 + 0.5 * np.exp(-t / 0.05))) / MODEL_RATE_HZ)
        bank["tom"].append(tom * np.exp(-t / rng.uniform(0.15, 0.35)))
        n = int(0.3 * MODEL_RATE_HZ)
        if rng.random() < 0.5:     # clap: four noise bursts
            env = sum(np.roll(_decay(0.3, 0.006), int(k * 0.011 * MODEL_RATE_HZ)) for k in range(3))
            perc = _band(rng.standard_normal(n), 900, 9000) * (env + _decay(0.3, 0.06))
        else:                      # cowbell
            perc = _band(_metal(rng, 0.3, rng.uniform(1.0, 1.3))[:n], 500, 5000) * _decay(0.3, 0.07)
        bank["perc"].append(perc)
    return {c: [np.repeat((s / np.abs(s).max())[None].astype(np.float32), 2, 0) for s in shots]
            for c, shots in bank.items()}


GROOVES = {   # per class, probability of a hit at each of 16 sixteenth steps
    "rock": {"kick": [1, 0, 0, 0, 0, 0, 0, .3, .9, 0, .3, 0, 0, 0, .2, 0],
             "snare": [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, .15], "hat": [1, 0] * 8},
    "four": {"kick": [1, 0, 0, 0] * 4, "snare": [0, 0, 0, 0, 1, 0, 0, 0] * 2, "hat": [0, 0, 1, 0] * 4,
             "perc": [0, 0, 0, 0, .8, 0, 0, 0] * 2},
    "half": {"kick": [1, 0, 0, .3, 0, 0, .4, 0, 0, 0, .6, 0, 0, 0, 0, 0],
             "snare": [0] * 8 + [1] + [0] * 7, "hat": [1, .2, .9, .2] * 4},
    "break": {"kick": [1, 0, .5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, .4, 0, 0],
              "snare": [0, 0, 0, 0, 1, 0, 0, .3, 0, .3, 0, 0, 1, 0, 0, .4], "hat": [.9, .6] * 8},
}


def sequence_drums(bank: dict[str, list[np.ndarray]], bpm: float, seconds: float,
                   rng: random.Random) -> tuple[np.ndarray, dict]:
    """A drum stem (2, seconds * 48 kHz): a groove of GROOVES in 16ths at `bpm`, a little swing, timing and
    velocity humanised, a crash on bar one (sometimes on later bars), a tom/snare fill every fourth bar;
    kick and snare centred, hats and cymbals to the sides. Returns (stem, facts)."""
    n = int(seconds * MODEL_RATE_HZ)
    out = np.zeros((2, n + 2 * MODEL_RATE_HZ), np.float32)
    groove_name = rng.choice(sorted(GROOVES))
    groove = GROOVES[groove_name]
    step = 60 / bpm / 4 * MODEL_RATE_HZ
    swing = rng.uniform(0, 0.15)
    hat_pan, cym_pan = rng.choice([-1, 1]) * rng.uniform(0.2, 0.5), rng.choice([-1, 1]) * rng.uniform(0.3, 0.7)
    for s in range(int(n / step) + 1):
        bar, pos = divmod(s, 16)
        hits = []
        if bar % 4 == 3 and pos >= 12:
            hits.append(("tom" if "tom" in bank and rng.random() < 0.6 else "snare", rng.uniform(0.6, 1.0)))
        else:
            hits += [(c, (1.0 if pos % 4 == 0 else 0.75) * rng.uniform(0.6, 1.0)) for c, p in groove.items()
                     if rng.random() < p[pos]]
        if pos == 0 and rng.random() < (0.9 if bar == 0 else 0.15):
            hits.append(("cym", rng.uniform(0.6, 1.0)))
        at = int(s * step + (swing * step if pos % 2 else 0) + rng.gauss(0, 0.002) * MODEL_RATE_HZ)
        for cls, velocity in hits:
            shots = bank.get(cls) or bank.get("perc") or []
            if not shots or at < 0 or at >= n:
                continue
            position = {"kick": 0.0, "snare": 0.05, "hat": hat_pan, "cym": cym_pan}.get(cls, rng.uniform(-0.6, 0.6))
            hit = dsp.pan(rng.choice(shots), position) * np.float32(velocity)
            end = min(out.shape[1], at + hit.shape[1])
            out[:, at:end] += hit[:, : end - at]
    return out[:, :n], {"groove": groove_name, "swing": round(swing, 3)}


# -- vocals ------------------------------------------------------------------------------------------
def vocal_line(pieces: list[np.ndarray], bpm: float, seconds: float, rng: random.Random) -> tuple[np.ndarray, dict]:
    """A "vocal" stem (2, seconds * 48 kHz) from mono speech pieces (1, samples): each pitched by +-4
    semitones (formants kept or not), slowed 0-30 %, entering on a beat, with a vocal chain (high-pass, light
    compression, presence and air boosts), sometimes a double-tracked copy to the sides, and a plate-like
    stereo reverb."""
    n = int(seconds * MODEL_RATE_HZ)
    dry = np.zeros((1, n + MODEL_RATE_HZ), np.float32)
    beat = 60 / bpm * MODEL_RATE_HZ
    at = int(beat * rng.randint(0, 2))
    used = 0
    while at < n and pieces:
        piece = pieces[used % len(pieces)]
        used += 1
        semitones = rng.uniform(-4, 4)
        y = augment.shift_pitch(augment.stretch(piece, rng.uniform(1.0, 1.3)), semitones)
        if rng.random() < 0.5:
            y = augment.shift_formants(y, 2 ** (-semitones / 12))
        end = min(dry.shape[1], at + y.shape[1])
        dry[:, at:end] += y[:, : end - at]
        at = int(np.ceil((end + rng.uniform(0.1, 0.6) * MODEL_RATE_HZ) / beat) * beat)
    dry = dry[:, :n]
    if not np.any(dry):
        return np.zeros((2, n), np.float32), {}
    dry = dsp.equalize(dry, [("highpass", 100.0), ("peak", rng.uniform(2500, 5000), rng.uniform(1, 4), 1.0),
                             ("highshelf", rng.uniform(8000, 12000), rng.uniform(0, 3), 0.7)])
    dry = dsp.compress(dry, dsp.rms_db(dry) + 3, 3.0, 0.005, 0.1)
    wet_stem = dsp.pan(dry, 0.0)
    doubled = rng.random() < 0.4
    if doubled:
        copy = augment.shift_pitch(np.roll(dry, int(0.02 * MODEL_RATE_HZ), axis=1), rng.uniform(-0.12, 0.12))
        wet_stem += 0.5 * (dsp.pan(copy, -0.7) + dsp.pan(np.roll(copy, 240, axis=1), 0.7)) / 2
    impulse = dsp.room_impulse(np.random.default_rng(rng.randrange(2 ** 31)), rng.uniform(0.8, 1.8), 0.0, 2)
    impulse[:, 0] = 0.0                                      # wet only
    send = dsp.db_to_gain(rng.uniform(-14, -6))
    stem = wet_stem + send * dsp.reverberate(dsp.equalize(wet_stem, [("highpass", 200.0)]), impulse)
    return stem.astype(np.float32), {"pieces": used, "doubled": doubled}
