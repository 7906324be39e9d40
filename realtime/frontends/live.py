"""Sound-card front end: a duplex python-sounddevice stream restored in real time (`run_live`).

`run_live` restores the input device into the output device until Ctrl-C or `duration_s`, then stops
cleanly and returns a `LiveResult`; the command around it (`gapfill live`: arguments, summary,
`--stats-json`) is realtime/cli/live.py. On a terminal a status line, written four times a second by the
main thread (never by the audio thread), shows the input and output peak level, the engine's compute
load, overloads, xruns, the total latency, what the codec gate detected (`Restorer.codec_report()`:
the cutoff and the share of frames restored), the strength and which signal is heard.

Listening while it runs (keys on a terminal in the foreground, read by the main thread in cbreak mode and
restored at the end; SIGUSR1 for scripts):
- `a` (or `b`, space) or SIGUSR1: A/B, switch between the restored output and the decoded input, delayed
  by the same latency (the dry path, `DuplexCore.toggle_bypass`), crossfaded over a few ms; counted.
- `+` / `-`: strength up or down by STRENGTH_STEP (0..1, `Restorer.set_strength`): the main thread writes
  the value, the engine worker reads it once per hop; the audio callback never sees it.

Failures: the audio callback never raises and always fills its output (anything unexpected in it
outputs silence for that block and is counted); if the engine raises on its worker thread, the stream
is stopped and `run_live` raises RuntimeError naming the error (`gapfill live`: one line, status 1).

Engine placement (measured, see "Why a worker thread" below): the Restorer runs on a worker thread fed
through lock-free rings (`realtime.frontends.duplex`); the audio callback only moves samples. This costs one block
of latency, and it is what makes overloads survivable: a block whose restored output is not ready when
the device asks for it is replaced by the dry input delayed by exactly the same total latency (so timing
never jumps) and the output crossfades back when the engine catches up. Each such block is an overload.
PortAudio's input-overflow and output-underflow flags (xruns: the callback itself was late, or the
device lost samples) are counted separately.

Latency, in samples at the stream rate, reported in parts that add up to the total:
- engine: the Restorer's `latency_samples` (STFT framing, look-ahead, resampling);
- front end: one block, the worker's slack;
- device input and device output: what PortAudio reports (`Stream.latency`), which includes PortAudio's
  own buffering (on JACK, one block on output when the block size is fixed); a value PortAudio cannot
  know (e.g. JACK ports of clients that report no latency) is shown as unknown and left out of the total.

Why a worker thread (measured for issue #5 on the development machine: 2 shared vCPUs, load average
4-7 from other work, JACK dummy backend at 48 kHz / 256 frames = 5.33 ms per block):
- Engine time per block (standalone loop): pass-through + decoded phase p50 0.03 ms, p99 0.07 ms;
  U-Net stand-in (ONNX, 1 thread) + completion phase p50 0.23 ms, p99 0.42 ms; the maximum is 5 ms
  in both, which is preemption, not work. Inside `live` (woken once per block) the default config
  measures p50 0.07 ms, p99 0.13 ms, max 0.2-8.5 ms.
- Engine in the callback: the callback is as long as the engine (heavy config p50 0.5-0.7 ms, max
  2.7 ms), and a block that runs past the deadline is an xrun nothing can hide; a late block cannot
  be replaced by the dry signal because lateness is only known afterwards. In 4 x 60 s with the heavy
  config it had no xruns either, so at today's engine cost both designs hold the deadline.
- Engine on a worker (this module): the callback takes 0.02-0.05 ms whatever the engine does, a block
  finishing within one period costs nothing, and a later one becomes a latency-aligned dry block
  instead of a dropout. The price is one block of latency (5.33 ms here). The worker must run at
  real-time priority: as a normal thread, with a busy loop on the other core, it missed 723 of 5620
  deadlines in 30 s (it was not woken in time); at SCHED_FIFO 1 it missed 0-3, each together with a
  JACK xrun (the JACK server's own timer woke late on this loaded machine).
So the engine runs on a worker thread at SCHED_FIFO priority 1 (above normal threads, below the audio
threads; 'normal' where the system refuses it, shown in the summary). The main thread, which takes
the GIL too, runs at the same priority while the stream runs and sleeps without the GIL, waking only
for the status line; the garbage collector's existing objects are frozen and the GIL switch interval
is 0.5 ms, so that no thread holds up the audio callback for long.
"""

from __future__ import annotations

import gc
import math
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from realtime.errors import GapfillError

DEFAULT_BLOCKSIZE = 256
WAKE_S = 0.25  # the main thread wakes this often (status line, and Ctrl-C: one that the kernel hands to
#               one of PortAudio's threads only sets Python's flag, seen when the main thread's wait ends)
SWITCH_INTERVAL_S = 0.0005
UNKNOWN_DEVICE_LATENCY_S = 60.0  # a device latency at least this long is PortAudio's "not known"
STRENGTH_STEP = 0.1  # what one + or - key changes the strength by
AB_KEYS, STRENGTH_UP_KEYS, STRENGTH_DOWN_KEYS = "aAbB ", "+=", "-_"
KEYS_HELP = "keys: a = A/B (restored / decoded input), + / - = strength, Ctrl-C = stop"


@dataclass(frozen=True)
class LiveOptions:
    """What a live run is asked for; None means the default (device's, or the shipped config)."""

    input: int | str | None = None
    output: int | str | None = None
    rate_hz: int | None = None
    channels: int | None = None
    blocksize: int = DEFAULT_BLOCKSIZE
    latency: str | float = "low"
    config: str | None = None
    duration_s: float | None = None
    bypass: bool = False
    strength: float | None = None


@dataclass
class LiveResult:
    """What a live run did: everything its summary and `to_json` report (device latencies None when not known)."""

    input_device: str
    output_device: str
    rate_hz: int
    channels: int
    blocksize: int
    bypass: bool
    duration_s: float
    blocks: int
    engine_blocks: int
    overloads: int
    input_overflows: int
    output_underflows: int
    engine_resyncs: int
    nonfinite_samples: int
    compute_ms: dict[str, float]
    engine_latency_samples: int
    engine_latency_parts: dict[str, int]
    front_end_samples: int
    device_input_samples: int | None
    device_output_samples: int | None
    engine_thread: str
    interrupted: bool
    stopped_early: bool
    codec: dict[str, Any]
    callback_errors: int = 0
    ab_switches: int = 0
    heard_at_end: str = "restored"
    strength: float = 1.0

    @property
    def block_period_ms(self) -> float:
        return 1000.0 * self.blocksize / self.rate_hz

    @property
    def latency_samples(self) -> int:
        """Total input-to-output latency, known parts only."""
        return (self.engine_latency_samples + self.front_end_samples
                + (self.device_input_samples or 0) + (self.device_output_samples or 0))

    def to_json(self) -> dict[str, Any]:
        period = self.block_period_ms

        def ms(samples: int | None) -> float | None:
            return None if samples is None else round(1000.0 * samples / self.rate_hz, 3)

        parts = {"engine": self.engine_latency_samples, "front_end": self.front_end_samples,
                 "device_input": self.device_input_samples, "device_output": self.device_output_samples}
        return {
            "blocks_processed": self.blocks,
            "engine_blocks": self.engine_blocks,
            "overloads": self.overloads,
            "input_overflows": self.input_overflows,
            "output_underflows": self.output_underflows,
            "compute_ms": {k: round(v, 4) for k, v in self.compute_ms.items()},
            "compute_load": {k: round(v / period, 4) for k, v in self.compute_ms.items()},
            "latency": {
                "total_samples": self.latency_samples,
                "total_ms": ms(self.latency_samples),
                "parts_samples": parts,
                "parts_ms": {name: ms(value) for name, value in parts.items()},
                "engine_parts_samples": dict(self.engine_latency_parts),
            },
            "duration_s": round(self.duration_s, 3),
            "sample_rate_hz": self.rate_hz,
            "channels": self.channels,
            "blocksize": self.blocksize,
            "block_period_ms": round(period, 4),
            "bypass": self.bypass,
            "input_device": self.input_device,
            "output_device": self.output_device,
            "engine_resyncs": self.engine_resyncs,
            "nonfinite_samples": self.nonfinite_samples,
            "engine_thread": self.engine_thread,
            "interrupted": self.interrupted,
            "stopped_early": self.stopped_early,
            "callback_errors": self.callback_errors,
            "codec_report": dict(self.codec),
            "ab_switches": self.ab_switches,
            "heard_at_end": self.heard_at_end,
            "strength": self.strength,
        }


class CallbackCounts:
    """PortAudio status flags and callback failures seen by the callback (written by the callback only)."""

    __slots__ = ("input_overflows", "output_underflows", "callback_errors")

    def __init__(self) -> None:
        self.input_overflows = 0
        self.output_underflows = 0
        self.callback_errors = 0


def audio_callback(exchange: Callable[[Any, Any], None], flags: CallbackCounts,
                   block_frames: int) -> Callable[[Any, Any, int, Any, Any], None]:
    """The sounddevice callback: counts the status flags, runs `exchange(indata, outdata)`; it never raises
    (PortAudio would never call it again) and always fills `outdata` (silence if anything went wrong)."""

    def callback(indata: Any, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Real-time: no allocation of buffers, no locks, no I/O, no logging.
        try:
            if status:
                if status.input_overflow:
                    flags.input_overflows += 1
                if status.output_underflow:
                    flags.output_underflows += 1
            if frames == block_frames:
                exchange(indata, outdata)
            else:  # PortAudio guarantees `blocksize` frames; never seen, but never crash the stream
                outdata.fill(0)
        except Exception:  # noqa: BLE001 - counted and shown in the summary; the stream must go on
            flags.callback_errors += 1
            outdata.fill(0)

    return callback


class TerminalKeys:
    """Key presses from a terminal while the stream runs: cbreak mode without echo from `open` to `close`,
    which restores the terminal's settings. Active only for a terminal this process reads in the
    foreground (a background job touching its terminal's settings would be stopped)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.fd: int | None = None
        self._saved: list[Any] | None = None
        try:
            fd = stream.fileno() if stream is not None else -1
            if fd >= 0 and os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                self.fd = fd
        except (AttributeError, OSError, ValueError):  # no file, or not this process's controlling terminal
            pass

    @property
    def active(self) -> bool:
        return self.fd is not None

    def open(self) -> None:
        """Single key presses, not echoed."""
        if self.fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)

    def close(self) -> None:
        """The terminal's settings as `open` found them."""
        if self.fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self, timeout_s: float) -> str:
        """The keys pressed, waiting up to `timeout_s` for the first (without the GIL); '' if none."""
        if self.fd is None or not select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            return ""
        return os.read(self.fd, 64).decode(errors="ignore")


def handle_key(key: str, core: Any, restorer: Any) -> None:
    """Apply one key of the module doc: A/B on the core, strength on the restorer; others are ignored."""
    if key in AB_KEYS:
        core.toggle_bypass()
    elif key in STRENGTH_UP_KEYS + STRENGTH_DOWN_KEYS:
        step = STRENGTH_STEP if key in STRENGTH_UP_KEYS else -STRENGTH_STEP
        restorer.set_strength(round(min(1.0, max(0.0, restorer.strength + step)), 2))


def run_live(
    options: LiveOptions,
    restorer_factory: Callable[[str | None], Any] | None = None,
    status_stream: IO[str] | None = None,
    key_stream: IO[str] | None = None,
) -> LiveResult:
    """Open the duplex stream, restore until `duration_s` (or Ctrl-C), stop, return the result.

    restorer_factory(config_path) -> a Restorer (default `Restorer.from_config`); tests inject a slow
    one. status_stream: where the status line goes (default stderr, and only if it is a terminal);
    key_stream: where keys are read (default stdin, and only if it is a terminal in the foreground).
    """
    from realtime.frontends import devices
    from realtime.frontends.duplex import (BLOCKS, ENGINE_BLOCKS, NONFINITE, OVERLOADS, RESYNCS, WORKER_PRIORITY,
                                 DuplexCore, schedule_normal, schedule_realtime)
    from realtime.engine.restorer import Restorer

    sd = devices.sounddevice()
    input_device = devices.resolve(options.input, "input")
    output_device = devices.resolve(options.output, "output")
    rate = options.rate_hz or int(round(output_device.default_rate_hz))
    channels = options.channels or min(2, input_device.input_channels, output_device.output_channels)
    devices.check_duplex(input_device, output_device, rate, channels)
    restorer = (restorer_factory or Restorer.from_config)(options.config)
    if options.strength is not None:
        restorer.set_strength(options.strength)
    core = DuplexCore(restorer, rate, channels, options.blocksize)
    core.bypass = options.bypass
    flags = CallbackCounts()
    callback = audio_callback(core.exchange, flags, options.blocksize)
    finished = threading.Event()
    core.on_error = finished.set  # the engine failed: wake the main thread

    try:
        stream = sd.Stream(
            device=(input_device.index, output_device.index), samplerate=rate, blocksize=options.blocksize,
            channels=channels, dtype="float32", latency=options.latency, callback=callback,
            finished_callback=finished.set,
        )
    except sd.PortAudioError as exc:
        raise GapfillError(
            f"cannot open '{input_device.name}' -> '{output_device.name}' at {rate} Hz, {channels} channels, "
            f"block {options.blocksize}: {devices.portaudio_reason(exc)}"
        ) from None

    input_latency, output_latency = (_device_samples(seconds, rate) for seconds in stream.latency)
    total_latency = core.delay_samples + (input_latency or 0) + (output_latency or 0)
    status = status_stream if status_stream is not None else sys.stderr
    show_status = status.isatty()
    keys = TerminalKeys(key_stream if key_stream is not None else sys.stdin)
    meter = _StatusMeter(core, restorer, flags, rate, options.blocksize, total_latency)
    interrupted = stopped_early = False
    switch_interval = sys.getswitchinterval()
    gc.collect()
    gc.freeze()  # the collector no longer walks what exists now: shorter pauses while holding the GIL
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # This thread takes the GIL too (status line, deadline): real-time like the worker, see schedule_realtime.
    main_scheduling = schedule_realtime(WORKER_PRIORITY)
    previous_usr1 = _on_signal(signal.SIGUSR1, lambda signum, frame: core.toggle_bypass())
    core.start()
    started = time.monotonic()
    try:
        keys.open()
        if keys.active and show_status:
            status.write(KEYS_HELP + "\n")
            status.flush()
        try:
            stream.start()
        except sd.PortAudioError as exc:
            raise GapfillError(f"cannot start '{input_device.name}' -> '{output_device.name}': "
                               f"{devices.portaudio_reason(exc)}") from None
        started = time.monotonic()
        deadline = None if options.duration_s is None else started + options.duration_s
        try:
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if core.error is not None:
                    break
                if not stream.active:  # PortAudio ended it: the device or the sound server went away
                    stopped_early = True
                    break
                # Sleep without the GIL, waking for a key, the status line, the deadline, the stream's end
                # or Ctrl-C.
                timeout_s = WAKE_S if deadline is None else min(WAKE_S, deadline - now)
                if keys.active:
                    for key in keys.read(timeout_s):
                        handle_key(key, core, restorer)
                else:
                    finished.wait(timeout_s)
                if show_status:
                    status.write("\r" + meter.line() + "\x1b[K")
                    status.flush()
        except KeyboardInterrupt:
            interrupted = True
        elapsed = time.monotonic() - started
        stream.stop()
    finally:
        stream.close()  # stops the stream first if it still runs: no more callbacks after this
        core.stop()
        keys.close()
        _on_signal(signal.SIGUSR1, previous_usr1)
        if main_scheduling != "normal":
            schedule_normal()
        sys.setswitchinterval(switch_interval)
        gc.unfreeze()
        if show_status:
            status.write("\r\x1b[K")
            status.flush()

    if core.error is not None:
        error = core.error
        raise RuntimeError(f"the engine stopped after {elapsed:.2f} s: {type(error).__name__}: {error}") from error
    compute = core.compute
    result = LiveResult(
        input_device=input_device.name,
        output_device=output_device.name,
        rate_hz=rate,
        channels=channels,
        blocksize=options.blocksize,
        bypass=options.bypass,
        duration_s=elapsed,
        blocks=int(core.counters[BLOCKS]),
        engine_blocks=int(core.counters[ENGINE_BLOCKS]),
        overloads=int(core.counters[OVERLOADS]),
        input_overflows=flags.input_overflows,
        output_underflows=flags.output_underflows,
        engine_resyncs=int(core.counters[RESYNCS]),
        nonfinite_samples=int(core.counters[NONFINITE]),
        compute_ms={"p50": compute.percentile_ms(0.50), "p99": compute.percentile_ms(0.99),
                    "max": compute.max_ms, "mean": compute.mean_ms},
        engine_latency_samples=core.engine_latency_samples,
        engine_latency_parts=dict(restorer.latency_parts),
        front_end_samples=core.buffer_samples,
        device_input_samples=input_latency,
        device_output_samples=output_latency,
        engine_thread=core.worker_scheduling,
        interrupted=interrupted,
        stopped_early=stopped_early,
        codec=restorer.codec_report(),
        callback_errors=flags.callback_errors,
        ab_switches=core.switches,
        heard_at_end=heard(core.bypass),
        strength=restorer.strength,
    )
    return result


def heard(bypass: bool) -> str:
    """Which signal is heard: 'decoded' (the dry input, bypass) or 'restored'."""
    return "decoded" if bypass else "restored"


def _on_signal(signum: int, handler: Any) -> Any:
    """Install `handler` for `signum`; returns the previous handler (None where Python cannot install
    handlers: off the main thread, or a previous handler not set from Python)."""
    if handler is None:
        return None
    try:
        return signal.signal(signum, handler)
    except ValueError:
        return None


class _StatusMeter:
    """The status line, built in the main thread from the counters the audio and engine threads keep."""

    def __init__(self, core: Any, restorer: Any, flags: CallbackCounts, rate: int, blocksize: int,
                 latency_samples: int) -> None:
        self.core, self.restorer, self.flags = core, restorer, flags
        self.period_ms = 1000.0 * blocksize / rate
        self.latency_ms = 1000.0 * latency_samples / rate
        self._count, self._total_s = 0, 0.0

    def line(self) -> str:
        core, flags = self.core, self.flags
        peak_in, peak_out = core.take_peaks()
        compute = core.compute
        count, total = compute.count, compute.total_s
        blocks = count - self._count
        mean_ms = 1000.0 * (total - self._total_s) / blocks if blocks else 0.0
        self._count, self._total_s = count, total
        peak_ms = compute.take_recent_max_ms()
        xruns = flags.input_overflows + flags.output_underflows
        return (
            f"in {_dbfs(peak_in)}  out {_dbfs(peak_out)}  load {100 * mean_ms / self.period_ms:3.0f}% "
            f"(peak {100 * peak_ms / self.period_ms:3.0f}%)  overloads {core.overloads}  "
            f"xruns {xruns}  latency {self.latency_ms:.1f} ms  {_codec_state(self.restorer.codec_report())}  "
            f"strength {self.restorer.strength:.1f}  hearing {heard(core.bypass)}"
        )


def _codec_state(report: dict[str, Any]) -> str:
    """The status line's codec gate field: 'codec 8.4 kHz, 97 % restored', 'codec damage, 97 % restored'
    (found by the model's codec-made bins, no band limit), 'codec none' or 'gate off'."""
    if not report["gate_enabled"]:
        return "gate off"
    if not report["engaged"]:
        return "codec none"
    found = "damage" if report["cutoff_hz"] is None else f"{report['cutoff_hz'] / 1000:.1f} kHz"
    return f"codec {found}, {100 * report['restored_share']:.0f} % restored"


def _dbfs(peak: float) -> str:
    return "  -inf dBFS" if peak <= 0.0 else f"{20 * math.log10(peak):6.1f} dBFS"


def _device_samples(seconds: float, rate: int) -> int | None:
    """A device latency PortAudio reports, in samples; None when it is PortAudio's "unknown"."""
    if not math.isfinite(seconds) or seconds < 0 or seconds >= UNKNOWN_DEVICE_LATENCY_S:
        return None
    return int(round(seconds * rate))
