"""Atomic file writes for the resumable steps: a file is on disk whole or not at all, so a step stopped at
any point and run again skips only what was finished."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (`name.tmp.suffix`) to write to; renamed to `path` when the block ends
    without an exception."""
    path = Path(path)
    temp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    yield temp
    temp.replace(path)
