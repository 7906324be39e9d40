"""Child process of `benchmarks.latency`: times a cold or warm start of the engine and prints JSON.

    python -m benchmarks.startup_probe CONFIG RATE CHANNELS SPAWNED_EPOCH_S

Imports nothing of gapfill before timing its import. Marks: interpreter start-up (from SPAWNED to this
module running), import of the restorer, model load (`from_config`), `prepare`, the first 4096-sample
block (every Numba kernel has fixed signatures and is loaded from the cache, or compiled when it is cold,
when its module is imported; `prepare` runs every stage once), the median of the blocks after it (the
steady state), the time from spawn to the first output, and the peak resident memory after 10 s of audio.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB: VmHWM (getrusage's ru_maxrss would also count the
    parent's memory at fork time, which Linux carries across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(config_file: str, rate: int, channels: int, spawned: float) -> None:
    marks = {"interpreter_s": time.time() - spawned}
    start = time.perf_counter()
    from realtime.engine.restorer import Restorer

    marks["import_s"] = time.perf_counter() - start
    start = time.perf_counter()
    restorer = Restorer.from_config(config_file)
    marks["model_load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    restorer.prepare(rate, channels, 4096)
    marks["prepare_s"] = time.perf_counter() - start
    from benchmarks.signals import program_material

    audio = program_material(10.0, rate, channels, seed=3)
    out = np.zeros((channels, 4096), np.float32)
    blocks = [np.ascontiguousarray(audio[:, begin : begin + 4096]) for begin in range(0, audio.shape[1] - 4095, 4096)]
    start = time.perf_counter()
    restorer.process(blocks[0], out=out)
    marks["first_block_s"] = time.perf_counter() - start
    marks["time_to_first_output_s"] = time.time() - spawned
    steady = []
    for block in blocks[1:]:
        start = time.perf_counter()
        restorer.process(block, out=out)
        steady.append(time.perf_counter() - start)
    marks["steady_block_s"] = float(np.median(steady))
    facts = {key: round(value, 4) for key, value in marks.items()}
    facts["peak_rss_mib"] = round(peak_rss_kib() / 1024.0, 1)
    facts["rate_hz"], facts["channels"] = rate, channels
    print(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
