"""`gapfill spectrogram IN [IN ...] -o OUT.png`: spectrograms of audio files side by side.

The picture is drawn by realtime.frontends.spectrogram, e.g.

    gapfill spectrogram clean.wav coded.mp3 restored.wav -o compare.png --labels clean "MP3 32k" restored

Every problem (a bad output name, a missing input, matplotlib not installed) is checked before the
picture is drawn and is one line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from realtime.cli.arguments import non_negative_float, positive_float
from realtime.errors import GapfillError
from realtime.frontends.spectrogram import DEFAULT_RANGE_DB, MAX_DEFAULT_SECONDS, PLOT_EXTRA_HINT


def add_parser(commands: Any) -> None:
    """Add `spectrogram` to the `gapfill` subcommands."""
    parser = commands.add_parser(
        "spectrogram",
        help="draw spectrograms of audio files side by side (PNG)",
        description="Draw the spectrogram of each IN (any file libsndfile reads, mixed to mono) side by side "
        "in OUT.png, on one colour scale and one frequency axis, e.g. the clean, coded and restored versions "
        f"of a clip. Needs matplotlib ({PLOT_EXTRA_HINT}).",
    )
    parser.add_argument("inputs", metavar="IN", nargs="+", help="audio files, one panel each, left to right")
    parser.add_argument("-o", "--output", metavar="OUT.png", required=True, help="the picture to write (.png)")
    parser.add_argument("--labels", metavar="LABEL", nargs="+", help="panel titles, one per IN (default: file names)")
    parser.add_argument("--start", type=non_negative_float, default=0.0, metavar="S",
                        help="skip S seconds of each file")
    parser.add_argument("--duration", type=positive_float, metavar="S",
                        help=f"show S seconds (default: the whole file, at most {MAX_DEFAULT_SECONDS:g} s)")
    parser.add_argument("--range-db", type=positive_float, default=DEFAULT_RANGE_DB, metavar="DB",
                        help=f"dynamic range shown below the loudest bin (default {DEFAULT_RANGE_DB:g})")
    parser.add_argument("--max-freq", type=positive_float, metavar="KHZ", help="top of the frequency axis in kHz")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.png if it exists")
    parser.set_defaults(handler=spectrogram_command)


def spectrogram_command(args: argparse.Namespace) -> int:
    """Read every input, render, write; exit status 0 (problems raise GapfillError)."""
    from realtime.frontends.spectrogram import Panel, matplotlib_figure, read_mono, render

    out_path = Path(args.output)
    if out_path.suffix.lower() != ".png":
        raise GapfillError(f"cannot write '{args.output}': the output name must end in .png")
    if out_path.is_dir():
        raise GapfillError(f"cannot write '{args.output}': it is a directory")
    if out_path.exists() and not args.force:
        raise GapfillError(f"'{args.output}' exists (use --force to overwrite it)")
    if not out_path.resolve().parent.is_dir():
        raise GapfillError(f"cannot write '{args.output}': no such directory '{out_path.parent}'")
    labels = args.labels or [Path(name).name for name in args.inputs]
    if len(labels) != len(args.inputs):
        count = f"{len(args.inputs)} input{'s' if len(args.inputs) != 1 else ''}"
        raise GapfillError(f"--labels gives {len(labels)} label{'s' if len(labels) != 1 else ''} for {count} "
                           "(one per input)")
    matplotlib_figure()  # fail before reading when matplotlib is missing
    panels = []
    for name, label in zip(args.inputs, labels):
        samples, rate, cut = read_mono(name, args.start, args.duration)
        if cut:
            print(f"gapfill: showing {MAX_DEFAULT_SECONDS:g} s of '{name}' (use --start and --duration for "
                  "another part)", file=sys.stderr)
        panels.append(Panel(label, samples, rate))
    max_freq = None if args.max_freq is None else 1000.0 * args.max_freq
    render([panels], out_path, range_db=args.range_db, max_freq_hz=max_freq)
    return 0
