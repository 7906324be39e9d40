"""Sidecars: the record `.NAME.gapfill.json` beside a batch output NAME that says whether NAME is complete.

Complete means: of its input as it is now, made by the same engine (realtime/batch/__init__.py).

Record: version, input (path), engine (fingerprint), input_size (bytes), input_mtime_ns, complete; once
complete also output_size (bytes), audio_s and stats (restore_file's record).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from realtime.atomic import atomic_write
from realtime.errors import GapfillError

SIDECAR_SUFFIX = ".gapfill.json"
SIDECAR_VERSION = 1


def sidecar_path(output: str | Path) -> Path:
    """The sidecar of an output: `.NAME.gapfill.json` beside it."""
    output = Path(output)
    return output.with_name(f".{output.name}{SIDECAR_SUFFIX}")


def read_sidecar(output: str | Path) -> dict[str, Any] | None:
    """The sidecar of `output` as a dict, or None when it is missing or unreadable."""
    try:
        record = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == SIDECAR_VERSION else None


def write_sidecar(output: str | Path, record: dict[str, Any]) -> None:
    """Write `record` as the sidecar of `output`, atomically; a failure is a one-line GapfillError."""
    target = sidecar_path(output)
    try:
        with atomic_write(target) as temp:
            temp.write_text(json.dumps(dict(record, version=SIDECAR_VERSION), indent=1), encoding="utf-8")
    except OSError as exc:
        raise GapfillError(f"cannot write '{target}': {(exc.strerror or str(exc)).lower()}") from None


def input_identity(path: str) -> dict[str, int] | None:
    """The input's size (bytes) and mtime (ns) as sidecar fields, or None when it cannot be stat'ed."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}


def complete_record(input_path: str, output: str, fingerprint: str) -> dict[str, Any] | None:
    """The sidecar of `output` when it shows a complete output of `input_path` (as it is now) made by the
    engine `fingerprint`, else None."""
    record = read_sidecar(output)
    identity = input_identity(input_path)
    if record is None or identity is None or not record.get("complete"):
        return None
    try:
        output_size = os.stat(output).st_size
    except OSError:
        return None
    same = (record.get("engine") == fingerprint and record.get("output_size") == output_size
            and all(record.get(key) == value for key, value in identity.items()))
    return record if same else None
