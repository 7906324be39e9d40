"""Start-up benchmark: whole-process wall time of `gapfill` commands against the time Python needs to
import numpy, soundfile and onnxruntime, measured in the same run (issue #24).

    python -m benchmarks.startup [--json PATH] [--repeats 9]
    python -m benchmarks.startup --quick          # the CI smoke run: one repeat, same JSON structure

Each case is a fresh `python -m realtime ...` process (the checkout's `realtime`, PYTHONPATH set to it),
timed from spawn to exit; the cases run in turn, `--repeats` rounds, after one round that is not counted
(it fills Numba's cache and the page cache, and builds the engine's compiled kernels, which `restore` and
`info` load instead of importing Numba, when they are not there: realtime.engine.compiled; the JSON's
`kernels` says where they are), so that a machine whose load drifts loads them alike. Per
case: the median and minimum wall time, the median's ratio to the baseline's median (the issue's
targets: `gapfill --help` at most 0.6x, `restore` of a half-second clip at most 2.5x), the exit status,
and the child's peak resident memory (ru_maxrss from wait4). Linux carries a parent's resident size into
a child's ru_maxrss at exec, so this process imports nothing heavy while it measures (`parent_rss_mib` in
the JSON is the floor it sets); the clips are written by a child process.

Timings are wall-clock on a machine that may be shared: `environment.load_average_1m` says how busy it was.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE = "python: import numpy, soundfile, onnxruntime"
TARGETS = {"gapfill --help": 0.6, "gapfill restore 0.5 s WAV (44.1 kHz stereo)": 2.5,
           "gapfill restore 0.5 s MP3 (22.05 kHz mono -> 48 kHz)": 2.5}
"""Case -> the largest ratio to the baseline the issue asks for."""
_CLIPS = """
import sys
import soundfile as sf
from benchmarks.signals import program_material
folder = sys.argv[1]
sf.write(f"{folder}/clip.wav", program_material(0.5, 44_100, 2, seed=1).T, 44_100, subtype="PCM_16")
sf.write(f"{folder}/clip.mp3", program_material(0.5, 22_050, 1, seed=2).T, 22_050, format="MP3")
"""


def cases(folder: Path) -> dict[str, list[str]]:
    """Case name -> the command line it runs (paths in `folder`)."""
    gapfill = [sys.executable, "-m", "realtime"]
    return {
        "python: empty": [sys.executable, "-c", "pass"],
        BASELINE: [sys.executable, "-c", "import numpy, soundfile, onnxruntime"],
        "gapfill --help": [*gapfill, "--help"],
        "gapfill restore --help": [*gapfill, "restore", "--help"],
        "gapfill stream (argument error)": [*gapfill, "stream", "--rate", "fast", "--channels", "1"],
        "gapfill devices": [*gapfill, "devices"],
        "gapfill info": [*gapfill, "info"],
        "gapfill restore 0.5 s WAV (44.1 kHz stereo)":
            [*gapfill, "restore", str(folder / "clip.wav"), str(folder / "out-wav.wav"), "--force"],
        "gapfill restore 0.5 s MP3 (22.05 kHz mono -> 48 kHz)":
            [*gapfill, "restore", str(folder / "clip.mp3"), str(folder / "out-mp3.wav"), "--force"],
    }


def run_once(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, float]:
    """(wall s, exit status, peak RSS MiB) of one run of `command`, its output discarded."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, child.returncode, usage.ru_maxrss / 1024.0


def measure(commands: dict[str, list[str]], repeats: int, warm_up: bool, env: dict[str, str],
            cwd: Path) -> dict[str, dict]:
    """Every command `repeats` times, in turn, after an uncounted round when `warm_up`."""
    if warm_up:
        for command in commands.values():
            run_once(command, env, cwd)
    runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            runs[name].append(run_once(command, env, cwd))
    baseline = statistics.median(wall for wall, _, _ in runs[BASELINE])
    results = {}
    for name, samples in runs.items():
        walls = [wall for wall, _, _ in samples]
        median = statistics.median(walls)
        results[name] = {
            "argv": commands[name][1:], "median_s": round(median, 4), "min_s": round(min(walls), 4),
            "ratio_to_baseline": round(median / baseline, 3),
            "target_ratio": TARGETS.get(name), "within_target": None if name not in TARGETS
            else median / baseline <= TARGETS[name],
            "exit_status": sorted({status for _, status, _ in samples}),
            "peak_rss_mib": round(statistics.median(rss for _, _, rss in samples), 1),
        }
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--repeats", type=int, default=9, help="counted rounds of every case (9)")
    parser.add_argument("--quick", action="store_true",
                        help="one round and no warm-up round: the CI smoke run (timings meaningless)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
    env.pop("GAPFILL_DEBUG", None)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gapfill-startup-bench-") as temp:
        folder = Path(temp)
        subprocess.run([sys.executable, "-c", _CLIPS, temp], env=env, cwd=REPO, check=True)
        results = measure(cases(folder), args.repeats, not args.quick, env, folder)
    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    from benchmarks.common import environment, format_table, write_json  # numpy and the engine: after measuring
    from realtime.engine.compiled import status

    result = {
        "benchmark": "startup", "quick": args.quick, "repeats": args.repeats, "baseline": BASELINE,
        "parent_rss_mib": round(parent_rss, 1), "load_average_1m_before": round(load_before, 2),
        "environment": environment(), "kernels": status(), "cases": results,
    }
    rows = [[name, f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['ratio_to_baseline']:.2f}x",
             "" if r["target_ratio"] is None else f"<= {r['target_ratio']}x {'yes' if r['within_target'] else 'NO'}",
             f"{r['peak_rss_mib']:.0f}", ",".join(str(s) for s in r["exit_status"])]
            for name, r in results.items()]
    print(format_table(["command (whole process)", "median (s)", "min (s)", "vs baseline", "target",
                        "peak RSS (MiB)", "exit"], rows,
                       title=f"Start-up, median of {args.repeats} (baseline: {BASELINE}; the parent's own "
                             f"{parent_rss:.0f} MiB is the floor of every peak RSS; kernels: {result['kernels']})"))
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
