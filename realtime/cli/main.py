"""The `gapfill` command: the parser of every subcommand, and errors as one line `gapfill: <message>`.

Exit status: 0 done, 2 a problem the user can fix (bad input, options, config, model), 130 interrupted,
1 an internal error (one line asking for a report; a traceback with GAPFILL_DEBUG=1).

Each subcommand is a module of realtime/cli: restore, stream, info, devices, live, spectrogram. To add
one: write a module whose `add_parser(commands)` adds its parser and sets `handler=` to a function
`(args) -> int`, and list it in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, Callable, NoReturn

from realtime import __version__
from realtime.cli import devices, info, live, restore, spectrogram, stream
from realtime.cli.startup import skip_numba_blas_probe
from realtime.errors import GapfillError

DEBUG_ENV = "GAPFILL_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line `gapfill: ...` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gapfill: {message} (see '{self.prog} --help')\n")


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    restore.add_parser, stream.add_parser, info.add_parser, devices.add_parser, live.add_parser,
    spectrogram.add_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The `gapfill` parser with every subcommand of SUBCOMMANDS."""
    parser = _Parser(prog="gapfill", description="Real-time restorer for low-bitrate audio.")
    parser.add_argument("--version", action="version", version=f"gapfill {__version__}")
    parser.set_defaults(own_process=False)  # main() sets it for the command's own process
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `gapfill` with `argv` (default: sys.argv[1:], the process's own command, which also skips
    Numba's BLAS probe and may take the engine's compiled kernels: realtime.cli.startup); returns the exit
    status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    if argv is None:
        skip_numba_blas_probe()
        args.own_process = True
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run `args.handler(args)`; every error becomes one line on stderr and an exit status (see above)."""
    try:
        return args.handler(args)
    except GapfillError as exc:
        print(f"gapfill: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        print(
            f"gapfill: internal error: {type(exc).__name__}: {exc} "
            f"(please report it; set {DEBUG_ENV}=1 for a traceback)",
            file=sys.stderr,
        )
        return 1
