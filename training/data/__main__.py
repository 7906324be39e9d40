"""`python -m training.data build [--root data/v2] [--workers N] [--hours H]`: build (or resume) data v2.

    nohup nice -n 15 python -m training.data build > data/v2/build.log 2>&1 &   # the whole build
    python -m training.data summary                                            # its tables again
    python -m training.data cutoffs                                            # re-measure LAME's cutoffs

See training/data/__init__.py for what is built and training/data/SOURCES.md for the sources.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (workers, fluidsynth, ffmpeg)."""
    return sum(os.times()[:4])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("build", help="build or resume data v2")
    b.add_argument("--root", default="data/v2")
    b.add_argument("--workers", type=int, default=1, help="processes (default 1: the machine is shared)")
    b.add_argument("--hours", type=float, default=None, help="stop at about this many hours of clean audio")
    s = sub.add_parser("summary", help="hours per kind, split and source of a build")
    s.add_argument("--root", default="data/v2")
    sub.add_parser("cutoffs", help="measure the cutoff of every LAME and libmp3lame mode and rate")
    args = parser.parse_args(argv)
    if args.step == "build":
        from training.data.build import build, summary

        wall, cpu = time.time(), _cpu_s()
        build(args.root, args.workers, args.hours)
        print(summary(args.root))
        print(f"data: built in {(time.time() - wall) / 60:.1f} min wall, {(_cpu_s() - cpu) / 60:.1f} min CPU "
              "(this process, its workers and the tools they ran)")
    elif args.step == "summary":
        from training.data.build import summary

        print(summary(args.root))
    else:
        from training.data.conditions import cutoff_table

        print(cutoff_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
