"""MP3 round trip for the benchmarks: the training pairs' reference chain (training/pairs.py, evaluation/chains.py:
LAME CBR -q 2 through lameenc, minimp3 through miniaudio at the MP3's rate, soxr back to 48 kHz, the codec
delay removed), so benchmark inputs are degraded exactly as the model's validation pairs are.

Needs lameenc, miniaudio and soxr (the `train` extra); `available()` says whether they import.
"""

from __future__ import annotations

import numpy as np

from realtime.errors import GapfillError


def available() -> bool:
    """True when lameenc, miniaudio and soxr can be imported."""
    try:
        import lameenc  # noqa: F401
        import miniaudio  # noqa: F401
        import soxr  # noqa: F401
    except ImportError:
        return False
    return True


def mp3_roundtrip(audio: np.ndarray, bitrate_kbps: int) -> tuple[np.ndarray, dict]:
    """Encode (channels, n) float32 at 48 kHz (1 or 2 channels, encoded as such) as CBR MP3 and decode it.

    Returns (decoded (channels, n) float32, aligned to the input, facts) with facts = {"bitrate_kbps",
    "codec" (the pairs' configuration name), "residual_lag_samples" (cross-correlation after alignment)}.
    """
    if not available():
        raise GapfillError("MP3 benchmarks need lameenc, miniaudio and soxr: pip install 'gapfill[train]'")
    from training.pairs import lame, make_pair

    channels = audio.shape[0]
    if channels not in (1, 2):
        raise ValueError(f"mp3_roundtrip takes 1 or 2 channels, got {channels}")
    configuration = lame(int(bitrate_kbps), channels)
    pair, facts = make_pair(np.asarray(audio, np.float32), configuration)
    return np.ascontiguousarray(pair[1]), {"bitrate_kbps": int(bitrate_kbps), "codec": configuration.name,
                                          "residual_lag_samples": facts["residual_lag_samples"]}
