"""Progress of a batch on stderr, and the units a batch reports in (durations, hours of audio per hour).

One bar over the whole job on a terminal, a plain line every QUIET_INTERVAL_S otherwise.

The bar counts whole files (a file's audio time is added when it is done): files done, audio time done
of the total, the rate in hours of audio per wall-clock hour, and the ETA at that rate.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_INTERVAL_S = 0.1
QUIET_INTERVAL_S = 30.0
BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """A duration for people: '12.3 s', '4.5 min' or '3.20 h'."""
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    if seconds < 3600.0:
        return f"{seconds / 60.0:.1f} min"
    return f"{seconds / 3600.0:.2f} h"


def format_clock(seconds: float) -> str:
    """A duration as H:MM:SS."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def hours_per_hour(audio_s: float, wall_s: float) -> float:
    """Hours of audio restored per hour of wall-clock time (0 when no time has passed)."""
    return audio_s / wall_s if wall_s > 0 else 0.0


class BatchProgress:
    """Progress over `total_files` files holding `total_audio_s` seconds of audio, drawn on `stream`."""

    def __init__(self, total_files: int, total_audio_s: float, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty()
        self.total_files, self.total_audio_s = total_files, total_audio_s
        self.files_done, self.audio_done_s = 0, 0.0
        self.started = time.monotonic()
        self._next_draw = self.started + (0.0 if self.terminal else QUIET_INTERVAL_S)
        self._drawn = False

    def file_done(self, audio_s: float) -> None:
        """Count one finished file (restored or failed) holding `audio_s` seconds of audio."""
        self.files_done += 1
        self.audio_done_s += audio_s
        self.tick()

    def tick(self) -> None:
        """Redraw the bar (terminal) or print a plain line (otherwise) when one is due."""
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + (REDRAW_INTERVAL_S if self.terminal else QUIET_INTERVAL_S)
        line = self._line(now - self.started)
        if self.terminal:
            self.stream.write(f"\r\033[K{line}")
            self._drawn = True
        else:
            self.stream.write(f"gapfill: {line}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Print one line (a failure) without breaking the bar."""
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.terminal:
            self._next_draw = 0.0

    def close(self) -> None:
        """Remove the bar from the terminal."""
        self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def _line(self, elapsed_s: float) -> str:
        share = self.audio_done_s / self.total_audio_s if self.total_audio_s > 0 else 0.0
        share = max(share, self.files_done / self.total_files if self.total_files else 1.0)
        filled = int(round(BAR_WIDTH * min(share, 1.0)))
        rate = hours_per_hour(self.audio_done_s, elapsed_s)
        if rate > 0:
            eta = format_clock(max(self.total_audio_s - self.audio_done_s, 0.0) / rate)
        else:
            eta = "--:--:--"
        return (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.files_done}/{self.total_files} files, "
            f"{format_duration(self.audio_done_s)} of {format_duration(self.total_audio_s)} of audio, "
            f"{rate:.1f} h/h, elapsed {format_clock(elapsed_s)}, ETA {eta}"
        )
