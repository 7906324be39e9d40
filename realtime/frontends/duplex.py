"""The real-time core of `gapfill live`: the audio callback's half, the engine worker's half, the dry path.

    callback (audio thread)                  worker (engine thread)
    input block m ──> input ring[m] ────────> Restorer.process ──> output ring[m], seq[m] = m
                 └──> dry delay line (engine latency + 1 block)
    output block m <── output ring[m-1] if seq[m-1] == m-1 (restored, crossfaded in from dry)
                   <── dry delay line otherwise (an overload, counted)

Both paths delay the input by the same `delay_samples` = the engine's `latency_samples` plus one block
(the block the worker has for its work), so switching between them never shifts time: a late block
is replaced by the dry signal of the same instant, and when the engine's output is back in time the
output crossfades from dry to restored. `bypass` (A/B listening: `toggle_bypass` from any one thread)
crossfades to the dry path and stays there until it is cleared. Every crossfade is linear over
FADE_S (5 ms; across blocks when a block is shorter), so a switch is click-free and, at blocks of
FADE_S or longer, complete within the block that starts it.

Real-time rules. `exchange(indata, outdata)` (the callback's whole job) runs one compiled kernel that
copies samples between buffers made in `__init__`, then wakes the worker by releasing a lock (a
release never blocks). It allocates no buffer, takes no lock, does no I/O. Each ring operation (the
callback's kernel, the worker's take and publish kernels) is a Numba function with a fixed signature
that keeps the GIL, so it is atomic with respect to the other thread and short (a block copy);
`Restorer.process` (called with `out=`, allocation-free) releases the GIL in all its Numba kernels, so
the callback never waits for the engine's work. Counters only grow and each has one writer (the
callback: blocks, overloads, wet blocks, non-finite samples; the worker: engine blocks, resyncs), so
readers never need a lock.

If the engine raises, the worker stops, keeps the exception in `error` and calls `on_error` (the live
front end then stops the stream and exits with a one-line error); the callback meanwhile outputs the
dry signal, as for any late block.

If the worker falls a whole ring behind (`ring_blocks` blocks, ~170 ms at 48 kHz / 256), it resets
the engine, jumps to the newest block and publishes nothing until the engine has seen enough new input
to be valid again (`resyncs` counts this); the output stays dry meanwhile.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Callable

import numpy as np
from numba import njit

from realtime.engine.restorer import Restorer

RING_BLOCKS = 32  # blocks held by each ring: how far the worker may fall behind before a resync
FADE_S = 0.005  # length of a crossfade between the dry and the restored path, seconds
WORKER_PRIORITY = 1  # SCHED_FIFO priority of the engine thread: above normal threads, below audio threads

# Indices into DuplexCore.counters (int64). Callback-written:
BLOCKS = 0  # blocks received from the device (= blocks pushed to the engine)
OVERLOADS = 1  # blocks output dry because the engine's block was not ready in time
WET_BLOCKS = 2  # blocks output (fully or fading in) from the engine
DRY_POSITION = 3  # index into the dry delay line
NONFINITE = 4  # non-finite input samples replaced by 0
# Worker-written:
ENGINE_BLOCKS = 5  # blocks the engine has processed
RESYNCS = 6  # times the worker fell a whole ring behind and restarted the engine
N_COUNTERS = 7

# Indices into DuplexCore.levels (float64). Callback-written, reset by the status reader:
GAIN = 0  # share of the restored signal at the end of the last block (0 dry .. 1 restored)
INPUT_PEAK = 1  # largest |input sample| since the last `take_peaks`
OUTPUT_PEAK = 2  # largest |output sample| since the last `take_peaks`


class ComputeStats:
    """Engine time per block: a fixed histogram (10 us bins up to 250 ms), so recording never allocates.

    `record(seconds)` is called by the worker only; `percentile_ms`, `max_ms`, `take_recent_max_ms` may be
    read from other threads (the values are at most one block stale).
    """

    BIN_S = 10e-6
    BINS = 25_000

    def __init__(self) -> None:
        self.histogram = np.zeros(self.BINS + 1, np.int64)  # last bin: everything longer
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.recent_max_s = 0.0

    def record(self, seconds: float) -> None:
        self.histogram[min(int(seconds / self.BIN_S), self.BINS)] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds
        if seconds > self.recent_max_s:
            self.recent_max_s = seconds

    def percentile_ms(self, share: float) -> float:
        """Upper edge of the bin holding the `share` quantile (0..1), in ms; 0 before any block."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(share * self.count))
        index = int(np.searchsorted(np.cumsum(self.histogram), rank))
        return min((index + 1) * self.BIN_S, self.max_s) * 1e3

    @property
    def max_ms(self) -> float:
        return self.max_s * 1e3

    @property
    def mean_ms(self) -> float:
        return self.total_s / self.count * 1e3 if self.count else 0.0

    def take_recent_max_ms(self) -> float:
        """Longest block since the previous call, in ms (for the status line)."""
        value, self.recent_max_s = self.recent_max_s, 0.0
        return value * 1e3


class DuplexCore:
    """Restorer driven from fixed-size device blocks (frames, channels) float32, engine on a worker thread.

    restorer: prepared here for (`sample_rate`, `channels`, `block_frames`); anything with the Restorer
    interface (tests pass a deliberately slow one). `clock` times the engine (seconds).
    """

    def __init__(
        self,
        restorer: Restorer,
        sample_rate: int,
        channels: int,
        block_frames: int,
        ring_blocks: int = RING_BLOCKS,
        worker_priority: int | None = WORKER_PRIORITY,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        restorer.prepare(sample_rate, channels, block_frames)
        self.restorer = restorer
        self.error: BaseException | None = None  # what stopped the worker, if anything did
        self.on_error: Callable[[], None] | None = None  # called on the worker thread when `error` is set
        self.sample_rate, self.channels, self.block_frames = sample_rate, channels, block_frames
        self.engine_latency_samples = int(restorer.latency_samples)
        self.buffer_samples = block_frames  # the worker's block of slack
        self.delay_samples = self.engine_latency_samples + self.buffer_samples
        # Blocks the engine needs after a reset before its output is the restored signal again.
        self.warmup_blocks = math.ceil(2 * self.engine_latency_samples / block_frames) + 1
        self.bypass = False
        self.switches = 0  # A/B switches (`toggle_bypass`)
        self.fade_samples = max(1, round(FADE_S * sample_rate))
        self._fade_step = 1.0 / self.fade_samples  # the restored share's change per sample of a crossfade
        self.counters = np.zeros(N_COUNTERS, np.int64)
        self.levels = np.zeros(3, np.float64)
        self.compute = ComputeStats()
        self._in_ring = np.zeros((ring_blocks, channels, block_frames), np.float32)
        self._out_ring = np.zeros((ring_blocks, channels, block_frames), np.float32)
        self._out_seq = np.full(ring_blocks, -1, np.int64)  # block index held by each output slot
        self._dry_line = np.zeros((channels, self.delay_samples), np.float32)
        # Per channel: last output sample, last dry sample, this block's last dry sample (scratch).
        self._edges = np.zeros((3, channels), np.float32)
        self._work = np.zeros((channels, block_frames), np.float32)
        self._restored = np.zeros((channels, block_frames), np.float32)
        self._wake = threading.Lock()
        self._wake.acquire()  # held = nothing to do; the callback releases it for each new block
        self._clock = clock
        self._worker_priority = worker_priority
        self.worker_scheduling = "not started"  # how the worker thread is scheduled, once it runs
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._next_block = 0  # the next block the engine restores
        self._publish_from = 0  # blocks before this one are not published (engine warming up)
        self._warm_up()

    # -- the callback's half -----------------------------------------------------------------------
    def exchange(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """Audio callback body: indata (block_frames, channels) in, outdata (block_frames, channels) out."""
        _exchange_block(indata, outdata, self._in_ring, self._out_ring, self._out_seq, self._dry_line,
                        self._edges, self.counters, self.levels, self.bypass, self._fade_step)
        if self._wake.locked():
            self._wake.release()

    def toggle_bypass(self) -> None:
        """A/B: switch between the restored and the dry path (crossfaded by the next callbacks), counted in
        `switches`. Call it from one thread only (the live front end's main thread)."""
        self.bypass = not self.bypass
        self.switches += 1

    # -- the worker's half -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the engine worker (before the device stream starts)."""
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="gapfill-engine", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker; call after the device stream has stopped (no more `exchange` calls)."""
        self._stopping = True
        if self._wake.locked():
            self._wake.release()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _run(self) -> None:
        self.worker_scheduling = schedule_realtime(self._worker_priority)
        try:
            while not self._stopping:
                self._wake.acquire(timeout=0.1)
                self.work()
        except BaseException as exc:  # noqa: BLE001 - reported by the front end, never lost with the thread
            self.error = exc
            self._stopping = True
            if self.on_error is not None:
                self.on_error()

    def work(self) -> int:
        """Restore every block pushed and not yet restored, oldest first; returns how many.

        The worker thread's loop body (tests call it directly to step the engine deterministically).
        """
        counters, restorer, record = self.counters, self.restorer, self.compute.record
        done = 0
        while self._next_block < counters[BLOCKS] and not self._stopping:
            index = self._next_block
            if not _take_block(self._in_ring, counters, index, self._work):
                self._next_block = int(counters[BLOCKS]) - 1  # a whole ring behind: restart at the newest
                restorer.reset()
                self._publish_from = self._next_block + self.warmup_blocks
                counters[RESYNCS] += 1
                continue
            start = self._clock()
            restorer.process(self._work, out=self._restored)
            record(self._clock() - start)
            if index >= self._publish_from:
                _publish_block(self._restored, self._out_ring, self._out_seq, index)
            self._next_block = index + 1
            counters[ENGINE_BLOCKS] = self._next_block
            done += 1
        return done

    # -- readers (any thread) ----------------------------------------------------------------------
    @property
    def overloads(self) -> int:
        return int(self.counters[OVERLOADS])

    def take_peaks(self) -> tuple[float, float]:
        """(input peak, output peak) as linear amplitude since the previous call."""
        peaks = float(self.levels[INPUT_PEAK]), float(self.levels[OUTPUT_PEAK])
        self.levels[INPUT_PEAK] = self.levels[OUTPUT_PEAK] = 0.0
        return peaks

    def _warm_up(self) -> None:
        """Compile the kernels and run the engine once before any device callback, then start clean."""
        frames = np.zeros((self.block_frames, self.channels), np.float32)
        for _ in range(self.warmup_blocks + 2):
            self.restorer.process(self._work, out=self._restored)
        for bypass in (False, True):
            self.bypass = bypass
            self.exchange(frames, frames.copy())  # a late block
            _take_block(self._in_ring, self.counters, 0, self._work)
            self.restorer.process(self._work, out=self._restored)
            _publish_block(self._restored, self._out_ring, self._out_seq, int(self.counters[BLOCKS]) - 1)
            self.exchange(frames, frames.copy())  # a crossfade
        self.bypass = False
        self.restorer.reset()
        for array in (self._in_ring, self._out_ring, self._dry_line, self._edges, self._work, self._restored,
                      self.counters, self.levels):
            array[...] = 0
        self._out_seq[:] = -1
        self.compute = ComputeStats()
        if not self._wake.locked():
            self._wake.acquire()


def schedule_realtime(priority: int | None) -> str:
    """Ask for SCHED_FIFO `priority` for the calling thread; returns how it is scheduled ('normal' if refused).

    Every thread that takes the GIL while the stream runs should be real-time: a normal thread preempted
    by a busy neighbour while it holds the GIL would keep the audio callback waiting.
    """
    if priority is None or not hasattr(os, "sched_setscheduler"):
        return "normal"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
    except (OSError, ValueError):
        return "normal"
    return f"SCHED_FIFO {priority}"


def schedule_normal() -> None:
    """Return the calling thread to normal (SCHED_OTHER) scheduling."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


@njit("void(float32[:, :], float32[:, :], float32[:, :, ::1], float32[:, :, ::1], int64[::1], float32[:, ::1], "
      "float32[:, ::1], int64[::1], float64[::1], boolean, float64)", cache=True)
def _exchange_block(indata, outdata, in_ring, out_ring, out_seq, dry_line, edges, counters, levels, bypass,
                    fade_step):
    """The callback kernel (keeps the GIL): push input, output dry or restored, count, meter. The share
    of the restored signal moves toward its target (0 in bypass, else 1) by `fade_step` per sample."""
    frames, channels = indata.shape
    ring_blocks = in_ring.shape[0]
    block = counters[BLOCKS]
    slot = block % ring_blocks
    delay = dry_line.shape[1]
    position = counters[DRY_POSITION]
    peak_in = levels[INPUT_PEAK]
    for i in range(frames):  # input -> ring and dry line; dry line (delay_samples ago) -> output
        for c in range(channels):
            x = indata[i, c]
            if not np.isfinite(x):
                x = np.float32(0.0)
                counters[NONFINITE] += 1
            if abs(x) > peak_in:
                peak_in = abs(x)
            in_ring[slot, c, i] = x
            outdata[i, c] = dry_line[c, position]
            dry_line[c, position] = x
        position += 1
        if position == delay:
            position = 0
    counters[DRY_POSITION] = position
    levels[INPUT_PEAK] = peak_in
    for c in range(channels):
        edges[2, c] = outdata[frames - 1, c]  # the dry signal's last sample

    wanted = block - 1  # the engine had one block period for the previous block
    gain_from = levels[GAIN]
    if wanted >= 0 and out_seq[wanted % ring_blocks] == wanted:
        restored = out_ring[wanted % ring_blocks]
        gain_to = 0.0 if bypass else 1.0
        if gain_from == 1.0 and gain_to == 1.0:
            for i in range(frames):
                for c in range(channels):
                    outdata[i, c] = restored[c, i]
        elif gain_from != gain_to:  # linear crossfade: both paths are time-aligned
            gain = gain_from
            for i in range(frames):
                gain = min(gain + fade_step, gain_to) if gain_to > gain else max(gain - fade_step, gain_to)
                if abs(gain - gain_to) < 0.5 * fade_step:  # the last step lands exactly, whatever the rounding
                    gain = gain_to
                share = np.float32(gain)
                for c in range(channels):
                    dry = outdata[i, c]
                    outdata[i, c] = dry + share * (restored[c, i] - dry)
            gain_to = gain
        if not bypass:
            counters[WET_BLOCKS] += 1
        levels[GAIN] = gain_to
    else:  # late: the dry signal, plus the step from the last output sample fading out over the block
        for c in range(channels):
            offset = edges[0, c] - edges[1, c]  # 0 unless the last block ended on the restored signal
            if offset != 0.0:
                for i in range(frames):
                    outdata[i, c] += offset * np.float32((frames - 1 - i) / frames)
        if wanted >= 0 and not bypass:
            counters[OVERLOADS] += 1
        levels[GAIN] = 0.0

    peak_out = levels[OUTPUT_PEAK]
    for i in range(frames):
        for c in range(channels):
            if abs(outdata[i, c]) > peak_out:
                peak_out = abs(outdata[i, c])
    levels[OUTPUT_PEAK] = peak_out
    for c in range(channels):
        edges[0, c] = outdata[frames - 1, c]
        edges[1, c] = edges[2, c]
    counters[BLOCKS] = block + 1


@njit("boolean(float32[:, :, ::1], int64[::1], int64, float32[:, ::1])", cache=True)
def _take_block(in_ring, counters, index, work) -> bool:
    """work (C, n) <- input block `index`; False if the callback has already overwritten it."""
    ring_blocks = in_ring.shape[0]
    if counters[BLOCKS] - index > ring_blocks:
        return False
    work[:, :] = in_ring[index % ring_blocks]
    return True


@njit("void(float32[:, :], float32[:, :, ::1], int64[::1], int64)", cache=True)
def _publish_block(restored, out_ring, out_seq, index) -> None:
    """Output slot of block `index` <- restored (C, n), then mark it ready (atomic: keeps the GIL)."""
    slot = index % out_ring.shape[0]
    out_ring[slot] = restored
    out_seq[slot] = index
