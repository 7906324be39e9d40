"""The `gapfill` command: one small function per subcommand, errors as one line `gapfill: <message>`.

Exit status: 0 done, 2 a problem the user can fix (bad input, options, config, model), 130 interrupted,
1 an internal error (one line asking for a report; a traceback with GAPFILL_DEBUG=1).

To add a subcommand: write `_add_NAME(commands)` that adds its
parser and sets `handler=` to a function `(args) -> int`, and list it in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Callable, NoReturn

from realtime import __version__
from realtime.cli.arguments import (device_latency, non_negative_float, positive_float, positive_int, rate_choice,
                                stats_path, write_stats)
from realtime.errors import GapfillError

DEBUG_ENV = "GAPFILL_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line `gapfill: ...` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gapfill: {message} (see '{self.prog} --help')\n")


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="engine settings (YAML) over the shipped defaults")


# -- restore -------------------------------------------------------------------------------------
def _add_restore(commands: Any) -> None:
    parser = commands.add_parser(
        "restore",
        help="restore audio files into WAV or FLAC files (one, or a library with -o OUTDIR)",
        description="Restore IN (any format libsndfile reads: WAV, FLAC, OGG, MP3, ...) into OUT (.wav or "
        ".flac) with the same channels and duration, aligned sample for sample, at IN's rate, or at 48000 Hz "
        "(the model rate) when IN's is below 44100 Hz, so that the band restored above IN's Nyquist "
        "frequency survives (--rate keep|R to choose). OUT keeps IN's sample "
        "format where it can (PCM_16, PCM_24, FLOAT), else FLOAT (WAV) or PCM_24 (FLAC). With -o OUTDIR, "
        "every IN (files; folders with --recursive) is restored into OUTDIR in parallel, mirroring its "
        "folders; a rerun skips complete outputs.",
        usage="%(prog)s IN OUT [options]\n       %(prog)s IN... -o OUTDIR [--recursive] [--jobs N] [options]",
    )
    parser.add_argument("paths", metavar="IN", nargs="*",
                        help="IN OUT: one audio file into OUT (.wav or .flac); with -o: files and folders")
    _add_config_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="overwrite OUT if it exists (with -o: restore complete outputs again too)")
    from realtime.batch.run import add_batch_arguments

    add_batch_arguments(parser)
    parser.add_argument("--rate", type=rate_choice, metavar="keep|R",
                        help="output rate: 'keep' IN's, or R Hz (default: 48000 for IN below 44100 Hz, else IN's)")
    parser.add_argument("--stats-json", type=stats_path, metavar="FILE",
                        help="write rates, frames, latency and what the codec gate detected as JSON to FILE")
    parser.set_defaults(handler=_restore)


def _restore(args: argparse.Namespace) -> int:
    from realtime.frontends.audiofile import output_format, restore_file
    from realtime.batch.run import batch_command, single_file_paths
    from realtime.cli.messages import codec_summary
    from realtime.engine.restorer import Restorer

    if args.output_dir is not None:
        return batch_command(args)
    args.input, args.output = single_file_paths(args)
    output_format(args.output)  # fail on a bad name before loading the model
    restorer = Restorer.from_config(args.config)
    result = restore_file(restorer, args.input, args.output, force=args.force, show_progress=sys.stderr.isatty(),
                          rate=args.rate)
    if args.stats_json is not None:
        write_stats(args.stats_json, result.to_json())
    if sys.stderr.isatty():
        print(f"gapfill: {codec_summary(result.codec)}", file=sys.stderr)
    return 0


# -- stream --------------------------------------------------------------------------------------
def _add_stream(commands: Any) -> None:
    from realtime.frontends.pipe import PCM_FORMATS

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
    _add_config_option(parser)
    parser.add_argument(
        "--no-compensate",
        dest="compensate",
        action="store_false",
        help="output one sample per input sample, delayed by the latency, and no tail "
        "(default: drop the latency and flush the tail, so output lines up with input)",
    )
    parser.set_defaults(handler=_stream)


def _stream(args: argparse.Namespace) -> int:
    from realtime.frontends.pipe import MAX_READ_FRAMES, PCM_FORMATS, run_stream
    from realtime.engine.restorer import Restorer, check_sample_rate

    restorer = Restorer.from_config(args.config)
    if args.output_rate is not None:
        check_sample_rate(args.rate)
    restorer.prepare(args.output_rate or args.rate, args.channels, MAX_READ_FRAMES)
    result = run_stream(restorer, args.format, args.channels, args.compensate, input_rate=args.rate)
    if result.broken_pipe:
        _silence_stdout()
        return 0
    if result.nonfinite_samples:
        print(f"gapfill: replaced {result.nonfinite_samples} non-finite samples", file=sys.stderr)
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


# -- info ----------------------------------------------------------------------------------------
def _add_info(commands: Any) -> None:
    parser = commands.add_parser(
        "info",
        help="show the model, STFT settings and latency",
        description="Show the model, STFT and phase settings, supported rates, the rate each command "
        "writes and why, and the latency (in samples and ms, by part) at the model rate and, with --rate, "
        "at that host rate.",
    )
    _add_config_option(parser)
    parser.add_argument("--rate", type=positive_int, help="also show the latency at this host rate (Hz)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_info)


def _latency_at(restorer: Any, rate: int) -> dict[str, Any]:
    """Latency at host `rate`: total and parts, in samples and ms."""
    restorer.prepare(rate, 1, 1024)

    def ms(samples: int) -> float:
        return round(1000.0 * samples / rate, 3)

    parts = restorer.latency_parts
    return {
        "rate_hz": rate,
        "samples": restorer.latency_samples,
        "ms": ms(restorer.latency_samples),
        "parts": {name: {"samples": value, "ms": ms(value)} for name, value in parts.items()},
    }


def _info(args: argparse.Namespace) -> int:
    from realtime.frontends.audiofile import OUTPUT_RATE_POLICY
    from realtime.engine.restorer import Restorer

    restorer = Restorer.from_config(args.config)
    facts = restorer.describe()
    facts["output_rate"] = OUTPUT_RATE_POLICY
    model_rate = facts["model_rate_hz"]
    rates = [model_rate] + ([args.rate] if args.rate and args.rate != model_rate else [])
    facts["latency"] = [_latency_at(restorer, rate) for rate in rates]
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    for key, value in facts.items():
        if key != "latency":
            _print_fact(key, value, 0)
    for latency in facts["latency"]:
        print(f"latency at {latency['rate_hz']} Hz: {latency['samples']} samples ({latency['ms']:.2f} ms)")
        for name, part in latency["parts"].items():
            print(f"  {name}: {part['samples']} samples ({part['ms']:.2f} ms)")
    return 0


def _print_fact(key: str, value: Any, depth: int) -> None:
    indent = "  " * depth
    if isinstance(value, dict):
        print(f"{indent}{key}:")
        for sub_key, sub_value in value.items():
            _print_fact(sub_key, sub_value, depth + 1)
    elif isinstance(value, (list, tuple)):
        print(f"{indent}{key}: {', '.join(str(item) for item in value)}")
    else:
        print(f"{indent}{key}: {value}")


# -- devices, live, spectrogram -----------------------------------------------------------------------
def _add_devices(commands: Any) -> None:
    parser = commands.add_parser(
        "devices",
        help="list the sound devices PortAudio sees",
        description="List the sound devices PortAudio sees: index, name, host API, input and output channels, "
        "default rate; '>' marks the default input and '<' the default output.",
    )
    parser.set_defaults(handler=_devices)


def _devices(args: argparse.Namespace) -> int:
    from realtime.frontends.live import devices_command

    return devices_command(args)


def _add_live(commands: Any) -> None:
    from realtime.frontends.devices import int_or_str
    from realtime.frontends.live import DEFAULT_BLOCKSIZE

    live = commands.add_parser(
        "live",
        help="restore a sound card input into an output in real time",
        description="Restore the input device into the output device in real time (a duplex stream) until "
        "Ctrl-C or --duration, then print a summary. Devices are named by index or by part of the name "
        "(see 'gapfill devices'). A block whose restored output is late is replaced by the dry input, "
        "delayed by the same latency, and counted as an overload. Runs at the device's rate.",
    )
    live.add_argument("--input", type=int_or_str, metavar="DEV",
                      help="input device, by index or part of the name (default: the default input)")
    live.add_argument("--output", type=int_or_str, metavar="DEV",
                      help="output device, by index or part of the name (default: the default output)")
    live.add_argument("--rate", type=positive_int, metavar="R",
                      help="sample rate in Hz (default: the output device's)")
    live.add_argument("--channels", type=positive_int, metavar="C",
                      help="channels in and out (default: 2, or fewer if a device has fewer)")
    live.add_argument("--blocksize", type=positive_int, metavar="N", default=DEFAULT_BLOCKSIZE,
                      help=f"frames per block (default {DEFAULT_BLOCKSIZE})")
    live.add_argument("--latency", type=device_latency, metavar="low|high|SECONDS", default="low",
                      help="device latency PortAudio should aim for (default low)")
    _add_config_option(live)
    live.add_argument("--duration", type=positive_float, metavar="S",
                      help="stop after S seconds (default: at Ctrl-C)")
    live.add_argument("--stats-json", type=stats_path, metavar="PATH",
                      help="write the run's statistics as JSON to PATH")
    live.add_argument("--bypass", action="store_true",
                      help="output the dry input, delayed by the same latency (for A/B listening)")
    live.set_defaults(handler=_live)


def _live(args: argparse.Namespace) -> int:
    from realtime.frontends.live import live_command

    return live_command(args)


def _add_spectrogram(commands: Any) -> None:
    from realtime.frontends.spectrogram import DEFAULT_RANGE_DB, MAX_DEFAULT_SECONDS, PLOT_EXTRA_HINT

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
    parser.set_defaults(handler=_spectrogram)


def _spectrogram(args: argparse.Namespace) -> int:
    from realtime.frontends.spectrogram import spectrogram_command

    return spectrogram_command(args)


# -- entry point ---------------------------------------------------------------------------------
SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_restore, _add_stream, _add_info, _add_devices, _add_live, _add_spectrogram,
)


def build_parser() -> argparse.ArgumentParser:
    """The `gapfill` parser with every subcommand of SUBCOMMANDS."""
    parser = _Parser(prog="gapfill", description="Real-time restorer for low-bitrate audio.")
    parser.add_argument("--version", action="version", version=f"gapfill {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `gapfill` with `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
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
