"""Building data v2: jobs, running them resumably, the manifest and its summary.

A job makes the segments of one piece of work and is named after it: a voice pack (or a tuxpaint language
on one side of the split), a track, a rendered work, a drum kit, the augmentations of a voice pack, a mix.
Its segments go to <root>/seg/<job>/NNNN.flac and its record (the segments' manifest entries and what
happened to every source file) to <root>/jobs/<job>.json, written last; a job whose record and files exist
is skipped, so a stopped build run again resumes. Every random choice is seeded by a job's or a
segment's name, never by time, so a rebuild makes the same data.

The manifest <root>/manifest.json lists every segment: id, file, seconds, channels, kind (speech, music,
drums, mix), source (the package, or `mix`), unit (the job that made it), units (the split units whose
material it holds), split (train, val, test), augmentation (the recipe, or null), scale (multiply the
stored samples by it), band_edge_hz (where its long-term spectrum falls 70 dB under its peak).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ
from training import corpus
from training.corpus import Unit
from training.data import augment, dsp, mixes, sources, split as splits, stems
from training.data.audio import band_edge_hz, load_segment, read_source_48k, source_seconds, store_segment

PACKAGE_OF = {"tuxpaint": "tuxpaint-stamps-default", "hedgewars-voices": "hedgewars-data",
              "hedgewars-music": "hedgewars-data", "wesnoth": "wesnoth-1.16-music",
              "hydrogen-drumkits": "hydrogen-drumkits"}
"""corpus.Unit.source -> the Debian package, for the first corpus's sources (new units carry the package)."""
SPEECH_GAP_S = 0.2             # silence between speech pieces joined into one segment
SPEECH_MIN_KEEP_S = 3.0        # the last, short segment of a voice pack is kept from this length (speech is scarce)
PIECE_MIN_S = 0.2
KIT_PATTERNS = 24              # 8 s patterns per hydrogen kit (corpus.drum_patterns)
SYNTH_KIT_PATTERNS = 8
DRUM_PATTERN_S = 8.0
AUGMENT_VARIANTS = {"train": 2, "val": 1}
MIX_HOURS_SHARE = 0.15         # with --hours H, training mixes stop at this share of H
TRACKER_ESTIMATE_S = 120.0
MANIFEST_EVERY_S = 600.0


@dataclass
class Job:
    """One resumable piece of the build (see the module docstring); `phase` 1 jobs run after phase 0's."""

    name: str
    action: str            # speech | track | render | kit | synthkit | augment | mix
    kind: str
    source: str
    split: str
    units: list[Unit] = field(default_factory=list)
    phase: int = 0

    @property
    def slug(self) -> str:
        """The job's name as a file name."""
        return re.sub(r"[^A-Za-z0-9._+-]+", "_", self.name)


def _package(unit: Unit) -> str:
    return PACKAGE_OF.get(unit.source, unit.source)


# -- planning ----------------------------------------------------------------------------------------
def plan(units: list[Unit], side: dict[str, str]) -> list[Job]:
    """Every job for `units` split by `side` (uid -> train/val), phase 0 before phase 1, and within a phase
    one job of each family in turn (so a build cut short by --hours holds some of every source)."""
    clean: dict[str, list[Job]] = {}
    derived: list[Job] = []
    tuxpaint: dict[tuple[str, str], list[Unit]] = {}
    val_works = [u.uid for u in units if u.uid.startswith("mixscore/") and side[u.uid] == "val"]
    test_works = set(val_works[: mixes.TEST_MIX_WORKS])
    for u in units:
        family = u.uid.split("/", 1)[0]
        s = side[u.uid]
        if u.source == "tuxpaint":
            tuxpaint.setdefault((u.uid.rsplit("_desc_", 1)[-1][:2], s), []).append(u)
            continue
        if family == "mixscore":
            derived.append(Job(u.uid, "mix", "mix", "mix", "test" if u.uid in test_works else s, [u], 1))
            continue
        if u.kind == "speech":
            job = Job(u.uid, "speech", "speech", _package(u), s, [u])
        elif family in ("render", "render2"):
            job = Job(u.uid, "render", "music", "music21+fluidsynth", s, [u])
        elif family == "drums":
            job = Job(u.uid, "kit", "drums", _package(u), s, [u])
        elif family == "synthkit":
            job = Job(u.uid, "synthkit", "drums", "synthetic-drums", s, [u])
        else:
            job = Job(u.uid, "track", "music", _package(u), s, [u])
        clean.setdefault(family, []).append(job)
    for (lang, s), group in sorted(tuxpaint.items()):
        clean.setdefault("tuxpaint", []).append(
            Job(f"tuxpaint/{lang}/{s}", "speech", "speech", "tuxpaint-stamps-default", s, group))
    speech_jobs = [j for jobs in clean.values() for j in jobs if j.action == "speech"]
    derived += [Job(f"augment/{j.name}", "augment", "speech", j.source, j.split, j.units, 1) for j in speech_jobs]
    ordered = _interleave(list(clean.values()))
    families: dict[str, list[Job]] = {}
    for j in derived:
        families.setdefault(j.action + ("-test" if j.split == "test" else ""), []).append(j)
    tests = families.pop("mix-test", [])
    return ordered + tests + _interleave(list(families.values()))


def _interleave(groups: list[list[Job]]) -> list[Job]:
    out = []
    for i in range(max(map(len, groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def estimate_s(job: Job) -> float:
    """Expected seconds of output of a job (source durations; fixed guesses for generated audio)."""
    if job.action in ("speech", "track"):
        return sum(TRACKER_ESTIMATE_S if f.lower().endswith((".it", ".s3m")) else source_seconds(f)
                   for u in job.units for f in u.files)
    if job.action == "render":
        return corpus.RENDER_MAX_S * 0.75
    if job.action == "kit":
        return KIT_PATTERNS * DRUM_PATTERN_S
    if job.action == "synthkit":
        return SYNTH_KIT_PATTERNS * DRUM_PATTERN_S
    if job.action == "mix":
        return mixes.CLIP_S * mixes.CLIPS_PER_MIX
    return 0.0


def limit_hours(jobs: list[Job], hours: float, done_seconds: dict[str, float]) -> list[Job]:
    """The jobs of a build of about `hours` of clean audio: phase 0 jobs in order until their (built or
    estimated) output reaches it, the augmentations of the voice packs taken, every test mix, and training
    and validation mixes up to MIX_HOURS_SHARE of it."""
    chosen, total, speech = [], 0.0, set()
    for j in (j for j in jobs if j.phase == 0):
        if total >= hours * 3600:
            break
        chosen.append(j)
        speech.add(j.name)
        total += done_seconds.get(j.name) or estimate_s(j)
    mix_total = 0.0
    for j in (j for j in jobs if j.phase == 1):
        if j.action == "augment" and j.name.split("/", 1)[1] in speech:
            chosen.append(j)
        elif j.action == "mix" and (j.split == "test" or mix_total < MIX_HOURS_SHARE * hours * 3600):
            chosen.append(j)
            mix_total += 0 if j.split == "test" else estimate_s(j)
    return chosen


# -- running -----------------------------------------------------------------------------------------
def record_path(root: Path, job: Job) -> Path:
    return root / "jobs" / f"{job.slug}.json"


def read_record(root: Path, name: str) -> dict:
    """The record of the finished job called `name` under root (a manifest's `jobs` names them)."""
    return json.loads(record_path(root, Job(name, "", "", "", "")).read_text())


def finished(root: Path, job: Job) -> dict | None:
    """A job's record if the job is finished (its record and every file it lists exist), else None."""
    path = record_path(root, job)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    if all((root / s["file"]).exists() for s in record["segments"]):
        return record
    return None


def run_job(job: Job, root: Path) -> dict | None:
    """Run one job (or take its record if finished); None when it cannot run yet or failed (a later build
    retries it)."""
    done = finished(root, job)
    if done is not None:
        return done
    start = time.process_time()
    try:
        made = ACTIONS[job.action](job, root)
    except Exception as exc:  # noqa: BLE001 - one broken source or tool run must not stop a many-hour build
        print(f"data: {job.name} failed, retried by the next build: {type(exc).__name__}: {exc}", flush=True)
        return None
    if made is None:
        return None
    results, files = made
    entries = []
    for k, (x, meta) in enumerate(results):
        file = f"seg/{job.slug}/{k:04d}.flac"
        entry = {"id": f"{job.name}#{k:04d}", "file": file, "seconds": round(x.shape[1] / MODEL_RATE_HZ, 3),
                 "channels": int(x.shape[0]), "kind": job.kind, "source": job.source, "unit": job.name,
                 "units": meta.pop("units"), "split": job.split, "augmentation": meta.pop("augmentation", None),
                 "scale": store_segment(root / file, x), "band_edge_hz": round(band_edge_hz(x)), **meta}
        entries.append(entry)
    record = {"job": job.name, "action": job.action, "kind": job.kind, "source": job.source, "split": job.split,
              "segments": entries, "files": files, "cpu_s": round(time.process_time() - start, 2)}
    path = record_path(root, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temp:
        temp.write_text(json.dumps(record))
    return record


def _file_fact(source: str, seconds: float, kept_s: float, dropped: str | None = None) -> dict:
    return {"source": source, "seconds": round(seconds, 2), "kept_s": round(kept_s, 2), "dropped": dropped}


def _speech(job: Job, root: Path):
    """Every file of the voice pack(s): decoded, filtered, mono, trimmed; joined with SPEECH_GAP_S gaps into
    5-10 s segments (a piece over 10 s is cut on its own)."""
    pieces, files = [], []
    for u in job.units:
        for f in u.files:
            x, reason = read_source_48k(f)
            if x is None:
                files.append(_file_fact(f, source_seconds(f), 0.0, reason))
                continue
            seconds = x.shape[1] / MODEL_RATE_HZ
            x = corpus.trim_silence(x.mean(0, keepdims=True))
            if x.shape[1] <= PIECE_MIN_S * MODEL_RATE_HZ:
                files.append(_file_fact(f, seconds, 0.0, "silent or under 0.2 s"))
                continue
            pieces.append((u.uid, x))
            files.append(_file_fact(f, seconds, x.shape[1] / MODEL_RATE_HZ))
    return join_speech(pieces, random.Random(job.name)), files


def join_speech(pieces: list[tuple[str, np.ndarray]], rng: random.Random) -> list[tuple[np.ndarray, dict]]:
    """Mono pieces (uid, (1, n)) joined in order with SPEECH_GAP_S gaps into segments of a drawn 5-10 s
    target (never over 10 s; the last kept from SPEECH_MIN_KEEP_S); pieces over 10 s cut on their own."""
    gap = np.zeros((1, int(SPEECH_GAP_S * MODEL_RATE_HZ)), np.float32)
    longest = corpus.SEG_MAX_S * MODEL_RATE_HZ
    out, current, length = [], [], 0

    def emit():
        if current and length >= SPEECH_MIN_KEEP_S * MODEL_RATE_HZ:
            joined = np.concatenate([p for _, x in current for p in (gap, x)][1:], axis=1)
            out.append((joined, {"units": sorted({uid for uid, _ in current})}))

    target = rng.uniform(corpus.SEG_MIN_S, corpus.SEG_MAX_S) * MODEL_RATE_HZ
    for uid, x in pieces:
        if x.shape[1] > longest:
            out += [(s, {"units": [uid]}) for s in corpus.cut_segments(x, rng)]
            continue
        if current and length + gap.shape[1] + x.shape[1] > longest:
            emit()
            current, length = [], 0
        length += x.shape[1] + (gap.shape[1] if current else 0)
        current.append((uid, x))
        if length >= target:
            emit()
            current, length = [], 0
            target = rng.uniform(corpus.SEG_MIN_S, corpus.SEG_MAX_S) * MODEL_RATE_HZ
    emit()
    return out


def _track(job: Job, root: Path):
    """One track: decoded, filtered, trimmed, cut into 5-10 s segments (corpus.cut_segments: quiet ones left out)."""
    (unit,) = job.units
    f = unit.files[0]
    x, reason = read_source_48k(f)
    if x is None:
        return [], [_file_fact(f, source_seconds(f), 0.0, reason)]
    segments = corpus.cut_segments(corpus.trim_silence(x), random.Random(job.name))
    kept = sum(s.shape[1] for s in segments) / MODEL_RATE_HZ
    return [(s, {"units": [unit.uid]}) for s in segments], [_file_fact(f, x.shape[1] / MODEL_RATE_HZ, kept)]


def _render(job: Job, root: Path):
    """A music21 work rendered whole (stems.render_work), filtered like a file, trimmed and cut."""
    (unit,) = job.units
    x = stems.render_work(unit.files[0], unit.uid, corpus.RENDER_MAX_S)
    if x is None:
        return [], [_file_fact(unit.uid, 0.0, 0.0, "silent render")]
    seconds = x.shape[1] / MODEL_RATE_HZ
    if not corpus._has_high_band(x):
        return [], [_file_fact(unit.uid, seconds, 0.0, "no band above 16 kHz")]
    segments = corpus.cut_segments(corpus.trim_silence(x), random.Random(job.name))
    kept = sum(s.shape[1] for s in segments) / MODEL_RATE_HZ
    return [(s, {"units": [unit.uid]}) for s in segments], [_file_fact(unit.uid, seconds, kept)]


def _kit(job: Job, root: Path):
    """KIT_PATTERNS random patterns of a hydrogen kit (corpus.drum_patterns)."""
    (unit,) = job.units
    patterns = corpus.drum_patterns(unit.files[0], KIT_PATTERNS, unit.uid)
    kept = sum(p.shape[1] for p in patterns) / MODEL_RATE_HZ
    return [(p, {"units": [unit.uid]}) for p in patterns], [_file_fact(unit.uid, kept, kept)]


def _synthkit(job: Job, root: Path):
    """SYNTH_KIT_PATTERNS patterns of DRUM_PATTERN_S at 80-170 bpm from a synthesised kit."""
    (unit,) = job.units
    bank = stems.synth_bank(unit.uid)
    out = []
    for i in range(SYNTH_KIT_PATTERNS):
        rng = random.Random(f"{unit.uid}#{i}")
        pattern, facts = stems.sequence_drums(bank, rng.uniform(80, 170), DRUM_PATTERN_S, rng)
        pattern *= np.float32(rng.uniform(0.5, 0.9) / max(float(np.abs(pattern).max()), 1e-9))
        out.append((pattern, {"units": [unit.uid], "drums": facts}))
    kept = len(out) * DRUM_PATTERN_S
    return out, [_file_fact(unit.uid, kept, kept)]


def _augment(job: Job, root: Path):
    """AUGMENT_VARIANTS augmented copies of every segment of the voice pack's job (not run before it)."""
    base = finished(root, Job(job.name.split("/", 1)[1], "speech", "speech", job.source, job.split))
    if base is None:
        return None
    out, files = [], []
    for entry in base["segments"]:
        x = load_segment(root, entry)
        for v in range(AUGMENT_VARIANTS[job.split]):
            y, recipe = augment.augment(x, f"{entry['id']}~{v}")
            dropped = None if corpus._has_high_band(y) else "no band above 16 kHz"
            files.append(_file_fact(f"{entry['id']}~{v}", y.shape[1] / MODEL_RATE_HZ,
                                    0.0 if dropped else y.shape[1] / MODEL_RATE_HZ, dropped))
            if dropped is None:
                out.append((y, {"units": entry["units"], "augmentation": recipe, "of": entry["id"]}))
    return out, files


def pools_for(units: list[Unit], side: dict[str, str], which: str) -> mixes.Pools:
    """The units a mix on side `which` (train or val) may draw stems from: kits, voices (a voice pack, or
    the tuxpaint files of one language) and soundtrack tracks for beds."""
    pools = mixes.Pools()
    tuxpaint: dict[str, list[Unit]] = {}
    for u in units:
        if side.get(u.uid) != which:
            continue
        family = u.uid.split("/", 1)[0]
        if family in ("drums", "synthkit"):
            pools.kits.append(u)
        elif u.source == "tuxpaint":
            tuxpaint.setdefault(u.uid.rsplit("_desc_", 1)[-1][:2], []).append(u)
        elif u.kind == "speech":
            pools.voices.append([u])
        elif u.kind == "music" and family not in ("render", "render2"):
            pools.beds.append(u)
    pools.voices += [tuxpaint[lang] for lang in sorted(tuxpaint)]
    return pools


@lru_cache(maxsize=2)
def _pools(which: str) -> mixes.Pools:
    return pools_for(sources.all_units(), splits.load(), which)


def _mix(job: Job, root: Path):
    """CLIPS_PER_MIX clips of a dense mix of the work, stems from its side of the split."""
    (unit,) = job.units
    clips, facts = mixes.make_mix(unit, _pools("train" if job.split == "train" else "val"), job.name)
    units = facts.pop("units")
    out = [(c, {"units": units, "mix": facts, "crest_db": round(dsp.crest_db(c), 2)})
           for c in clips]
    return out, [_file_fact(unit.uid, len(clips) * mixes.CLIP_S, len(clips) * mixes.CLIP_S)]


ACTIONS = {"speech": _speech, "track": _track, "render": _render, "kit": _kit, "synthkit": _synthkit,
           "augment": _augment, "mix": _mix}


# -- the whole build ---------------------------------------------------------------------------------
def prune(root: Path, jobs: list[Job]) -> None:
    """Remove the records and segments of jobs no longer planned (after a change of the unit list)."""
    planned = {j.slug for j in jobs}
    for folder, suffix in ((root / "jobs", ".json"), (root / "seg", "")):
        for path in sorted(folder.glob("*")) if folder.exists() else []:
            if path.name[: len(path.name) - len(suffix)] not in planned:
                print(f"data: removing {path} (no longer planned)", flush=True)
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _run(args: tuple[Job, str]) -> tuple[str, dict | None]:
    job, root = args
    return job.name, run_job(job, Path(root))


def build(root: str | os.PathLike = "data/v2", workers: int = 1, hours: float | None = None,
          jobs: list[Job] | None = None) -> dict:
    """Build (or resume) data v2 under root; returns the manifest (also written to root/manifest.json).
    `jobs` defaults to every job of every unit (split_v2.json written first); `hours` limits them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if jobs is None:
        units = sources.all_units()
        side = splits.load()
        missing = [u for u in units if u.uid not in side]
        if missing:
            side.update(splits.assign(missing))
            splits.write({u.uid: side[u.uid] for u in units})
        jobs = plan(units, side)
        prune(root, jobs)
    if hours is not None:
        done = {j.name: sum(s["seconds"] for s in r["segments"]) for j in jobs if (r := finished(root, j))}
        jobs = limit_hours(jobs, hours, done)
    records: dict[str, dict] = {}
    started, last_write = time.time(), time.time()
    for phase in (0, 1):
        todo = [(j, str(root)) for j in jobs if j.phase == phase]
        if workers > 1:
            from multiprocessing import Pool

            with Pool(workers) as pool:
                results = pool.imap_unordered(_run, todo)
                for name, record in results:
                    last_write = _progress(root, jobs, records, name, record, started, last_write)
        else:
            for item in todo:
                last_write = _progress(root, jobs, records, *_run(item), started, last_write)
    return write_manifest(root, jobs, records)


def _progress(root, jobs, records, name, record, started, last_write) -> float:
    if record is not None:
        records[name] = record
        seconds = sum(s["seconds"] for s in record["segments"])
        print(f"data: {len(records)}/{len(jobs)} {name}: {len(record['segments'])} segments, {seconds:.0f} s "
              f"({record['cpu_s']:.0f} s CPU; {(time.time() - started) / 60:.0f} min so far)", flush=True)
    if time.time() - last_write > MANIFEST_EVERY_S:
        write_manifest(root, jobs, records)
        return time.time()
    return last_write


def write_manifest(root: Path, jobs: list[Job], records: dict[str, dict]) -> dict:
    """root/manifest.json from the records of the finished jobs, in job order."""
    segments = [s for j in jobs if j.name in records for s in records[j.name]["segments"]]
    manifest = {"sample_rate": MODEL_RATE_HZ, "storage": "24-bit FLAC; multiply by `scale`",
                "jobs": [j.name for j in jobs if j.name in records], "segments": segments}
    with atomic_write(root / "manifest.json") as temp:
        temp.write_text(json.dumps(manifest, indent=0))
    return manifest


def units_on_both_sides(segments: list[dict]) -> set[str]:
    """Split units that segments on the training side and segments on the other sides (val, test) both hold."""
    train = {u for s in segments if s["split"] == "train" for u in s["units"]}
    return train & {u for s in segments if s["split"] != "train" for u in s["units"]}


def summary(root: str | os.PathLike) -> str:
    """Markdown tables of a build: hours per kind and split, and per source (kept, and dropped with why)."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    hours: dict[tuple[str, str], float] = {}
    for s in manifest["segments"]:
        key = (s["kind"] + (" (augmented)" if s["augmentation"] else ""), s["split"])
        hours[key] = hours.get(key, 0.0) + s["seconds"] / 3600
    kinds = sorted({k for k, _ in hours})
    sides = [s for s in ("train", "val", "test") if any(sp == s for _, sp in hours)]
    lines = ["| kind | " + " | ".join(sides) + " | total |", "|---" * (len(sides) + 2) + "|"]
    for k in kinds:
        row = [hours.get((k, s), 0.0) for s in sides]
        lines.append(f"| {k} | " + " | ".join(f"{h:.2f}" for h in row) + f" | {sum(row):.2f} |")
    totals = [sum(h for (_, sp), h in hours.items() if sp == s) for s in sides]
    lines.append("| all | " + " | ".join(f"{h:.2f}" for h in totals) + f" | {sum(totals):.2f} |")
    by_source: dict[str, dict] = {}
    for name in manifest["jobs"]:
        record = read_record(root, name)
        if record["action"] in ("augment", "mix"):
            continue
        row = by_source.setdefault(record["source"], {"files": 0, "kept": 0.0, "dropped": {}, "trimmed": 0.0})
        for f in record["files"]:
            row["files"] += 1
            row["kept"] += f["kept_s"] / 3600
            if f["dropped"]:
                row["dropped"][f["dropped"]] = row["dropped"].get(f["dropped"], 0.0) + f["seconds"] / 3600
            else:
                row["trimmed"] += (f["seconds"] - f["kept_s"]) / 3600
    edges: dict[str, list[float]] = {}
    for s in manifest["segments"]:
        if not s["augmentation"] and s["kind"] != "mix":
            edges.setdefault(s["source"], []).append(s["band_edge_hz"])
    lines += ["", "| source | files | hours kept | hours dropped (why) | hours trimmed (silence, quiet, tails) "
              "| band edge kHz (median, 10th pct) |", "|---|---|---|---|---|---|"]
    for source, row in sorted(by_source.items()):
        why = ", ".join(f"{h:.2f} {r}" for r, h in sorted(row["dropped"].items())) or "0"
        edge = (f"{np.median(edges[source]) / 1000:.1f}, {np.percentile(edges[source], 10) / 1000:.1f}"
                if source in edges else "-")
        lines.append(f"| {source} | {row['files']} | {row['kept']:.2f} | {why} | {row['trimmed']:.2f} | {edge} |")
    leaks = units_on_both_sides(manifest["segments"])
    lines += ["", f"units on both sides of the split: {len(leaks)}" + (f" ({sorted(leaks)[:5]})" if leaks else "")]
    return "\n".join(lines)
