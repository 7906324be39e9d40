"""`gapfill restore`: one file (IN OUT, realtime.frontends.audiofile) or many (IN... -o OUTDIR, realtime.batch).

Exit status: 0 done (every file restored or complete already); 2 a problem the user can fix, or any
file of a batch that failed; 128 + the signal's number when a batch is stopped by SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from realtime.batch.plan import BATCH_FORMATS
from realtime.cli.arguments import (add_coded_option, add_config_option, coded_override, positive_int,
                                    rate_choice, stats_path, write_stats)
from realtime.cli.startup import use_compiled_kernels
from realtime.errors import GapfillError

# The options that only a batch has, by `args` attribute, with their flags (for the one-file error).
_BATCH_ONLY = {"recursive": "--recursive", "from_list": "--from-list", "format": "--format",
               "jobs": "--jobs", "scheduler": "--scheduler", "report": "--report"}


def add_parser(commands: Any) -> None:
    """Add `restore` to the `gapfill` subcommands."""
    parser = commands.add_parser(
        "restore",
        help="restore audio files into WAV or FLAC files (one, or a library with -o OUTDIR)",
        description="Restore IN (WAV, FLAC, OGG, MP3, AAC/M4A, WMA, WebM, ...: what libsndfile or FFmpeg "
        "reads) into OUT (.wav or .flac) with the same channels and duration, aligned sample for sample, "
        "at IN's rate, or at 48000 Hz (the model rate) when IN's is below 44100 Hz, so that the band "
        "restored above IN's Nyquist frequency survives (--rate keep|R to choose). OUT keeps IN's sample "
        "format where it can (PCM_16, PCM_24, FLOAT), else FLOAT (WAV) or PCM_24 (FLAC). With -o OUTDIR, "
        "every IN (files; folders with --recursive) is restored into OUTDIR in parallel, mirroring its "
        "folders; a rerun skips complete outputs.",
        usage="%(prog)s IN OUT [options]\n       %(prog)s IN... -o OUTDIR [--recursive] [--jobs N] [options]",
    )
    parser.add_argument("paths", metavar="IN", nargs="*",
                        help="IN OUT: one audio file into OUT (.wav or .flac); with -o: files and folders")
    add_config_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="overwrite OUT if it exists (with -o: restore complete outputs again too)")
    group = parser.add_argument_group("many files (IN... -o OUTDIR)")
    group.add_argument("-o", "--output-dir", metavar="OUTDIR",
                       help="restore every IN into OUTDIR, mirroring the folders they are in")
    group.add_argument("--recursive", action="store_true", default=None,
                       help="restore the audio files in folders given as IN, and in their subfolders")
    group.add_argument("--from-list", metavar="FILE", help="also restore the paths in FILE, one a line")
    group.add_argument("--format", choices=BATCH_FORMATS, help="output format (default flac)")
    group.add_argument("-j", "--jobs", type=positive_int, metavar="N",
                       help=f"worker processes (default: the cores available, {available_cores()} here)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster at ADDRESS (tcp://HOST:8786) instead; needs "
                       "gapfill[cluster] and the same paths on every worker")
    group.add_argument("--report", metavar="JSON", help="write the summary and every file's outcome here")
    parser.add_argument("--rate", type=rate_choice, metavar="keep|R",
                        help="output rate: 'keep' IN's, or R Hz (default: 48000 for IN below 44100 Hz, else IN's)")
    parser.add_argument("--stats-json", type=stats_path, metavar="FILE",
                        help="write rates, frames, latency and what the codec gate detected as JSON to FILE")
    parser.add_argument("--strength", type=float, metavar="S",
                        help="how far each restored bin moves from the decoded magnitude toward the model's "
                        "estimate, 0 (IN, delayed: an exact copy) to 1 (default: the config's, 1)")
    add_coded_option(parser, "IN (default: as IN's own coding says)")
    parser.set_defaults(handler=restore_command)


def restore_command(args: argparse.Namespace) -> int:
    """One file, or a batch with -o OUTDIR; the exit status of the module docstring."""
    if args.output_dir is not None:
        return _restore_batch(args)
    return _restore_one_file(args)


def _restore_one_file(args: argparse.Namespace) -> int:
    """`gapfill restore IN OUT`: the codec summary on a terminal, `--stats-json` if asked; exit status 0."""
    in_path, out_path = single_file_paths(args)  # a usage error before anything heavy is imported
    from realtime.cli.messages import clipped_summary, codec_summary
    from realtime.frontends.audiofile import output_format, restore_file

    output_format(out_path)  # fail on a bad name before loading the model
    use_compiled_kernels(args)
    from realtime.engine.restorer import Restorer

    restorer = Restorer.from_config(args.config, coded_override(args))
    if args.strength is not None:
        restorer.set_strength(args.strength)
    result = restore_file(restorer, in_path, out_path, force=args.force, show_progress=sys.stderr.isatty(),
                          rate=args.rate)
    if args.stats_json is not None:
        write_stats(args.stats_json, result.to_json())
    if sys.stderr.isatty():
        print(f"gapfill: {codec_summary(result.codec)}", file=sys.stderr)
    if result.clipped_samples:
        print(f"gapfill: {clipped_summary(result.clipped_samples, result.output)}", file=sys.stderr)
    return 0


def single_file_paths(args: argparse.Namespace) -> tuple[str, str]:
    """IN and OUT of the one-file form `gapfill restore IN OUT`; refuses batch-only options without -o."""
    given = [flag for name, flag in _BATCH_ONLY.items() if getattr(args, name) is not None]
    if given:
        raise GapfillError(f"{', '.join(given)} need -o OUTDIR (gapfill restore IN... -o OUTDIR)")
    if len(args.paths) != 2:
        raise GapfillError("restore takes IN OUT (one file), or IN... -o OUTDIR (many files)")
    return args.paths[0], args.paths[1]


def _restore_batch(args: argparse.Namespace) -> int:
    """`gapfill restore IN... -o OUTDIR`: 0 when every file is restored or complete, 2 when any failed,
    128 + signal number when interrupted."""
    if args.stats_json is not None:
        raise GapfillError("--stats-json is for one file; with -o OUTDIR, --report JSON holds every file's")
    if args.scheduler and args.jobs is not None:
        raise GapfillError("--jobs sets local workers; a Dask cluster has its own (dask worker --nworkers N)")
    from realtime.batch.run import BatchInterrupted, run_batch  # after the usage errors (it loads numpy)

    try:
        summary = run_batch(
            args.paths, args.output_dir, fmt=args.format or "flac", recursive=bool(args.recursive),
            from_list=args.from_list, jobs=args.jobs or available_cores(), scheduler=args.scheduler,
            config_path=args.config, force=args.force, report_path=args.report,
            options={} if args.rate is None else {"rate": args.rate},
            overrides={**({} if args.strength is None else {"model": {"strength": args.strength}}),
                       **coded_override(args)} or None,
        )
    except BatchInterrupted as exc:
        return 128 + exc.signum
    return 2 if summary.count("failed") else 0


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
