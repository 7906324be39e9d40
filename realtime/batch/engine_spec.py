"""The engine every batch worker builds (`EngineSpec`) and its fingerprint (sha256, hex).

The fingerprint decides whether an existing output was made by the same engine (realtime/batch/__init__.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from realtime import __version__
from realtime.engine.config import EngineConfig, load_config
from realtime.errors import GapfillError


@dataclass(frozen=True)
class EngineSpec:
    """What every worker builds its `Restorer` from: the effective config (model.threads 1), the output
    options passed to `restore_file`, and their fingerprint."""

    config: EngineConfig
    options: dict[str, Any]
    fingerprint: str


def engine_fingerprint(config: EngineConfig, options: dict[str, Any]) -> str:
    """sha256 (hex) of the model file's bytes, the effective config, gapfill's version and `options`.

    The model's path is left out (workers may install gapfill elsewhere); its bytes are in.
    """
    from realtime.engine.model_files import model_file

    setting = config.model["path"]
    digest = hashlib.sha256()
    facts = {
        "gapfill": __version__,
        "model": dict(config.model, path="passthrough" if setting == "passthrough" else "file"),
        "stft": config.stft, "phase": config.phase, "gate": config.gate, "options": options,
    }
    digest.update(json.dumps(facts, sort_keys=True).encode())
    if setting != "passthrough":
        model_path = model_file(setting)
        try:
            with open(model_path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise GapfillError(f"cannot load model '{model_path}': {(exc.strerror or str(exc)).lower()}") from None
    return digest.hexdigest()


def engine_spec(config_path: str | None, options: dict[str, Any] | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> EngineSpec:
    """The engine every worker runs: the config at `config_path` with `overrides` over it (validated like
    the file) and one onnxruntime thread."""
    config = load_config(config_path, overrides)
    config = dataclasses.replace(config, model=dict(config.model, threads=1), source=None)
    options = dict(options or {})
    return EngineSpec(config, options, engine_fingerprint(config, options))
