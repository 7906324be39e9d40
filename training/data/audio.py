"""Reading sources to 48 kHz float, why a file is dropped, and how segments are stored.

A source is a path (anything libsndfile reads: Ogg Vorbis/Opus, WAV, FLAC, AIFF), a member of a zip
archive written `archive.zip::member` (0 A.D.'s public.zip, OpenArena's .pk3), or a tracker module
(.it, .s3m: rendered once to 48 kHz float by ffmpeg's libopenmpt).

Decoding and the DATA.md filters are training/corpus.py's `read_48k` (float decode, soxr VHQ, overshoot
kept; drop at > 0.1 % samples with |x| >= 0.98 or no long-term spectrum above 16 kHz within 70 dB of the
peak); `drop_reason` names which rule dropped a file, for the survey.

Segments are stored as 24-bit FLAC: lossless down to 2^-23 (-138 dBFS, below every decode chain's floor),
about 0.35 GB per hour of 48 kHz mono (0.7 stereo), against 0.69 (1.4) as float32 .npy. float16 keeps only
11 bits of mantissa (noise 66 dB under each sample, so a quiet top band drowns in it) and int16 floors at
-98 dBFS. Decoder overshoot (|x| > 1) survives through a power-of-two `scale` in the manifest: the file
holds x / scale, exactly.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from evaluation.chains import _fix_streamed_wav
from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ
from training import corpus

ZIP_SEPARATOR = "::"
TRACKER_SUFFIXES = (".it", ".s3m", ".xm", ".mod")
TRACKER_MAX_S = 600                      # a module that loops forever is cut here
CLIP_LEVEL, CLIP_SHARE = 0.98, 0.001     # DATA.md's clipping rule, as corpus.read_48k applies it
EDGE_BELOW_PEAK_DB = 70.0                # band edge: where the long-term spectrum falls this far under its peak


@lru_cache(maxsize=4)
def _archive(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def open_source(source: str) -> str | io.BytesIO:
    """What soundfile can read for `source`: the path itself, or the bytes of a zip member or rendered module."""
    if ZIP_SEPARATOR in source:
        archive, member = source.split(ZIP_SEPARATOR, 1)
        return io.BytesIO(_archive(archive).read(member))
    if source.lower().endswith(TRACKER_SUFFIXES):
        return io.BytesIO(_render_module(source))
    return source


def _render_module(path: str) -> bytes:
    """A tracker module rendered by ffmpeg (libopenmpt) to a 48 kHz float WAV, played once."""
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "libopenmpt", "-i", path,
         "-t", str(TRACKER_MAX_S), "-ar", str(MODEL_RATE_HZ), "-c:a", "pcm_f32le", "-f", "wav", "-"],
        capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg cannot render {path}: {result.stderr.decode(errors='replace').strip()}")
    return _fix_streamed_wav(result.stdout)


def source_seconds(source: str) -> float:
    """Duration of a source in seconds (header only, except for rendered modules)."""
    info = sf.info(open_source(source))
    return float(info.frames) / info.samplerate


def read_source_48k(source: str) -> tuple[np.ndarray | None, str | None]:
    """(x (channels, samples) float32 at 48 kHz, None) for a kept source; (None, reason) for a dropped one."""
    x = corpus.read_48k(open_source(source))
    if x is not None:
        return x, None
    return None, drop_reason(source)


def drop_reason(source: str) -> str:
    """Which DATA.md rule corpus.read_48k dropped `source` by: 'too short', 'clipped' or 'no band above 16 kHz'."""
    x, _ = sf.read(open_source(source), dtype="float32", always_2d=True)
    if x.shape[0] < 1024:
        return "too short"
    if np.mean(np.abs(x) >= CLIP_LEVEL) > CLIP_SHARE:
        return "clipped"
    return "no band above 16 kHz"


def band_edge_hz(x: np.ndarray, n_fft: int = 4096) -> float:
    """Highest frequency (Hz) where the long-term spectrum of x (C, n) at 48 kHz is within
    EDGE_BELOW_PEAK_DB of its peak (spectrum smoothed over 9 bins, ~100 Hz)."""
    m = x.mean(0)
    if len(m) < n_fft:
        m = np.pad(m, (0, n_fft - len(m)))
    frames = np.lib.stride_tricks.sliding_window_view(m, n_fft)[:: n_fft // 2]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2, axis=0)
    power = np.convolve(power, np.ones(9) / 9, mode="same") + 1e-30
    above = np.nonzero(power > power.max() * 10 ** (-EDGE_BELOW_PEAK_DB / 10))[0]
    return float(above.max() * MODEL_RATE_HZ / n_fft)


# -- storage -----------------------------------------------------------------------------------------
def store_segment(path: Path, x: np.ndarray) -> float:
    """Write x (channels, samples) float at 48 kHz as 24-bit FLAC (atomically); returns the scale to
    multiply the stored samples by (1, or the power of two that brought an overshooting peak under 1)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = 1.0
    while peak / scale >= 1.0 - 2.0 ** -22:
        scale *= 2.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temp:
        sf.write(str(temp), np.ascontiguousarray((x / scale).T, dtype=np.float32), MODEL_RATE_HZ,
                 format="FLAC", subtype="PCM_24")
    return scale


def load_segment(root: str | os.PathLike, entry: dict) -> np.ndarray:
    """A manifest entry's audio: (channels, samples) float32 at 48 kHz, overshoot restored."""
    x, rate = sf.read(str(Path(root) / entry["file"]), dtype="float32", always_2d=True)
    assert rate == MODEL_RATE_HZ, f"{entry['file']} is at {rate} Hz"
    return np.ascontiguousarray(x.T * np.float32(entry.get("scale", 1.0)))
