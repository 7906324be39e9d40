"""Batch throughput benchmark of `gapfill restore IN... -o OUTDIR` (issue #13).

    python -m benchmarks.batch [--json PATH] [--files 8] [--seconds 45] [--rounds 2] [--hour-seconds 3600]
    python -m benchmarks.batch --quick          # the CI smoke run: seconds of audio, same JSON structure

What it measures, with the shipped model and default settings (one onnxruntime thread per worker):
- audio hours restored per wall-clock hour by the whole command (process start, model load in each
  worker, planning and writing included) for `--jobs 1`, `--jobs 2` and a local Dask cluster of two
  worker processes with one thread each (`--scheduler`; the cluster is started before the clock starts,
  as an existing cluster would be, and its workers load the model on their first file and keep it for
  the later rounds, while local workers are started by each run), over the same
  folder of `--files` MP3s of `--seconds` each (22.05 kHz mono, 44.1 kHz stereo, 48 kHz mono and stereo,
  in turn); the three run in turn, `--rounds` times, so that a machine whose load drifts loads them
  alike; the median of each, its ratio to the median of `--jobs 1`, the load average around each run,
  and whether the three give identical outputs; the CPU time of the worker threads (hours of audio per
  worker CPU hour, and worker cores busy = worker CPU time / wall time), which tells a machine's
  contention apart from the batch's own scaling (Linux's autogroup scheduling gives each session one
  share of a busy machine however many processes it runs);
- the peak resident memory (ru_maxrss) of the worker process restoring one MP3 of `--hour-seconds`
  (22.05 kHz mono, as LAME writes 32 kbit/s), against the worker's peak on the short files: a file is
  streamed block by block, so the peak does not grow with its length. The long input is written block by
  block too.

The audio is `benchmarks.signals.program_material`, one 10 s piece per rate and channel count, repeated
(the engine's cost does not depend on what the music is). Timings are wall-clock on a machine that may be
shared: `environment.load_average_1m` says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks.common import environment, format_table, markdown_table, run_main, write_json
from benchmarks.signals import program_material

FORMATS = ((22_050, 1), (44_100, 2), (48_000, 1), (48_000, 2))  # (rate in Hz, channels), in turn
PIECE_S = 10.0
WRITE_BLOCK_S = 10.0
REPO = Path(__file__).resolve().parent.parent


def _pieces(seconds: float) -> dict[tuple[int, int], np.ndarray]:
    """(rate, channels) -> (frames, channels) float32 music of `seconds`, one seed each."""
    return {(rate, channels): program_material(seconds, rate, channels, seed=i).T.copy()
            for i, (rate, channels) in enumerate(FORMATS)}


def write_mp3(path: Path, piece: np.ndarray, rate: int, seconds: float) -> None:
    """An MP3 of `seconds` at `rate` Hz: `piece` (frames, channels) repeated, written block by block."""
    total = int(round(seconds * rate))
    with sf.SoundFile(path, "w", rate, piece.shape[1], format="MP3") as sink:
        done = 0
        while done < total:
            n = min(total - done, len(piece), int(WRITE_BLOCK_S * rate))
            sink.write(piece[:n])
            done += n


def make_folder(folder: Path, files: int, seconds: float, pieces: dict[tuple[int, int], np.ndarray]) -> float:
    """`files` MP3s of `seconds` in `folder`, the FORMATS in turn; returns the audio length in s."""
    folder.mkdir(parents=True)
    for index in range(files):
        rate, channels = FORMATS[index % len(FORMATS)]
        write_mp3(folder / f"track{index:02d}-{rate}-{channels}ch.mp3", pieces[(rate, channels)], rate, seconds)
    return files * seconds


def run_batch_command(inputs: Path, out: Path, report: Path, *options: str) -> dict[str, Any]:
    """Time `gapfill restore INPUTS -o OUT --recursive OPTIONS --report REPORT` into a fresh OUT; its
    report, wall time and the 1-minute load average before and after."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "realtime", "restore", str(inputs), "-o", str(out), "--recursive",
               "--report", str(report), *options]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall_s = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    facts = json.loads(report.read_text())
    audio_s = facts["audio_hours_restored"] * 3600.0
    return {"command_wall_s": wall_s, "audio_s": audio_s, "files": facts["files"],
            "hours_per_hour": audio_s / wall_s, "run_hours_per_hour": facts["hours_per_hour"],
            "worker_peak_rss_mib": facts["worker_peak_rss_mib"], "worker_cpu_s": facts["worker_cpu_s"],
            "hours_per_cpu_hour": audio_s / facts["worker_cpu_s"], "cores_busy": facts["worker_cpu_s"] / wall_s,
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def same_outputs(folders: list[Path]) -> bool:
    """Whether every folder holds the same files with the same samples."""
    names = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*.flac"))
    for name in names:
        first = sf.read(folders[0] / name, dtype="float32")[0]
        for other in folders[1:]:
            if not (other / name).is_file() or not np.array_equal(sf.read(other / name, dtype="float32")[0], first):
                return False
    return all(sorted(p.relative_to(f) for p in f.rglob("*.flac")) == names for f in folders[1:])


def throughput(work: Path, inputs: Path, rounds: int) -> tuple[dict[str, dict[str, Any]], bool]:
    """The folder through --jobs 1, --jobs 2 and a local Dask cluster of 2 workers, in turn, `rounds`
    times; per backend the median run (by hours per hour) and every run's hours per hour and load."""
    from distributed import LocalCluster

    backends = {"jobs 1": ("--jobs", "1"), "jobs 2": ("--jobs", "2"), "dask local, 2 workers": ()}
    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for _ in range(rounds):
            for index, (name, options) in enumerate(backends.items()):
                options = options or ("--scheduler", cluster.scheduler_address)
                trials[name].append(run_batch_command(inputs, work / f"out{index}", work / f"report{index}.json",
                                                      *options))
    runs = {}
    for name, results in trials.items():
        median = sorted(results, key=lambda r: r["hours_per_hour"])[len(results) // 2]
        runs[name] = dict(median, rounds=[{"hours_per_hour": r["hours_per_hour"],
                                           "load_average_1m": r["load_average_1m"]} for r in results])
    base = runs["jobs 1"]["hours_per_hour"]
    for run in runs.values():
        run["vs_jobs_1"] = run["hours_per_hour"] / base
    return runs, same_outputs([work / f"out{index}" for index in range(len(backends))])


def long_file_memory(work: Path, seconds: float, pieces: dict[tuple[int, int], np.ndarray]) -> dict[str, Any]:
    """Peak RSS of the one worker restoring one MP3 of `seconds` (22.05 kHz mono)."""
    folder = work / "long"
    folder.mkdir()
    started = time.monotonic()
    write_mp3(folder / "long.mp3", pieces[(22_050, 1)], 22_050, seconds)
    write_s = time.monotonic() - started
    run = run_batch_command(folder, work / "out-long", work / "long.json", "--jobs", "1")
    return {"input_seconds": seconds, "input_mib": (folder / "long.mp3").stat().st_size / 2**20,
            "write_input_s": write_s, **run}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--files", type=int, default=8, help="MP3s in the throughput folder (8)")
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each of them, in s (45)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each backend, in turn (2)")
    parser.add_argument("--hour-seconds", type=float, default=3600.0,
                        help="length of the long input for the memory run, in s (3600)")
    parser.add_argument("--quick", action="store_true",
                        help="2 files of 2 s, one round, a 6 s long input (CI smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.seconds, args.rounds, args.hour_seconds = 2, 2.0, 1, 6.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pieces = _pieces(min(PIECE_S, args.seconds, args.hour_seconds))
    with tempfile.TemporaryDirectory(prefix="gapfill-batch-bench-") as temp:
        work = Path(temp)
        audio_s = make_folder(work / "in", args.files, args.seconds, pieces)
        runs, identical = throughput(work, work / "in", args.rounds)
        long_run = long_file_memory(work, args.hour_seconds, pieces)
    result = {
        "benchmark": "batch", "quick": args.quick, "environment": environment(),
        "workload": {"files": args.files, "seconds_each": args.seconds, "audio_s": audio_s, "rounds": args.rounds,
                     "formats": [f"{rate} Hz, {channels} ch" for rate, channels in FORMATS]},
        "throughput": runs, "identical_outputs": identical, "long_input": long_run,
    }
    headers = ["backend", "audio (h)", "wall (s)", "h of audio per h", "vs jobs 1", "each round (h/h)",
               "load avg around runs", "h of audio per worker CPU h", "worker cores busy", "worker peak RSS (MiB)"]
    rows = [[name, f"{r['audio_s'] / 3600:.3f}", f"{r['command_wall_s']:.1f}", f"{r['hours_per_hour']:.1f}",
             f"{r['vs_jobs_1']:.2f}", " / ".join(f"{x['hours_per_hour']:.1f}" for x in r["rounds"]),
             " / ".join(f"{x['load_average_1m'][0]:.1f}-{x['load_average_1m'][1]:.1f}" for x in r["rounds"]),
             f"{r['hours_per_cpu_hour']:.1f}", f"{r['cores_busy']:.2f}", f"{r['worker_peak_rss_mib']:.0f}"]
            for name, r in runs.items()]
    print(format_table(headers, rows, title=f"Batch throughput ({args.files} MP3s of {args.seconds:g} s, "
                                              f"median of {args.rounds}; identical outputs: {identical})"))
    print()
    memory_headers = ["input", "worker peak RSS (MiB)", "h of audio per h"]
    memory_rows = [[f"one MP3 of {long_run['input_seconds'] / 3600:.2f} h (22.05 kHz mono)",
                    f"{long_run['worker_peak_rss_mib']:.0f}", f"{long_run['hours_per_hour']:.1f}"],
                   [f"{args.files} MP3s of {args.seconds:g} s (jobs 1, median run)",
                    f"{runs['jobs 1']['worker_peak_rss_mib']:.0f}", f"{runs['jobs 1']['hours_per_hour']:.1f}"]]
    print(format_table(memory_headers, memory_rows, title="Worker memory"))
    print()
    print(markdown_table(headers, rows))
    print()
    print(markdown_table(memory_headers, memory_rows))
    write_json(result, args.json)
    return 0 if identical else 1


if __name__ == "__main__":
    run_main(main)
