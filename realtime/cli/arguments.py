"""Arguments shared by the `gapfill` subcommands: value types, `--config`, and `--stats-json`.

A bad value is one line from argparse. `--stats-json` (of `restore` and `live`) is checked when parsed
and written by `write_stats`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from realtime.errors import GapfillError


def positive_int(text: str) -> int:
    """An integer >= 1 (samples, Hz, channels)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, dB, kHz)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the engine settings of `restore`, `stream`, `info` and `live`."""
    parser.add_argument("--config", metavar="FILE", help="engine settings (YAML) over the shipped defaults")


def add_coded_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--coded` of `restore` and `stream`: the input is decoded from a low-rate lossy codec."""
    parser.add_argument("--coded", action="store_true",
                        help=f"{what} is decoded from a low-rate lossy codec (an MP3 at 32 kbit/s or less): the "
                        "codec gate takes a cliff for the codec's without codec damage under it "
                        "(gate.coded_input true)")


def coded_override(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config override `--coded` asks for (section -> key -> value; empty without it)."""
    return {"gate": {"coded_input": True}} if args.coded else {}


def int_or_str(text: str) -> int | str:
    """A sound device (`gapfill live --input/--output`): an index if `text` is an integer, else a part of
    its name (python-sounddevice's convention)."""
    try:
        return int(text)
    except ValueError:
        return text


def device_latency(text: str) -> str | float:
    """`--latency` of `gapfill live`: 'low', 'high' or seconds (PortAudio's latency argument)."""
    if text in ("low", "high"):
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'low', 'high' or seconds, got {text!r}") from None


def rate_choice(text: str) -> int | str:
    """`--rate` of `gapfill restore`: 'keep' (the input's rate) or a rate in Hz."""
    if text == "keep":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'keep' or a rate in Hz, got {text!r}") from None


def check_stats_path(path: str) -> None:
    """Raise a one-line GapfillError unless `path` can be written: its folder exists, it is no folder."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise GapfillError(f"cannot write stats to '{path}': directory '{parent}' does not exist")
    if Path(path).is_dir():
        raise GapfillError(f"cannot write stats to '{path}': it is a directory")


def stats_path(text: str) -> str:
    """A `--stats-json` path that can be written (see `check_stats_path`)."""
    try:
        check_stats_path(text)
    except GapfillError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def write_stats(path: str, data: dict[str, Any]) -> None:
    """Write `--stats-json` data (indented JSON); a failure is a one-line GapfillError."""
    try:
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise GapfillError(f"cannot write stats to '{path}': {exc.strerror or exc}") from None
