"""What a batch did: `BatchSummary` (every file's outcome, the summary line) and the `--report` JSON file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from realtime import __version__
from realtime.atomic import atomic_write
from realtime.batch.progress import format_duration, hours_per_hour
from realtime.batch.worker import FileOutcome
from realtime.errors import GapfillError

REPORT_VERSION = 1


@dataclass
class BatchSummary:
    """What a batch did: every file's outcome, the wall-clock time and how it ran."""

    outcomes: list[FileOutcome]
    wall_s: float
    backend: str
    fingerprint: str
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def restored_audio_s(self) -> float:
        """Seconds of audio restored in this run (skipped files not counted)."""
        return sum(o.audio_s for o in self.outcomes if o.status == "restored")

    def line(self) -> str:
        """The summary as one line, e.g. '7 files: 5 restored, 0 skipped, 2 failed; 3.2 min of audio in
        6.1 s (31.5 h of audio per hour)'."""
        rate = hours_per_hour(self.restored_audio_s, self.wall_s)
        stopped = "stopped early; " if self.interrupted else ""
        return (
            f"{stopped}{len(self.outcomes)} files: {self.count('restored')} restored, "
            f"{self.count('skipped')} skipped (complete), {self.count('failed')} failed; "
            f"{format_duration(self.restored_audio_s)} of audio in {format_duration(self.wall_s)} "
            f"({rate:.1f} h of audio per hour)"
        )

    def report(self) -> dict[str, Any]:
        """The summary and every file's outcome as JSON-ready data (`--report`)."""
        peaks = [o.worker_peak_rss_mib for o in self.outcomes if o.worker_peak_rss_mib is not None]
        return {
            "version": REPORT_VERSION,
            "gapfill": __version__,
            "engine": self.fingerprint,
            "backend": self.backend,
            "interrupted": self.interrupted,
            "files": {"total": len(self.outcomes), "restored": self.count("restored"),
                      "skipped": self.count("skipped"), "failed": self.count("failed")},
            "audio_hours_restored": self.restored_audio_s / 3600.0,
            "wall_s": self.wall_s,
            "hours_per_hour": hours_per_hour(self.restored_audio_s, self.wall_s),
            "worker_cpu_s": sum(o.cpu_s or 0.0 for o in self.outcomes if o.status == "restored"),
            "worker_peak_rss_mib": max(peaks) if peaks else None,
            "failures": [{"input": o.input, "reason": o.reason} for o in self.outcomes if o.status == "failed"],
            "outcomes": [dataclasses.asdict(o) for o in self.outcomes],
        }


def write_report(summary: BatchSummary, path: str) -> None:
    """Write `summary.report()` as JSON to `path`, atomically; a failure is a one-line GapfillError."""
    try:
        with atomic_write(path) as temp:
            temp.write_text(json.dumps(summary.report(), indent=2), encoding="utf-8")
    except OSError as exc:
        raise GapfillError(f"cannot write report '{path}': {(exc.strerror or str(exc)).lower()}") from None
