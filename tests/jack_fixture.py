"""A clocked virtual sound card for the live tests: a JACK server with the dummy backend, no hardware.

`JackServer` starts `jackd -n NAME -d dummy -r 48000 -p 256` under a name unique to the test session (so
parallel or leftover servers do not interfere) and stops it by its PID. Processes that should use it get
`JACK_DEFAULT_SERVER=NAME` in their environment; PortAudio lists JACK devices only if the server runs
before it initialises, so `gapfill` runs in a subprocess (`run_gapfill`, `start_gapfill`).

`PlayRecord` plays a known signal into `gapfill live --input gfplay` and records `--output gfrec` with two
JACK clients (the `JACK-Client` package), both indexed by JACK's frame clock, so that the recorded output
lines up with the played input sample for sample. Their ports declare one period of latency, as the dummy
backend's own capture ports do: PortAudio reports a JACK device's latency as the port's latency minus one
period (plus its own block adapter on output), so these virtual devices report like an ideal sound card
and `gapfill`'s reported total latency is exactly the delay from the player to the recorder.

`SlowRestorer` is a test-only engine: it delays `process` for a few chosen blocks and scales its output,
so that restored and dry blocks can be told apart, and can be told to raise; `slow_live_main` runs the
real `live` command with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
RATE = 48_000
PERIOD = 256
PLAYER, RECORDER = "gfplay", "gfrec"

# The `live` command with a SlowRestorer: argv = SLOW_SPEC live OPTIONS... (see slow_live_main).
_SLOW = """
import sys
sys.path.insert(0, {tests!r})
from jack_fixture import slow_live_main
sys.exit(slow_live_main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def jack_server(tmp_path_factory: Any) -> Any:
    """A running `JackServer` for the tests of one module (skipped where JACK is unavailable)."""
    reason = jack_unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = JackServer(tmp_path_factory.mktemp("jack") / "jackd.log")
    server.start()
    yield server
    server.stop()


def jack_unavailable() -> str | None:
    """Why the JACK tests cannot run here, or None."""
    if shutil.which("jackd") is None:
        return "jackd is not installed (apt-get install jackd2)"
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"the JACK-Client package is not usable ({exc}; pip install JACK-Client)"
    return None


class JackServer:
    """`jackd` with the dummy backend under a unique server name; `start()` waits until it accepts clients."""

    def __init__(self, log_path: Path, rate: int = RATE, period: int = PERIOD) -> None:
        self.name = f"gapfill-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.rate, self.period = rate, period
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should use this server (and import the repository's realtime)."""
        env = dict(os.environ)
        env["JACK_DEFAULT_SERVER"] = self.name
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.pop("GAPFILL_DEBUG", None)
        return env

    def start(self, timeout_s: float = 15.0) -> None:
        import jack

        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["jackd", "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + timeout_s
        jack.set_error_function(lambda message: None)  # "cannot connect" until the server is up
        try:
            self._wait_until_ready(deadline, timeout_s)
        finally:
            jack.set_error_function(None)

    def _wait_until_ready(self, deadline: float, timeout_s: float) -> None:
        import jack

        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jackd exited with status {self.process.returncode}: {self.log()}")
            try:
                probe = jack.Client("gapfill-probe", servername=self.name, no_start_server=True)
            except jack.JackError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"jackd did not accept clients within {timeout_s} s: {self.log()}")
                time.sleep(0.1)
                continue
            probe.close()
            return

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the jackd child: get SIGTERM when the test process dies, so no server outlives a killed run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# -- gapfill as a subprocess -----------------------------------------------------------------------
def gapfill_command(*args: str) -> list[str]:
    """The command line of `gapfill ARGS` from this checkout."""
    return [sys.executable, "-m", "realtime", *args]


def _command(args: tuple[str, ...], slow: str | None) -> list[str]:
    """`gapfill ARGS`, or the `live` command with a SlowRestorer when `slow` (SLOW_SPEC) is given."""
    if slow is None:
        return gapfill_command(*args)
    return [sys.executable, "-c", _SLOW.format(tests=str(TESTS_DIR)), slow, *args]


def run_gapfill(server: JackServer, *args: str, timeout: float = 60, slow: str | None = None
                ) -> subprocess.CompletedProcess:
    """Run `gapfill ARGS` (see `_command`) on the server; text stdout/stderr."""
    return subprocess.run(_command(args, slow), capture_output=True, text=True, timeout=timeout,
                          env=server.env, cwd=REPO_ROOT)


def start_gapfill(server: JackServer, *args: str, slow: str | None = None) -> subprocess.Popen:
    """Start `gapfill ARGS` (see `_command`) on the server."""
    command = _command(args, slow)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=server.env, cwd=REPO_ROOT)


def stop_gapfill(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    """Ctrl-C the live command (SIGINT), wait; returns (exit status, stdout, stderr)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


# -- the test-only slow engine ---------------------------------------------------------------------
class SlowRestorer:
    """A Restorer whose output is scaled by `gain` and whose `process` sleeps `sleep_s` for `slow_blocks`
    blocks starting `after_onset` blocks after the first block with a non-zero input sample, and raises
    `EngineFault` at block `fail_after` (None: never).

    Blocks are counted from the last `reset()` (the live core resets the engine after its warm-up).
    """

    def __init__(self, config: str | None, gain: float, after_onset: int, slow_blocks: int,
                 sleep_s: float, fail_after: int | None = None) -> None:
        from realtime.engine.restorer import Restorer

        self.inner = Restorer.from_config(config)
        self.gain = np.float32(gain)
        self.after_onset, self.slow_blocks, self.sleep_s = after_onset, slow_blocks, sleep_s
        self.fail_after = fail_after
        self._onset: int | None = None
        self._blocks = 0

    def prepare(self, sample_rate: int, channels: int, max_block: int) -> None:
        self.inner.prepare(sample_rate, channels, max_block)

    @property
    def latency_samples(self) -> int:
        return self.inner.latency_samples

    @property
    def latency_parts(self) -> dict[str, int]:
        return self.inner.latency_parts

    def codec_report(self) -> dict[str, Any]:
        return self.inner.codec_report()

    @property
    def strength(self) -> float:
        return self.inner.strength

    def set_strength(self, strength: float) -> None:
        self.inner.set_strength(strength)

    def reset(self) -> None:
        self.inner.reset()
        self._onset, self._blocks = None, 0

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if self._onset is None and np.any(block != 0):
            self._onset = self._blocks
        if self._onset is not None and 0 <= self._blocks - self._onset - self.after_onset < self.slow_blocks:
            time.sleep(self.sleep_s)
        if self._blocks == self.fail_after:
            raise EngineFault(f"test fault at block {self._blocks}")
        self._blocks += 1
        out = self.inner.process(block, out)
        np.multiply(out, self.gain, out=out)
        return out


class EngineFault(Exception):
    """What a SlowRestorer told to fail raises."""


def slow_live_main(argv: list[str]) -> int:
    """`gapfill live` with a SlowRestorer. argv[0] = 'GAIN,AFTER_ONSET,SLOW_BLOCKS,SLEEP_S[,FAIL_AFTER]'; the
    rest: `live OPTIONS`. Errors are reported as `gapfill` reports them."""
    from realtime.cli.main import build_parser, run
    from realtime.cli.live import live_command

    gain, after_onset, slow_blocks, sleep_s, *fail = argv[0].split(",")
    args = build_parser().parse_args(argv[1:])

    def factory(config: str | None) -> SlowRestorer:
        return SlowRestorer(config, float(gain), int(after_onset), int(slow_blocks), float(sleep_s),
                            int(fail[0]) if fail else None)

    args.handler = functools.partial(live_command, restorer_factory=factory)
    return run(args)


# -- playing into and recording from gapfill -------------------------------------------------------
class PlayRecord:
    """Two JACK clients: `gfplay` (outputs: gapfill's input device) and `gfrec` (inputs: its output device).

    After `arm()`, the player writes `signal` (frames, channels) from the start of the next JACK cycle and
    the recorder stores what arrives at the same frame times, so `recorded[k]` and `signal[k]` belong to
    the same instant; `cycles_seen` marks which cycles (blocks of `period` frames) were recorded.
    """

    def __init__(self, server: JackServer, signal: np.ndarray, record_frames: int) -> None:
        import jack

        self.signal = np.ascontiguousarray(signal, dtype=np.float32)
        frames, channels = self.signal.shape
        self.period = server.period
        blocks = -(-record_frames // self.period)
        self.recorded = np.zeros((blocks * self.period, channels), np.float32)
        self.cycles_seen = np.zeros(blocks, bool)
        self.start_frame: int | None = None
        self._armed = False
        self.done = threading.Event()
        self.player = jack.Client(PLAYER, servername=server.name, no_start_server=True)
        self.recorder = jack.Client(RECORDER, servername=server.name, no_start_server=True)
        for c in range(channels):
            self.player.outports.register(f"out_{c + 1}")
            self.recorder.inports.register(f"in_{c + 1}")
        _declare_latency([*self.player.outports, *self.recorder.inports], self.period)
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(self._record)
        # The callbacks are Python: a collection pause holding the GIL would make them late, and a late
        # client is an xrun for every client of the server (gapfill counts it). Collect now, not while
        # the clients run; `close` re-enables the collector.
        gc.collect()
        gc.disable()
        self.player.activate()
        self.recorder.activate()

    def _play(self, frames: int) -> None:  # JACK's process thread
        now = self.player.last_frame_time
        if self._armed and self.start_frame is None:
            self.start_frame = now
        for c, port in enumerate(self.player.outports):
            buffer = port.get_array()
            buffer[:] = 0.0
            if self.start_frame is not None:
                k = now - self.start_frame
                if k < self.signal.shape[0]:
                    n = min(frames, self.signal.shape[0] - k)
                    buffer[:n] = self.signal[k : k + n, c]

    def _record(self, frames: int) -> None:  # JACK's process thread
        if self.start_frame is None:
            return
        k = self.recorder.last_frame_time - self.start_frame
        block = k // self.period
        if k < 0 or block >= self.cycles_seen.size:
            if block >= self.cycles_seen.size:
                self.done.set()
            return
        for c, port in enumerate(self.recorder.inports):
            self.recorded[k : k + frames, c] = port.get_array()
        self.cycles_seen[block] = True

    def wait_for_gapfill(self, process: subprocess.Popen, timeout_s: float = 60) -> None:
        """Wait until gapfill's stream is connected to both clients (it has started)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"gapfill exited early: {process.communicate()}")
            if self.player.get_all_connections(self.player.outports[0]) and self.recorder.get_all_connections(
                self.recorder.inports[0]
            ):
                return
            time.sleep(0.02)
        raise AssertionError("gapfill did not connect to the test clients")

    def arm(self) -> None:
        """Start playing (and recording) at the next JACK cycle."""
        self._armed = True

    def wait(self, timeout_s: float) -> None:
        if not self.done.wait(timeout_s):
            raise AssertionError("recording did not finish in time")

    def close(self) -> None:
        gc.enable()
        for client in (self.player, self.recorder):
            client.deactivate()
            client.close()


def _declare_latency(ports: list[Any], frames: int) -> None:
    """Set the (legacy) latency of JACK-Client ports, the value PortAudio's JACK host API reads.

    JACK-Client has no latency API, so this calls libjack's `jack_port_set_latency` through ctypes on the
    port pointers JACK-Client holds.
    """
    import jack

    libjack = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    libjack.jack_port_set_latency.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    libjack.jack_port_set_latency.restype = None
    for port in ports:
        libjack.jack_port_set_latency(int(jack._ffi.cast("uintptr_t", port._ptr)), frames)


def play_through_live(server: JackServer, x: np.ndarray, stats_path: Path, *live_args: str,
                      slow: str | None = None, while_playing: Callable[[subprocess.Popen], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, int, str, str]:
    """Play x (frames, C) into `gapfill live --stats-json stats_path` (stopped with Ctrl-C once played) and
    record its output: (recording, cycles seen, exit status, stdout, stderr). `while_playing(process)` is
    called once the signal has started (e.g. to send gapfill a signal). Asserts nothing."""
    margin = 8000  # frames recorded after the signal, more than any latency here
    rig = PlayRecord(server, x, x.shape[0] + margin)
    try:
        process = start_gapfill(server, "live", "--input", PLAYER, "--output", RECORDER, "--duration", "60",
                                "--stats-json", str(stats_path), *live_args, slow=slow)
        try:
            rig.wait_for_gapfill(process)
            rig.arm()
            if while_playing is not None:
                while_playing(process)
            rig.wait(timeout_s=30)
        finally:
            status, stdout, stderr = stop_gapfill(process)
    finally:
        rig.close()
    return rig.recorded, rig.cycles_seen, status, stdout, stderr

