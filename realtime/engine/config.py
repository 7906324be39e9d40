"""Engine configuration: the shipped `default.yaml` overlaid by a user YAML file and by programmatic
overrides, every key validated by the same schema.

A user file (or an overrides mapping, `{"phase": {"method": "rtpghi"}}`) may set any subset of the keys
of `default.yaml`; an unknown section or key, a wrong type or a value out of range raises `GapfillError`
naming the key and the allowed values, e.g. `config 'phase.method': must be one of 'decoded', 'rtpghi',
'completion', got 'fast'`. The model rate is declared here, once. An `stft` key set to FROM_MODEL (the
default) takes the value the model was trained at, from its metadata
(`realtime.engine.model_files.model_settings`); a value set explicitly must match the model's when it is
loaded. The gate's calibration keys (`model_files.GATE_CALIBRATION`) set to FROM_MODEL (the default) take
the model's calibration the same way; a value set explicitly wins.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import yaml

from realtime.engine.model_files import GATE_CALIBRATION, model_settings
from realtime.engine.windows import WINDOWS
from realtime.errors import GapfillError

DEFAULT_CONFIG_PATH = Path(str(resources.files("realtime.engine").joinpath("default.yaml")))
MODEL_RATE_HZ = 48_000
"""The rate (Hz) the engine and every model run at; other host rates are resampled to it."""
BLOCK_SAMPLES = 4096
"""Block size (samples) in which `restore` and the file and pipe front ends feed a `Restorer`."""
FROM_MODEL = "model"
"""An `stft` or gate calibration value meaning: the model's own (its metadata)."""
_FROM_MODEL_KEYS = {"stft": ("fft_size", "hop", "window"), "gate": tuple(GATE_CALIBRATION)}
"""The keys that may be FROM_MODEL, per section."""


def _power_of_two(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = type(value) is int and low <= value <= high and value & (value - 1) == 0
        return None if ok else f"must be a power of two between {low} and {high}"

    return check


def _number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = type(value) in (int, float) and low <= value <= high
        return None if ok else f"must be a number between {low:g} and {high:g}"

    return check


def _or_none(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def either(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return None if problem is None else f"{problem}, or null (off)"

    return either


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = type(value) is int and low <= value <= high
        return None if ok else f"must be an integer between {low} and {high}"

    return check


def _choice(*allowed: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = any(value == a and type(value) is type(a) for a in allowed)
        return None if ok else "must be one of " + ", ".join(repr(a) for a in allowed)

    return check


def _model_path(value: Any) -> str | None:
    ok = isinstance(value, str) and value.strip() != ""
    return None if ok else "must be 'default', 'passthrough' or a path to an .onnx file"


def _or_from_model(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def either(value: Any) -> str | None:
        problem = None if value == FROM_MODEL else check(value)
        return None if problem is None else f"{problem}, or {FROM_MODEL!r} (the model's)"

    return either


_BOOL = _choice(True, False)

# section -> key -> validator returning None (valid) or what the value must be.
SCHEMA: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "model": {"path": _model_path, "threads": _integer(1, 16), "stereo": _choice("mid_side", "channels"),
              "input_level_db": _number(-80.0, 0.0), "max_boost_db": _number(0.0, 60.0),
              "strength": _number(0.0, 1.0), "ceiling_db": _or_none(_number(-20.0, 20.0))},
    "stft": {"fft_size": _or_from_model(_power_of_two(256, 4096)), "hop": _or_from_model(_power_of_two(64, 1024)),
             "window": _or_from_model(_choice(*WINDOWS))},
    "phase": {
        "method": _choice("decoded", "rtpghi", "completion"),
        "lookahead_frames": _choice(0, 1),
        "tolerance_db": _number(10.0, 200.0),
        "keep_db": _number(0.0, 20.0),
        "above_cutoff": _choice("translate", "integrate"),
        "patch_delay_samples": _integer(0, 1024),
    },
    "gate": {
        "enabled": _BOOL,
        "min_cutoff_hz": _number(1500.0, 12000.0),
        "max_cutoff_hz": _number(2000.0, 18000.0),
        "active_db": _number(-140.0, 0.0),
        "spectrum_time_s": _number(0.02, 10.0),
        "below_hz": _number(100.0, 3000.0),
        "gap_hz": _number(0.0, 2000.0),
        "above_hz": _number(100.0, 4000.0),
        "cliff_db": _number(3.0, 100.0),
        "release_db": _number(0.0, 50.0),
        "floor_spread_db": _number(0.0, 20.0),
        "floor_bonus_db": _number(0.0, 50.0),
        "damage_share": _or_from_model(_number(0.0, 1.0)),
        "damage_margin_hz": _number(0.0, 6000.0),
        "damage_from_hz": _number(1500.0, 24000.0),
        "lenient_from_hz": _number(0.0, 24000.0),
        "lenient_to_hz": _number(0.0, 24000.0),
        "lenient_damage_fraction": _number(0.0, 1.0),
        "damage_time_s": _number(0.02, 3600.0),
        "damage_wait_s": _number(0.0, 60.0),
        "cutoff_slew_hz_per_s": _number(10.0, 100000.0),
        "crossfade_hz": _number(0.0, 4000.0),
        "hole_db": _number(6.0, 60.0),
        "confidence_from": _number(0.01, 1.0),
        "confidence_full": _number(0.01, 1.0),
        "codec_share": _or_from_model(_number(0.001, 1.0)),
        "codec_share_top_hz": _or_from_model(_number(2000.0, 24000.0)),
        "decide_ahead_s": _number(0.0, 60.0),
        "coded_input": _choice("auto", True, False),
    },
}


@dataclass(frozen=True)
class EngineConfig:
    """Validated settings, one dict per section of `default.yaml`; `source` names the user file or None."""

    model: dict[str, Any]
    stft: dict[str, Any]
    phase: dict[str, Any]
    gate: dict[str, Any]
    source: str | None = None

    @property
    def fft_size(self) -> int:
        """Window length in samples at the model rate."""
        return int(self.stft["fft_size"])

    @property
    def hop(self) -> int:
        """Hop in samples at the model rate."""
        return int(self.stft["hop"])

    @property
    def window(self) -> str:
        """The framing, one of `realtime.engine.windows.WINDOWS`."""
        return str(self.stft["window"])


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise GapfillError(f"cannot read config '{path}': it is a directory") from None
    except OSError as exc:
        raise GapfillError(f"cannot read config '{path}': {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GapfillError(f"cannot read config '{path}': not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise GapfillError(f"config '{path}': malformed YAML{where}: {problem}") from None


def _overlay(defaults: dict[str, dict[str, Any]], user: Any, name: str) -> dict[str, dict[str, Any]]:
    """Return `defaults` with the sections and keys of `user` replaced, every key checked."""
    merged = copy.deepcopy(defaults)
    if user is None:
        return merged
    if not isinstance(user, Mapping):
        raise GapfillError(f"config '{name}': must be a mapping of sections ({', '.join(SCHEMA)})")
    for section, values in user.items():
        if section not in SCHEMA:
            raise GapfillError(
                f"config '{section}': unknown section (allowed: {', '.join(SCHEMA)})"
            )
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise GapfillError(f"config '{section}': must be a mapping of keys")
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise GapfillError(
                    f"config '{section}.{key}': unknown key (allowed: {', '.join(SCHEMA[section])})"
                )
            merged[section][key] = value
    return merged


def _validate(settings: dict[str, dict[str, Any]]) -> None:
    for section, keys in SCHEMA.items():
        for key, check in keys.items():
            value = settings[section][key]
            problem = check(value)
            if problem is not None:
                raise GapfillError(f"config '{section}.{key}': {problem}, got {value!r}")


def _check_framing(settings: dict[str, dict[str, Any]]) -> None:
    fft_size, hop = settings["stft"]["fft_size"], settings["stft"]["hop"]
    if hop > fft_size // 2:
        raise GapfillError(
            f"config 'stft.hop': must be at most half of stft.fft_size ({fft_size // 2}), got {hop}"
        )


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> EngineConfig:
    """Load `default.yaml`, overlay the user file at `path` (if any), then `overrides` (section -> key ->
    value, as in the YAML file), and validate every key."""
    defaults = _read_yaml(DEFAULT_CONFIG_PATH)
    user = None if path is None else _read_yaml(Path(path))
    settings = _overlay(defaults, user, str(path))
    if overrides is not None:
        settings = _overlay(settings, overrides, "overrides")
    _validate(settings)
    if any(settings[section][key] == FROM_MODEL for section, keys in _FROM_MODEL_KEYS.items() for key in keys):
        fixed = model_settings(settings["model"]["path"])
        for section, keys in _FROM_MODEL_KEYS.items():
            settings[section].update({key: fixed[section][key] for key in keys
                                      if settings[section][key] == FROM_MODEL})
    _check_framing(settings)
    return EngineConfig(**settings, source=None if path is None else str(path))

