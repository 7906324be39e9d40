"""`python -m training.data build [--root data/v2] [--workers N] [--hours H]`: build (or resume) data v2.

    nohup nice -n 15 python -m training.data build > data/v2/build.log 2>&1 &   # the whole build
    python -m training.data summary                                            # its tables again
    python -m training.data cutoffs                                            # re-measure LAME's cutoffs
    python -m training.data digest                                             # jobs made unlike the reference
    python -m training.data digest --pairs data/v2pairs/r0 --split val         # pairs made unlike the reference

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
    d = sub.add_parser("digest", help="digest every job's audio (or a pair cache's pairs); count those that differ "
                                      "from a reference")
    d.add_argument("--root", default="data/v2")
    d.add_argument("--pairs", default=None, help="a pair cache to digest instead (training/v2/paircache.py)")
    d.add_argument("--split", default=None, help="with --pairs: only the pairs of this split (train, val)")
    d.add_argument("--out", default=None, help="where to write the digests (default <root or pairs>/digest.json)")
    d.add_argument("--against", default=None, help="reference digests (default training/data/digest_v2.json, with "
                                                   "--pairs digest_v2pairs_r0_val.json)")
    d.add_argument("--note", default="", help="where and how this build was made (kept in the written file)")
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
    elif args.step == "digest":
        from training.data import digest

        if args.pairs:
            ours = digest.pair_digests(args.pairs, args.split)
            digest.write_digests(ours, args.out or os.path.join(args.pairs, "digest.json"), args.note)
            reference = digest.load_digests(args.against or digest.PAIR_DIGEST_FILE)
            print(digest.table_text(digest.compare_pairs(ours, reference), "encoder"))
        else:
            ours = digest.build_digests(args.root)
            digest.write_digests(ours, args.out or os.path.join(args.root, "digest.json"), args.note)
            print(digest.table_text(digest.compare(ours, digest.load_digests(args.against or digest.DIGEST_FILE))))
    else:
        from training.data.conditions import cutoff_table

        print(cutoff_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
