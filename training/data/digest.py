"""Digests of a build's audio, to tell which jobs a rebuild made differently.

Every job's digest is the SHA-256 (first DIGEST_HEX hex digits) of its segments' stored 24-bit samples (as
integers, so FLAC's encoder version and metadata do not count) and scales, in segment order. A reference
build's digests are kept in DIGEST_FILE, with a note of where it was built; `python -m training.data
digest` writes a build's digests and counts, per action (speech, track, render, kit, synthkit, augment,
mix), the jobs that differ from that file's, so a rebuild on another machine can be checked job by job.
A pair cache (training/v2/paircache.py) is digested pair by pair, its clean and its decoded half apart,
and counted per encoder: a decoded half that differs under a clean half that does not is the encoding or
decoding tools' doing, not the build's (PAIR_DIGEST_FILE: the reference build's round 0 validation pairs,
from which every validation crop is cut).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

from realtime.atomic import atomic_write

DIGEST_FILE = Path(__file__).with_name("digest_v2.json")
PAIR_DIGEST_FILE = Path(__file__).with_name("digest_v2pairs_r0_val.json")
DIGEST_HEX = 16
JOB_COLUMNS = ("same", "different", "only here", "only in reference")
PAIR_COLUMNS = ("same", "decoded differs", "clean differs", "only here", "only in reference")


def _hex(chunks: Iterable[bytes]) -> str:
    """The first DIGEST_HEX hex digits of the SHA-256 of the chunks, in order."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()[:DIGEST_HEX]


def job_digest(root: Path, record: dict) -> str:
    """The digest of one job's segments (its record under root/jobs)."""
    def chunks() -> Iterator[bytes]:
        for s in record["segments"]:
            samples, _ = sf.read(str(root / s["file"]), dtype="int32", always_2d=True)
            yield np.ascontiguousarray(samples).tobytes()
            yield repr(float(s.get("scale", 1.0))).encode()

    return _hex(chunks())


def build_digests(root: str | os.PathLike = "data/v2") -> dict[str, dict]:
    """job -> {"action", "digest"} for every job of root's manifest."""
    from training.data.build import read_record

    root = Path(root)
    out = {}
    for name in json.loads((root / "manifest.json").read_text())["jobs"]:
        record = read_record(root, name)
        out[name] = {"action": record["action"], "digest": job_digest(root, record)}
    return out


def pair_digests(root: str | os.PathLike, split: str | None = None) -> dict[str, dict]:
    """file -> {"segment", "encoder", "chain", "clean", "decoded"} for every pair of a pair cache (of `split`
    only, if given): the digests of the stored clean and decoded halves."""
    root = Path(root)
    out = {}
    for pair in json.loads((root / "manifest.json").read_text())["pairs"]:
        if split is not None and pair["split"] != split:
            continue
        halves = np.load(root / pair["file"])
        out[pair["file"]] = {"segment": pair["segment"], "encoder": pair["encoder"], "chain": pair["chain"],
                             "clean": _hex([np.ascontiguousarray(halves[0]).tobytes()]),
                             "decoded": _hex([np.ascontiguousarray(halves[1]).tobytes()])}
    return out


def _counts(ours: dict[str, dict], reference: dict[str, dict], group: str, columns: tuple[str, ...],
            verdict: Callable[[dict, dict], str]) -> dict[str, dict[str, int]]:
    """row[group] -> counts of `columns`: "only here", "only in reference", else verdict(ours, reference)."""
    table: dict[str, dict[str, int]] = {}
    for name in sorted(set(ours) | set(reference)):
        row = table.setdefault((ours.get(name) or reference[name])[group], dict.fromkeys(columns, 0))
        if name not in reference:
            row["only here"] += 1
        elif name not in ours:
            row["only in reference"] += 1
        else:
            row[verdict(ours[name], reference[name])] += 1
    return table


def compare_pairs(ours: dict[str, dict], reference: dict[str, dict]) -> dict[str, dict[str, int]]:
    """encoder -> {"same", "decoded differs", "clean differs", "only here", "only in reference"}: pair counts."""
    def verdict(a: dict, b: dict) -> str:
        if a["clean"] != b["clean"]:
            return "clean differs"
        return "same" if a["decoded"] == b["decoded"] else "decoded differs"

    return _counts(ours, reference, "encoder", PAIR_COLUMNS, verdict)


def compare(ours: dict[str, dict], reference: dict[str, dict]) -> dict[str, dict[str, int]]:
    """action -> {"same", "different", "only here", "only in reference"}: job counts."""
    return _counts(ours, reference, "action", JOB_COLUMNS,
                   lambda a, b: "same" if a["digest"] == b["digest"] else "different")


def table_text(table: dict[str, dict[str, int]], first: str = "action") -> str:
    """compare()'s or compare_pairs()' counts as a markdown table, `first` naming the row key."""
    columns = next(iter(table.values())).keys() if table else JOB_COLUMNS
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key, row in sorted(table.items()):
        lines.append(f"| {key} | " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def write_digests(digests: dict[str, dict], path: str | os.PathLike, note: str = "") -> None:
    """Write {"note", "jobs": digests sorted by key} as JSON, a line per job (or pair), atomically."""
    jobs = ",\n".join(f"{json.dumps(name)}: {json.dumps(row)}" for name, row in sorted(digests.items()))
    with atomic_write(Path(path)) as temp:
        temp.write_text(f'{{"note": {json.dumps(note)},\n"jobs": {{\n{jobs}\n}}}}\n')


def load_digests(path: str | os.PathLike = DIGEST_FILE) -> dict[str, dict]:
    """The digests of a file write_digests wrote (empty where the file does not exist)."""
    path = Path(path)
    return json.loads(path.read_text())["jobs"] if path.exists() else {}
