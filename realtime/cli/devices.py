"""`gapfill devices`: list the sound devices PortAudio sees (realtime.frontends.devices)."""

from __future__ import annotations

import argparse
from typing import Any

from realtime.frontends.devices import format_devices, list_devices


def add_parser(commands: Any) -> None:
    """Add `devices` to the `gapfill` subcommands."""
    parser = commands.add_parser(
        "devices",
        help="list the sound devices PortAudio sees",
        description="List the sound devices PortAudio sees: index, name, host API, input and output channels, "
        "default rate; '>' marks the default input and '<' the default output.",
    )
    parser.set_defaults(handler=devices_command)


def devices_command(args: argparse.Namespace) -> int:
    """Print the device table; exit status 0."""
    print(format_devices(list_devices()))
    return 0
