"""Atomic file writes: write under a temporary name beside the target, rename it over the target when complete.

The target is always whole: the old one, or the new one.

    with atomic_write(target) as temp:   # temp: a new, empty file beside target
        write(temp)                      # an exception here removes temp and leaves target alone
    # here temp has been renamed to target

Temporary name: `.STEM.partial-XXXXXXXX.SUFFIX` beside `STEM.SUFFIX` (8 random hex digits; no second dot
before an already hidden name): hidden, and with the target's suffix, so that a tool that goes by the
suffix sees the target's format. `leftover_temporaries` finds the ones a killed process left behind.
"""

from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMPORARY_MARK = ".partial-"
_TOKEN_BYTES = 4  # 8 hex digits


def _hidden_stem_and_suffix(target: Path) -> tuple[str, str]:
    stem = target.stem if target.stem.startswith(".") else f".{target.stem}"
    return stem, target.suffix


def temporary_path(target: str | Path) -> Path:
    """A fresh temporary name for `target`, in the same folder (see the module docstring)."""
    target = Path(target)
    stem, suffix = _hidden_stem_and_suffix(target)
    return target.with_name(f"{stem}{TEMPORARY_MARK}{secrets.token_hex(_TOKEN_BYTES)}{suffix}")


def leftover_temporaries(target: str | Path) -> list[Path]:
    """The temporary files of `target` in its folder (left by a writer that was killed); [] if the folder
    cannot be listed."""
    target = Path(target)
    stem, suffix = _hidden_stem_and_suffix(target)
    pattern = re.compile(
        rf"{re.escape(stem)}{re.escape(TEMPORARY_MARK)}[0-9a-f]{{{2 * _TOKEN_BYTES}}}{re.escape(suffix)}"
    )
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return [target.parent / name for name in names if pattern.fullmatch(name)]


@contextmanager
def atomic_write(target: str | Path) -> Iterator[Path]:
    """Yield a new, empty temporary file beside `target`; rename it over `target` when the block ends
    normally, remove it when the block (or the rename) raises.

    OSError from creating the temporary file or renaming it propagates: callers word it for the user. The
    temporary file is created inside the cleanup's reach: an exception a signal handler raises the moment it
    exists (a batch worker's SIGTERM) removes it too.
    """
    target = Path(target)
    temp = temporary_path(target)
    ours = True
    try:
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            ours = False  # another writer's temporary file of the same name: not ours to remove
            raise
        yield temp
        os.replace(temp, target)
    except BaseException:
        if ours:
            temp.unlink(missing_ok=True)
        raise
