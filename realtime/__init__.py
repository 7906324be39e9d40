"""gapfill: real-time restoration of low-bitrate (MP3) audio.

    from realtime import restore
    restored = restore(audio, 44_100)    # (samples,) or (channels, samples), float32/float64; same shape back

`Restorer` is the streaming processor behind it (`prepare / process / flush / reset / latency_samples`),
`restore_file` restores a file into a WAV or FLAC file, `load_config` reads and validates settings.

Layout: `engine/` is the signal path, stages in order (analysis -> level -> model -> gate -> phase ->
synthesis, run by `chain.py`, behind `restorer.py`); `frontends/` (files, pipes, sound cards) and `batch/`
drive a `Restorer`; `cli/` is the command. The names below are imported on first use, so
`import realtime` (and `gapfill --version`) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["EngineConfig", "GapfillError", "Restorer", "load_config", "restore", "restore_file"]

_HOMES = {"EngineConfig": "realtime.engine.config", "load_config": "realtime.engine.config", "GapfillError": "realtime.errors",
          "Restorer": "realtime.engine.restorer", "restore": "realtime.engine.restorer", "restore_file": "realtime.frontends.audiofile"}

if TYPE_CHECKING:
    from realtime.frontends.audiofile import restore_file
    from realtime.engine.config import EngineConfig, load_config
    from realtime.errors import GapfillError
    from realtime.engine.restorer import Restorer, restore


def __getattr__(name: str) -> Any:
    """The public names of `__all__`, imported from their modules when first used."""
    if name not in _HOMES:
        raise AttributeError(f"module 'realtime' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
