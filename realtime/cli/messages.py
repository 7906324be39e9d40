"""Messages the commands share: one wording for each fact a user reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def codec_summary(report: Mapping[str, Any]) -> str:
    """One line on what `Restorer.codec_report()` says, e.g. 'codec cutoff 8.4 kHz detected after 0.54 s,
    restored 97 % of frames' ('... of a coded input ...' where the stream was taken as a low-rate codec's)."""
    if not report["gate_enabled"]:
        return "codec gate off (pass-through model): passed through unchanged"
    if not report["engaged"]:
        return "no codec damage detected: passed through unchanged"
    found = "codec damage" if report["cutoff_hz"] is None else f"codec cutoff {report['cutoff_hz'] / 1000:.1f} kHz"
    if report.get("coded_input"):
        found += " of a coded input"
    after = "" if report["engaged_after_s"] is None else f" after {report['engaged_after_s']:.2f} s"
    return f"{found} detected{after}, restored {100 * report['restored_share']:.0f} % of frames"


def clipped_summary(samples: int, where: str) -> str:
    """One line on output samples an integer sample format clipped at full scale, e.g. '12 samples beyond
    full scale clipped in out.flac (restored treble over a full-scale mix; a float output keeps them:
    f32le, or a .wav from a source that is not 16- or 24-bit PCM)'."""
    return (f"{samples} samples beyond full scale clipped in {where} (restored treble over a full-scale mix; "
            "a float output keeps them: f32le, or a .wav from a source that is not 16- or 24-bit PCM)")
