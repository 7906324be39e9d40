"""Clean 48 kHz training corpus from Debian and PyPI packages only (see DATA.md in the issue).

Sources (kind, split unit):
    speech  tuxpaint-stamps-default  *_desc_{be,bg,da,fr,ro,ru}.ogg     split by file
    speech  hedgewars-data           Sounds/voices/<pack>/*.ogg          split by voice pack
    music   wesnoth-1.16-music       core/music/*.ogg                    split by file
    music   hedgewars-data           Music/*.ogg (not EarthRise, olympics_sd)  split by file
    music   music21 corpus scores rendered with fluidsynth (two GM soundfonts)  split by score
    music   hydrogen-drumkits one-shots sequenced into random patterns      split by drum kit

Every source file is decoded, resampled to 48 kHz with soxr (VHQ, overshoot kept), filtered
(DATA.md: >0.1 % samples at |x| >= 0.98, or nothing above 16 kHz within 70 dB of the spectral
peak -> dropped), trimmed of silence and cut into 5-10 s segments. Short speech files are
concatenated (same split, same language/voice pack) with 0.2 s gaps into 5-10 s segments.

Output: data/clean/<segment id>.npy float32 (channels, samples) at 48 kHz and
data/clean_manifest.json. Work is per source unit, written atomically, and skipped when already
on disk, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ

SEG_MIN_S, SEG_MAX_S = 5.0, 10.0
SPLIT_FILE = Path(__file__).with_name("split.json")
VAL_FRACTION = 0.12

TUXPAINT_GLOB = "/usr/share/tuxpaint/stamps/**/*_desc_{lang}.ogg"
TUXPAINT_LANGS = ("be", "bg", "da", "fr", "ro", "ru")
HW_VOICES = "/usr/share/games/hedgewars/Data/Sounds/voices"
HW_MUSIC = "/usr/share/games/hedgewars/Data/Music"
HW_MUSIC_EXCLUDE = {"EarthRise.ogg", "olympics_sd.ogg"}
WESNOTH_MUSIC = "/usr/share/games/wesnoth/1.16/data/core/music"
DRUMKITS = "/usr/share/hydrogen/data/drumkits"
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")

MUSIC_MAX_S_PER_FILE = 120.0   # long tracks contribute at most this much (spread over the track)
N_RENDERS = 36                 # music21 scores rendered with fluidsynth
RENDER_MAX_S = 40.0
N_DRUM_PATTERNS = 48
DRUM_PATTERN_S = 8.0


@dataclass
class Unit:
    """One split unit: a list of source files that always land in the same split."""
    uid: str                       # stable id, also the key in split.json
    kind: str                      # "speech" | "music"
    source: str                    # package / generator name
    files: list[str] = field(default_factory=list)
    concat: bool = False           # short files concatenated into segments (speech)


# ----------------------------------------------------------------------------- listing sources
def list_units() -> list[Unit]:
    units: list[Unit] = []
    for lang in TUXPAINT_LANGS:
        for f in sorted(glob.glob(TUXPAINT_GLOB.format(lang=lang), recursive=True)):
            name = os.path.relpath(f, "/usr/share/tuxpaint/stamps")
            units.append(Unit(f"tuxpaint/{name}", "speech", "tuxpaint", [f], concat=True))
    for pack in sorted(os.listdir(HW_VOICES)) if os.path.isdir(HW_VOICES) else []:
        files = sorted(glob.glob(f"{HW_VOICES}/{pack}/*.ogg"))
        if files:
            units.append(Unit(f"hwvoice/{pack}", "speech", "hedgewars-voices", files, concat=True))
    for f in sorted(glob.glob(f"{WESNOTH_MUSIC}/*.ogg")):
        units.append(Unit(f"wesnoth/{os.path.basename(f)}", "music", "wesnoth", [f]))
    for f in sorted(glob.glob(f"{HW_MUSIC}/*.ogg")):
        if os.path.basename(f) not in HW_MUSIC_EXCLUDE:
            units.append(Unit(f"hwmusic/{os.path.basename(f)}", "music", "hedgewars-music", [f]))
    for i, work in enumerate(_render_works()):
        name = os.path.splitext(os.path.basename(work))[0]
        units.append(Unit(f"render/{i:02d}-{name}", "music", "music21+fluidsynth", [work]))
    for kit in sorted(os.listdir(DRUMKITS)) if os.path.isdir(DRUMKITS) else []:
        units.append(Unit(f"drums/{kit}", "music", "hydrogen-drumkits", [os.path.join(DRUMKITS, kit)]))
    return units


def _render_works() -> list[str]:
    """music21 corpus works to render (deterministic choice)."""
    try:
        from music21 import corpus
    except ImportError:
        return []
    works: list[str] = []
    for composer, n in (("bach", N_RENDERS),):
        paths = sorted(str(p) for p in corpus.getComposer(composer))
        rng = random.Random(composer)
        rng.shuffle(paths)
        works += paths[:n]
    return works[:N_RENDERS]


# ----------------------------------------------------------------------------- split
def _hash01(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def load_split() -> dict[str, str]:
    if SPLIT_FILE.exists():
        return json.loads(SPLIT_FILE.read_text())["units"]
    return {}


def assign_split(units: list[Unit], write: bool = False) -> dict[str, str]:
    """Split by source unit. The committed split.json wins; units it lacks go by a stable hash."""
    split = load_split()
    out = {}
    for u in units:
        out[u.uid] = split.get(u.uid) or ("val" if _hash01(u.uid) < VAL_FRACTION else "train")
    if write:
        SPLIT_FILE.write_text(json.dumps({
            "note": "train/validation split by source unit (file; voice pack; drum kit; score); "
                    "written by `python -m training corpus --write-split`",
            "units": dict(sorted(out.items()))}, indent=0) + "\n")
    return out


# ----------------------------------------------------------------------------- audio helpers
def _to_model_rate(x: np.ndarray, rate: int) -> np.ndarray:
    """(samples, channels) float32 at `rate` Hz -> (channels, samples) float32 at 48 kHz (soxr VHQ), a view."""
    import soxr

    if rate != MODEL_RATE_HZ:
        x = soxr.resample(x, rate, MODEL_RATE_HZ, quality="VHQ").astype(np.float32)
    return x.T


def read_48k(path: str) -> np.ndarray | None:
    """Decode any soundfile-readable file to float32 (channels, samples) at 48 kHz; None if rejected."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if x.shape[0] < 1024:
        return None
    if np.mean(np.abs(x) >= 0.98) > 0.001:       # clipped
        return None
    x = np.ascontiguousarray(_to_model_rate(x, sr))
    if not _has_high_band(x):
        return None
    return x


def _has_high_band(x: np.ndarray, n: int = 4096) -> bool:
    """Long-term spectrum above 16 kHz within 70 dB of its peak. A filter of its own (n-point symmetric Hann,
    `np.hanning`), not the engine's analysis window: changing it would change which files the corpus keeps."""
    m = x.mean(0)
    if len(m) < n:
        m = np.pad(m, (0, n - len(m)))
    frames = np.lib.stride_tricks.sliding_window_view(m, n)[:: n // 2][:400]
    p = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2, axis=0) + 1e-30
    f = np.fft.rfftfreq(n, 1 / MODEL_RATE_HZ)
    return 10 * np.log10(p[f > 16_000].max() / p.max()) > -70


LEVEL_FRAME = MODEL_RATE_HZ // 100    # samples: the 10 ms frames of `frame_levels_db`


def frame_levels_db(x: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (frames,) RMS level in dB of the channel mean per LEVEL_FRAME frame (a partial
    last frame dropped)."""
    m = x.mean(0)
    nfr = len(m) // LEVEL_FRAME
    return 10 * np.log10(np.mean(m[: nfr * LEVEL_FRAME].reshape(nfr, LEVEL_FRAME) ** 2, axis=1) + 1e-12)


def trim_silence(x: np.ndarray, rel_db: float = 50.0, abs_db: float = -65.0, margin_s: float = 0.05) -> np.ndarray:
    """Cut leading/trailing frames quieter than max(peak - rel_db, abs_db) (10 ms RMS)."""
    rms_db = frame_levels_db(x)
    if len(rms_db) == 0:
        return x[:, :0]
    active = np.nonzero(rms_db > max(rms_db.max() - rel_db, abs_db))[0]
    if len(active) == 0:
        return x[:, :0]
    pad = int(margin_s * MODEL_RATE_HZ)
    a = max(0, active[0] * LEVEL_FRAME - pad)
    b = min(x.shape[1], (active[-1] + 1) * LEVEL_FRAME + pad)
    return x[:, a:b]


def _active_fraction(x: np.ndarray, thr_db: float = -55.0) -> float:
    """Share of 10 ms frames above thr_db (0 for a clip shorter than one frame)."""
    rms_db = frame_levels_db(x)
    return float(np.mean(rms_db > thr_db)) if len(rms_db) else 0.0


def cut_segments(x: np.ndarray, rng: random.Random, max_total_s: float | None = None) -> list[np.ndarray]:
    """5-10 s segments; with max_total_s, an evenly spread subset of them."""
    segs, pos, n = [], 0, x.shape[1]
    while n - pos >= SEG_MIN_S * MODEL_RATE_HZ:
        ln = int(rng.uniform(SEG_MIN_S, SEG_MAX_S) * MODEL_RATE_HZ)
        ln = min(ln, n - pos)
        if n - pos - ln < SEG_MIN_S * MODEL_RATE_HZ and n - pos <= SEG_MAX_S * MODEL_RATE_HZ:
            ln = n - pos
        segs.append(x[:, pos: pos + ln])
        pos += ln
    segs = [s for s in segs if _active_fraction(s) > 0.5]
    if max_total_s is not None and segs:
        avg = np.mean([s.shape[1] for s in segs]) / MODEL_RATE_HZ
        keep = max(1, int(max_total_s / avg))
        if keep < len(segs):
            idx = np.linspace(0, len(segs) - 1, keep).round().astype(int)
            segs = [segs[i] for i in sorted(set(idx))]
    return segs


# ----------------------------------------------------------------------------- generators
GM_PROGRAMS = {
    "strings": [40, 41, 48, 49, 45], "brass": [56, 57, 61, 62, 63], "winds": [68, 71, 72, 64, 65],
    "guitar": [25, 27, 29, 30], "organ": [16, 17, 18, 19], "synth": [80, 81, 84, 87, 62],
    "piano": [1, 6, 7], "mallets": [8, 11, 13], "choir": [52, 54],
}


def render_score(work: str, index: int) -> np.ndarray | None:
    """Parse a music21 corpus work, give its parts varied GM programmes, render with fluidsynth."""
    from music21 import converter, instrument, midi

    rng = random.Random(work)
    score = converter.parse(work)
    if score.highestTime > 90:             # fluidsynth renders the whole file: keep ~the first 40 s
        score = score.measures(0, 24)
    families = list(GM_PROGRAMS)
    for p in score.parts:
        for inst in list(p.recurse().getElementsByClass(instrument.Instrument)):
            p.remove(inst, recurse=True)
        fam = rng.choice(families)
        inst = instrument.Instrument()
        inst.midiProgram = rng.choice(GM_PROGRAMS[fam])
        p.insert(0, inst)
    sf = SOUNDFONTS[index % 2]
    with tempfile.TemporaryDirectory() as td:
        mid, wav = os.path.join(td, "s.mid"), os.path.join(td, "s.wav")
        mf = midi.translate.music21ObjectToMidiFile(score)
        mf.open(mid, "wb"); mf.write(); mf.close()
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(MODEL_RATE_HZ), "-F", wav, sf, mid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        import soundfile as sfile
        x, sr = sfile.read(wav, dtype="float32", always_2d=True, frames=int(RENDER_MAX_S * MODEL_RATE_HZ))
    assert sr == MODEL_RATE_HZ
    x = x.T
    peak = np.abs(x).max()
    if peak < 1e-4:
        return None
    if peak > 0.95:
        x = x * (0.95 / peak)
    return np.ascontiguousarray(x, dtype=np.float32)


_DRUM_CLASSES = {
    "kick": ("kick", "bd", "bass"), "snare": ("snare", "sd", "rim", "clap"),
    "hat": ("hat", "hh", "shake"), "cym": ("crash", "ride", "cym", "rd", "splash", "china"),
    "tom": ("tom",), "perc": ("cb", "cow", "perc", "bell", "tamb", "conga", "bongo"),
}


def _drum_class(name: str) -> str:
    n = name.lower()
    for cls, keys in _DRUM_CLASSES.items():
        if any(k in n for k in keys):
            return cls
    return "perc"


def drum_patterns(kit_dir: str, n_patterns: int, seed: str) -> list[np.ndarray]:
    """Random 16th-note patterns from one kit's one-shots, stereo 48 kHz, DRUM_PATTERN_S long."""
    rng = random.Random(seed)
    files = sorted(f for f in glob.glob(os.path.join(kit_dir, "*")) if f.rsplit(".", 1)[-1].lower() in ("wav", "flac", "aiff", "aif"))
    samples: dict[str, list[np.ndarray]] = {}
    for f in files:
        try:
            x = read_48k_raw(f)
        except Exception:
            continue
        if x is None:
            continue
        samples.setdefault(_drum_class(os.path.basename(f)), []).append(x[:, : MODEL_RATE_HZ * 2])
    if not samples:
        return []
    out = []
    n = int(DRUM_PATTERN_S * MODEL_RATE_HZ)
    for _ in range(n_patterns):
        bpm = rng.uniform(80, 170)
        step = int(MODEL_RATE_HZ * 60 / bpm / 4)
        y = np.zeros((2, n + MODEL_RATE_HZ * 2), np.float32)
        prob = {"kick": [0.9, 0, 0.1, 0, 0.2, 0, 0.3, 0] * 2, "snare": [0, 0, 0, 0, 0.9, 0, 0.1, 0.1] * 2,
                "hat": [rng.uniform(0.5, 1.0) if i % 2 == 0 else rng.uniform(0, 0.7) for i in range(16)],
                "cym": [0.5] + [0.03] * 15, "tom": [0.05] * 16, "perc": [0.1] * 16}
        for s in range(n // step):
            for cls, p in prob.items():
                if cls in samples and rng.random() < p[s % 16]:
                    hit = rng.choice(samples[cls]) * rng.uniform(0.3, 1.0)
                    pan = rng.uniform(0.3, 0.7)
                    pos = s * step + rng.randint(0, step // 16)
                    h = hit.mean(0)
                    y[0, pos: pos + len(h)] += h * (1 - pan) * 2
                    y[1, pos: pos + len(h)] += h * pan * 2
        y = y[:, :n]
        peak = np.abs(y).max()
        if peak < 1e-3:
            continue
        out.append(np.ascontiguousarray(y * (rng.uniform(0.5, 0.9) / peak), dtype=np.float32))
    return out


def read_48k_raw(path: str) -> np.ndarray | None:
    """A one-shot sample as float32 (2, samples) at 48 kHz (mono doubled, channels past two dropped), unfiltered;
    None when shorter than 64 samples."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    if x.shape[0] < 64:
        return None
    x = _to_model_rate(x, sr)
    if x.shape[0] == 1:
        x = np.repeat(x, 2, 0)
    return np.ascontiguousarray(x[:2])


# ----------------------------------------------------------------------------- building
def _segments_for_unit(unit: Unit, index: int) -> list[np.ndarray]:
    rng = random.Random(unit.uid)
    if unit.source == "music21+fluidsynth":
        x = render_score(unit.files[0], index)
        return [] if x is None else cut_segments(trim_silence(x), rng)
    if unit.source == "hydrogen-drumkits":
        n_kits = max(1, len(os.listdir(DRUMKITS)))
        return drum_patterns(unit.files[0], max(1, N_DRUM_PATTERNS // n_kits), unit.uid)
    if unit.kind == "speech":
        # one tuxpaint file or a voice pack: mono, trimmed pieces (concatenated later)
        pieces = []
        for f in unit.files:
            x = read_48k(f)
            if x is None:
                continue
            x = trim_silence(x.mean(0, keepdims=True))
            if x.shape[1] > 0.2 * MODEL_RATE_HZ:
                pieces.append(x)
        return pieces
    x = read_48k(unit.files[0])
    if x is None:
        return []
    return cut_segments(trim_silence(x), rng, MUSIC_MAX_S_PER_FILE)


def _work(args) -> tuple[str, list[tuple[str, int]]]:
    """Worker: process one unit, write its pieces to data/clean/pieces/<uid>/k.npy."""
    unit, index, root = args
    d = Path(root) / "pieces" / unit.uid
    done = d / "DONE"
    if done.exists():
        return unit.uid, json.loads(done.read_text())
    d.mkdir(parents=True, exist_ok=True)
    try:
        segs = _segments_for_unit(unit, index)
    except Exception as e:  # a broken source file must not stop the build (retried on the next run)
        print(f"corpus: skipping {unit.uid}: {e}", flush=True)
        return unit.uid, []
    info = []
    for k, s in enumerate(segs):
        np.save(d / f"{k}.npy", s.astype(np.float32))
        info.append((f"{k}.npy", int(s.shape[1])))
    with atomic_write(done) as temp:
        temp.write_text(json.dumps(info))
    return unit.uid, info


def build_corpus(root: str | os.PathLike = "data/clean", workers: int = 2, limit: int | None = None,
                 write_split: bool = False) -> dict:
    """Build (or resume) the clean corpus; returns the manifest (also written to root/manifest.json)."""
    from multiprocessing import Pool

    from tqdm import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    units = list_units()
    if limit:
        units = units[::max(1, len(units) // limit)][:limit]
    split = assign_split(units, write=write_split)
    jobs = [(u, i, str(root)) for i, u in enumerate(units)]
    # slow jobs (renders, long music) first so the two workers finish together
    jobs.sort(key=lambda j: (j[0].source not in ("music21+fluidsynth", "hydrogen-drumkits"), j[0].kind != "music"))
    results: dict[str, list] = {}
    with Pool(workers) as pool:
        for uid, info in tqdm(pool.imap_unordered(_work, jobs), total=len(jobs), desc="corpus", unit="file"):
            results[uid] = info
    segments = []
    # concatenate speech pieces per (split, group) into 5-10 s segments, 0.2 s gaps
    groups: dict[tuple, list] = {}
    for u in units:
        if u.kind != "speech":
            for fname, n in results.get(u.uid, []):
                segments.append({"id": f"{u.uid}#{fname[:-4]}", "kind": u.kind, "source": u.source,
                                 "units": [u.uid], "split": split[u.uid], "pieces": [f"{u.uid}/{fname}"],
                                 "samples": n})
            continue
        lang = u.uid.rsplit("_desc_", 1)[-1][:2] if u.source == "tuxpaint" else u.uid
        groups.setdefault((split[u.uid], u.source, lang), []).extend(
            (u.uid, f"{u.uid}/{fname}", n) for fname, n in results.get(u.uid, []))
    gap = int(0.2 * MODEL_RATE_HZ)
    for (sp, source, lang), items in sorted(groups.items()):
        rng = random.Random(f"{sp}{source}{lang}")
        cur, cur_n = [], 0
        target = rng.uniform(SEG_MIN_S, SEG_MAX_S) * MODEL_RATE_HZ
        for uid, piece, n in items:
            if cur and cur_n + gap + n > SEG_MAX_S * MODEL_RATE_HZ:
                segments.append(_speech_seg(sp, source, lang, cur, cur_n, len(segments)))
                cur, cur_n = [], 0
                target = rng.uniform(SEG_MIN_S, SEG_MAX_S) * MODEL_RATE_HZ
            cur.append((uid, piece, n))
            cur_n += n + (gap if len(cur) > 1 else 0)
            if cur_n >= target:
                segments.append(_speech_seg(sp, source, lang, cur, cur_n, len(segments)))
                cur, cur_n = [], 0
                target = rng.uniform(SEG_MIN_S, SEG_MAX_S) * MODEL_RATE_HZ
        if cur and cur_n >= 2.0 * MODEL_RATE_HZ:
            segments.append(_speech_seg(sp, source, lang, cur, cur_n, len(segments)))
    for i, s in enumerate(segments):
        s["file"] = f"seg/{i:05d}.npy"
    # write concatenated segments (skip existing)
    (root / "seg").mkdir(exist_ok=True)
    for s in tqdm(segments, desc="segments", unit="seg"):
        out = root / s["file"]
        if out.exists():
            continue
        parts = []
        for p in s["pieces"]:
            if parts:
                parts.append(np.zeros((1, gap), np.float32))
            parts.append(np.load(root / "pieces" / p))
        x = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        with atomic_write(out) as temp:
            np.save(temp, np.ascontiguousarray(x, np.float32))
        s["samples"] = int(x.shape[1])
    for s in segments:
        s["channels"] = int(np.load(root / s["file"], mmap_mode="r").shape[0])
        s["samples"] = int(np.load(root / s["file"], mmap_mode="r").shape[1])
    manifest = {"sample_rate": MODEL_RATE_HZ, "segments": segments, "summary": summarize(segments)}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _speech_seg(sp, source, lang, cur, cur_n, idx) -> dict:
    return {"id": f"{source}/{lang}/{sp}/{idx:05d}", "kind": "speech", "source": source,
            "units": sorted({u for u, _, _ in cur}), "split": sp, "pieces": [p for _, p, _ in cur],
            "samples": int(cur_n)}


def summarize(segments: list[dict]) -> dict:
    out: dict[str, float] = {}
    for s in segments:
        k = f"{s['kind']}/{s['split']}"
        out[k] = out.get(k, 0.0) + s["samples"] / MODEL_RATE_HZ / 3600
        k2 = f"{s['kind']}/{s['split']}/{s['source']}"
        out[k2] = out.get(k2, 0.0) + s["samples"] / MODEL_RATE_HZ / 3600
    return {k: round(v, 3) for k, v in sorted(out.items())}
