"""`gapfill stream`: restore raw PCM from stdin to stdout (realtime.frontends.pipe).

Exit status 0 at the end of input or when stdout is closed, 130 after Ctrl-C (what was read is written
first), 2 when the input ends inside a frame (after every whole frame is written).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from realtime.cli.arguments import add_coded_option, add_config_option, coded_override, positive_int
from realtime.errors import GapfillError
from realtime.frontends.pcm_formats import PCM_FORMATS


def add_parser(commands: Any) -> None:
    """Add `stream` to the `gapfill` subcommands."""
    parser = commands.add_parser(
        "stream",
        help="restore raw PCM from stdin to stdout",
        description="Restore raw interleaved little-endian PCM from stdin to stdout as it arrives, e.g. "
        "ffmpeg -i in.mp3 -f f32le -ar 48000 -ac 2 - | gapfill stream --rate 48000 --channels 2 | ... "
        "A partial frame at the end of the input is an error (exit status 2) after all whole frames "
        "have been written. Output is at the input's rate, one sample per input sample, unless "
        "--output-rate asks for another (e.g. 48000 for a 16 or 22.05 kHz decode, so that the band "
        "restored above its Nyquist frequency survives).",
    )
    parser.add_argument("--rate", type=positive_int, required=True, help="sample rate in Hz")
    parser.add_argument("--output-rate", type=positive_int, metavar="R",
                        help="resample to R Hz and restore there: n * R / rate samples out (default: rate)")
    parser.add_argument("--channels", type=positive_int, required=True, help="interleaved channels")
    parser.add_argument(
        "--format", choices=tuple(PCM_FORMATS), default="f32le", help="sample format (default f32le)"
    )
    add_config_option(parser)
    parser.add_argument(
        "--no-compensate",
        dest="compensate",
        action="store_false",
        help="output one sample per input sample as it comes, delayed by the latency, and no tail, for live "
        "input (default: read the first gate.decide_ahead_s first so the gate decides there, drop the "
        "latency and flush the tail, so output lines up with input and is restored from its first sample)",
    )
    parser.add_argument("--strength", type=float, metavar="S",
                        help="how far each restored bin moves from the decoded magnitude toward the model's "
                        "estimate, 0 (the input, delayed) to 1 (default: the config's, 1)")
    add_coded_option(parser, "the input")
    parser.set_defaults(handler=stream_command)


def stream_command(args: argparse.Namespace) -> int:
    """Restore stdin to stdout; the exit status of the module docstring."""
    from realtime.cli.messages import clipped_summary
    from realtime.engine.restorer import Restorer, check_sample_rate
    from realtime.frontends.pipe import MAX_READ_FRAMES, run_stream

    restorer = Restorer.from_config(args.config, coded_override(args))
    if args.strength is not None:
        restorer.set_strength(args.strength)
    if args.output_rate is not None:
        check_sample_rate(args.rate)
    restorer.prepare(args.output_rate or args.rate, args.channels, MAX_READ_FRAMES)
    result = run_stream(restorer, args.format, args.channels, args.compensate, input_rate=args.rate)
    if result.broken_pipe:
        _silence_stdout()
        return 0
    if result.nonfinite_samples:
        print(f"gapfill: replaced {result.nonfinite_samples} non-finite samples", file=sys.stderr)
    if result.clipped_samples:
        print(f"gapfill: {clipped_summary(result.clipped_samples, f'the {args.format} output')}", file=sys.stderr)
    if result.interrupted:
        return 130
    if result.trailing_bytes:
        frame_bytes = PCM_FORMATS[args.format] * args.channels
        raise GapfillError(
            f"input ended inside a frame: {result.trailing_bytes} trailing bytes dropped "
            f"(a frame is {frame_bytes} bytes: {args.channels} x {args.format})"
        )
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that nothing fails writing to the closed pipe at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
