"""`gapfill live`: restore a sound card's input into an output in real time, then print a summary.

The run itself is `realtime.frontends.live.run_live`; this module turns the arguments into `LiveOptions`,
prints the summary (`live_summary`) and writes `--stats-json`. Exit status 0, also after Ctrl-C (the
normal way to stop); 2 when the sound device ends the stream early.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from realtime.cli.arguments import (add_config_option, device_latency, int_or_str, positive_float, positive_int,
                                    stats_path, write_stats)
from realtime.cli.messages import codec_summary
from realtime.errors import GapfillError
from realtime.frontends.live import DEFAULT_BLOCKSIZE, LiveOptions, LiveResult, run_live


def add_parser(commands: Any) -> None:
    """Add `live` to the `gapfill` subcommands."""
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
    add_config_option(live)
    live.add_argument("--duration", type=positive_float, metavar="S",
                      help="stop after S seconds (default: at Ctrl-C)")
    live.add_argument("--stats-json", type=stats_path, metavar="PATH",
                      help="write the run's statistics as JSON to PATH")
    live.add_argument("--bypass", action="store_true",
                      help="start with the dry input, delayed by the same latency (A/B: the a key or SIGUSR1 "
                      "switches between it and the restored output)")
    live.add_argument("--strength", type=float, metavar="S",
                      help="how far each restored bin moves from the decoded magnitude toward the model's "
                      "estimate, 0 (the input, delayed) to 1 (default: the config's, 1); the + and - keys "
                      "change it while it runs")
    live.set_defaults(handler=live_command)


def live_command(args: argparse.Namespace, restorer_factory: Callable[[str | None], Any] | None = None) -> int:
    """Run, write `--stats-json`, print the summary. restorer_factory: see `run_live` (tests inject one)."""
    options = LiveOptions(
        input=args.input, output=args.output, rate_hz=args.rate, channels=args.channels,
        blocksize=args.blocksize, latency=args.latency, config=args.config, duration_s=args.duration,
        bypass=args.bypass, strength=args.strength,
    )
    result = run_live(options, restorer_factory=restorer_factory)
    if args.stats_json is not None:
        write_stats(args.stats_json, result.to_json())
    print(live_summary(result), flush=True)
    if result.stopped_early:
        raise GapfillError(f"the sound device stopped the stream after {result.duration_s:.1f} s")
    return 0


def live_summary(result: LiveResult) -> str:
    """The summary `gapfill live` prints at the end: blocks, overloads and xruns, compute per block, the
    latency by part (samples), what the codec gate detected, A/B switches and the strength."""
    c = result.compute_ms
    period = result.block_period_ms

    def device(samples: int | None) -> str:
        return "unknown" if samples is None else str(samples)

    total_ms = 1000.0 * result.latency_samples / result.rate_hz
    unknown = " (device latency partly unknown)" if None in (result.device_input_samples,
                                                           result.device_output_samples) else ""
    return "\n".join([
        f"gapfill live: {result.duration_s:.2f} s, {result.blocks} blocks of {result.blocksize} frames at "
        f"{result.rate_hz} Hz, {result.channels} channels, '{result.input_device}' -> '{result.output_device}'"
        + (" (bypass)" if result.bypass else ""),
        f"  overloads: {result.overloads}   input overflows: {result.input_overflows}   "
        f"output underflows: {result.output_underflows}",
        f"  compute per block: p50 {c['p50']:.3f} ms, p99 {c['p99']:.3f} ms, max {c['max']:.3f} ms "
        f"(load {100 * c['p50'] / period:.1f}% / {100 * c['p99'] / period:.1f}% / "
        f"{100 * c['max'] / period:.1f}% of the {period:.3f} ms block period; engine thread "
        f"{result.engine_thread})",
        f"  latency: {result.latency_samples} samples ({total_ms:.2f} ms) = engine {result.engine_latency_samples}"
        f" + front end {result.front_end_samples} + device input {device(result.device_input_samples)}"
        f" + device output {device(result.device_output_samples)}{unknown}",
        f"  codec gate: {codec_summary(result.codec)}",
        f"  A/B switches: {result.ab_switches} (heard {result.heard_at_end} at the end); strength {result.strength:g}",
    ])
