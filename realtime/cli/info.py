"""`gapfill info`: the engine's settings, supported rates, the output rate policy, where its compiled kernels
are (realtime.engine.compiled) and the latency by part.

Latency in samples and ms at the model rate and, with --rate, at a host rate; text, or JSON with --json.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from realtime.cli.arguments import add_config_option, positive_int
from realtime.cli.startup import use_compiled_kernels


def add_parser(commands: Any) -> None:
    """Add `info` to the `gapfill` subcommands."""
    parser = commands.add_parser(
        "info",
        help="show the model, STFT settings and latency",
        description="Show the model, STFT and phase settings, supported rates, the rate each command "
        "writes and why, and the latency (in samples and ms, by part) at the model rate and, with --rate, "
        "at that host rate.",
    )
    add_config_option(parser)
    parser.add_argument("--rate", type=positive_int, help="also show the latency at this host rate (Hz)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=info_command)


def info_command(args: argparse.Namespace) -> int:
    """Print the facts; exit status 0."""
    use_compiled_kernels(args)
    from realtime.engine.compiled import status as kernels_status
    from realtime.engine.restorer import Restorer
    from realtime.frontends.audiofile import OUTPUT_RATE_POLICY

    restorer = Restorer.from_config(args.config)
    facts = restorer.describe()
    facts["output_rate"] = OUTPUT_RATE_POLICY
    facts["kernels"] = kernels_status()
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


def _print_fact(key: str, value: Any, depth: int) -> None:
    """`key: value` indented by `depth`; a dict as its keys below it, a list comma-separated."""
    indent = "  " * depth
    if isinstance(value, dict):
        print(f"{indent}{key}:")
        for sub_key, sub_value in value.items():
            _print_fact(sub_key, sub_value, depth + 1)
    elif isinstance(value, (list, tuple)):
        print(f"{indent}{key}: {', '.join(str(item) for item in value)}")
    else:
        print(f"{indent}{key}: {value}")
