"""`gapfill live` and `gapfill devices`: the real-time core stepped by hand, then the real CLI on a clocked
virtual sound card (JACK's dummy backend, see tests/jack_fixture.py).

Tests whose outcome depends on the machine keeping up in real time (no overloads, no xruns, a glitch-free
recording) carry the `timing` marker: CI does not run them (`-m "not timing"`); `benchmarks/latency.py`
and a quiet machine do. Everything they check about behaviour is also checked deterministically on the
stepped core above them.
"""

from __future__ import annotations

import ctypes
import json
import os
import pty
import signal
import subprocess
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from jack_fixture import (
    PERIOD,
    RATE,
    REPO_ROOT,
    EngineFault,
    PLAYER,
    RECORDER,
    JackServer,
    PlayRecord,
    SlowRestorer,
    gapfill_command,
    jack_server,  # noqa: F401 - a fixture
    play_through_live,
    run_gapfill,
    start_gapfill,
)
from realtime.frontends.duplex import ENGINE_BLOCKS, NONFINITE, OVERLOADS, RESYNCS, RING_BLOCKS, DuplexCore
from realtime.frontends.live import CallbackCounts, audio_callback
from realtime.engine.restorer import Restorer
from test_restorer import compiled_signatures

PASSTHROUGH_YAML = "model: {path: passthrough}\nphase: {method: decoded}\n"
BLOCK = 256


@pytest.fixture(scope="module")
def passthrough_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("live-config") / "passthrough.yaml"
    path.write_text(PASSTHROUGH_YAML)
    return str(path)


def tones(frames: int, channels: int, amplitude: float = 0.5) -> np.ndarray:
    """(frames, channels) float32: two sines per channel, smooth, so any click stands out."""
    t = np.arange(frames) / RATE
    columns = [0.6 * np.sin(2 * np.pi * 440 * (c + 1) * t) + 0.4 * np.sin(2 * np.pi * 1000 * t + c)
               for c in range(channels)]
    return (amplitude * np.stack(columns, axis=1)).astype(np.float32)


def delayed(x: np.ndarray, delay: int, frames: int) -> np.ndarray:
    """x (n, C) delayed by `delay` frames, zero before, cut or zero-padded to `frames`."""
    out = np.zeros((frames, x.shape[1]), np.float32)
    n = max(0, min(x.shape[0], frames - delay))
    out[delay : delay + n] = x[:n]
    return out


def max_step(y: np.ndarray) -> float:
    """Largest sample-to-sample jump in any channel."""
    return float(np.max(np.abs(np.diff(y, axis=0))))


# -- the real-time core, stepped by hand (no sound card, no threads) ---------------------------------
def drive(core: DuplexCore, x: np.ndarray, late: set[int] = frozenset()) -> np.ndarray:
    """Feed x (n, C) block by block; the engine catches up after every block except those in `late`."""
    out = np.zeros_like(x)
    for b in range(x.shape[0] // BLOCK):
        core.exchange(x[b * BLOCK : (b + 1) * BLOCK], out[b * BLOCK : (b + 1) * BLOCK])
        if b not in late:
            core.work()
    return out


def make_core(config: str | None, gain: float = 1.0) -> DuplexCore:
    restorer = SlowRestorer(config, gain, after_onset=0, slow_blocks=0, sleep_s=0.0)
    return DuplexCore(restorer, RATE, 2, BLOCK, worker_priority=None)


def test_core_output_is_the_restored_input_delayed_by_engine_latency_plus_one_block(passthrough_yaml):
    core = make_core(passthrough_yaml)
    assert core.delay_samples == Restorer.from_config(passthrough_yaml).engine_latency_samples + BLOCK
    x = tones(200 * BLOCK, 2)
    y = drive(core, x)
    np.testing.assert_allclose(y, delayed(x, core.delay_samples, len(x)), atol=1e-5)
    assert core.overloads == 0 and int(core.counters[ENGINE_BLOCKS]) == 200


def test_core_late_blocks_are_latency_aligned_dry_counted_and_recover_without_clicks(passthrough_yaml):
    core = make_core(passthrough_yaml, gain=0.5)  # "restored" = half the input, so dry blocks stand out
    x = tones(300 * BLOCK, 2)
    late = {100, 101, 102, 103, 200}  # the engine misses the next period's deadline after these blocks
    y = drive(core, x, late)
    dry = delayed(x, core.delay_samples, len(x))
    wet = 0.5 * dry
    assert core.overloads == len(late)
    for b in range(20, 300):  # after the start-up silence
        block = slice(b * BLOCK, (b + 1) * BLOCK)
        if b - 1 in late:  # the output block of a late engine block: dry (the first fades out the step)
            np.testing.assert_array_equal(y[block][-1], dry[block][-1])
            if b - 2 in late:
                np.testing.assert_array_equal(y[block], dry[block])
        elif b - 2 in late:  # back in time: a crossfade from dry to restored over the block
            assert np.all(np.abs(y[block] - dry[block]) <= np.abs(wet[block] - dry[block]) + 1e-6)
            np.testing.assert_allclose(y[block][-1], wet[block][-1], atol=1e-5)
        else:
            np.testing.assert_allclose(y[block], wet[block], atol=1e-5)
    assert max_step(y) <= max_step(dry) + 1e-3


def test_core_falling_a_whole_ring_behind_restarts_the_engine_and_stays_dry_until_valid(passthrough_yaml):
    core = make_core(passthrough_yaml, gain=0.5)
    x = tones(200 * BLOCK, 2)
    late = set(range(50, 50 + RING_BLOCKS + 5))
    y = drive(core, x, late)
    dry = delayed(x, core.delay_samples, len(x))
    assert int(core.counters[RESYNCS]) == 1
    resumed = 50 + RING_BLOCKS + 5 + core.warmup_blocks + 2  # first block restored again (crossfade done)
    np.testing.assert_array_equal(y[52 * BLOCK : (resumed - 3) * BLOCK], dry[52 * BLOCK : (resumed - 3) * BLOCK])
    np.testing.assert_allclose(y[resumed * BLOCK :], 0.5 * dry[resumed * BLOCK :], atol=1e-5)
    assert core.overloads == resumed - 1 - 51
    assert max_step(y) <= max_step(dry) + 1e-3


def test_core_bypass_is_the_aligned_dry_signal_and_crossfades_both_ways(passthrough_yaml):
    core = make_core(passthrough_yaml, gain=0.5)
    x = tones(120 * BLOCK, 2)
    out = np.zeros_like(x)
    for b in range(120):
        core.bypass = 40 <= b < 80
        core.exchange(x[b * BLOCK : (b + 1) * BLOCK], out[b * BLOCK : (b + 1) * BLOCK])
        core.work()
    dry = delayed(x, core.delay_samples, len(x))
    np.testing.assert_array_equal(out[41 * BLOCK : 80 * BLOCK], dry[41 * BLOCK : 80 * BLOCK])
    np.testing.assert_allclose(out[81 * BLOCK :], 0.5 * dry[81 * BLOCK :], atol=1e-5)
    assert core.overloads == 0
    assert max_step(out) <= max_step(dry) + 1e-3


def test_core_replaces_non_finite_input_on_the_dry_path(passthrough_yaml):
    core = make_core(passthrough_yaml)
    core.bypass = True
    x = tones(40 * BLOCK, 2)
    x[5 * BLOCK + 3, 1] = np.nan
    x[6 * BLOCK, 0] = np.inf
    y = drive(core, x)
    assert np.all(np.isfinite(y)) and int(core.counters[NONFINITE]) == 2


def test_callback_exchange_allocates_nothing(passthrough_yaml):
    core = make_core(passthrough_yaml)
    x = tones(64 * BLOCK, 2)
    out = np.zeros_like(x)
    blocks = [(x[b * BLOCK : (b + 1) * BLOCK], out[b * BLOCK : (b + 1) * BLOCK]) for b in range(64)]
    core.exchange(*blocks[0])
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for block_in, block_out in blocks[1:]:
        core.exchange(block_in, block_out)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) < 1024, grown[:5]


def test_core_warm_up_leaves_nothing_to_compile():
    """The live core's warm-up covers every kernel and layout its callback and worker use."""
    core = DuplexCore(Restorer.from_config(None), RATE, 2, BLOCK, worker_priority=None)
    before = compiled_signatures()
    drive(core, tones(40 * BLOCK, 2), late={10, 11})
    core.bypass = True
    drive(core, tones(8 * BLOCK, 2))
    assert compiled_signatures() == before


def test_core_worker_failure_is_kept_reported_and_the_output_goes_dry(passthrough_yaml):
    restorer = SlowRestorer(passthrough_yaml, 0.5, after_onset=0, slow_blocks=0, sleep_s=0.0)
    core = DuplexCore(restorer, RATE, 2, BLOCK, worker_priority=None)
    restorer.fail_after = 3  # counted from the reset that ends the core's warm-up
    failed = threading.Event()
    core.on_error = failed.set
    x = tones(12 * BLOCK, 2)
    y = np.zeros_like(x)
    core.start()
    try:
        for b in range(12):
            core.exchange(x[b * BLOCK : (b + 1) * BLOCK], y[b * BLOCK : (b + 1) * BLOCK])
            if b == 4:
                assert failed.wait(timeout=30), "the worker did not report the failure"
    finally:
        core.stop()
    assert isinstance(core.error, EngineFault) and int(core.counters[ENGINE_BLOCKS]) == 3
    dry = delayed(x, core.delay_samples, len(x))
    np.testing.assert_array_equal(y[6 * BLOCK :], dry[6 * BLOCK :])  # the callback carried on, dry
    assert int(core.counters[OVERLOADS]) >= 6


def test_callback_never_raises_and_always_fills_its_output():
    flags = CallbackCounts()

    def broken(indata, outdata):
        outdata[:3] = 1.0
        raise RuntimeError("broken exchange")

    class Status:
        input_overflow, output_underflow = True, False

        def __bool__(self):
            return True

    callback = audio_callback(broken, flags, BLOCK)
    indata, outdata = np.ones((BLOCK, 2), np.float32), np.full((BLOCK, 2), 7.0, np.float32)
    callback(indata, outdata, BLOCK, None, Status())
    assert not outdata.any() and flags.callback_errors == 1 and flags.input_overflows == 1
    outdata[:] = 7.0
    callback(indata, outdata, BLOCK - 1, None, None)  # a block of the wrong size: silence, not a crash
    assert not outdata.any() and flags.callback_errors == 1


# -- the real CLI on JACK's dummy backend (the `jack_server` fixture) ------------------------------------

def test_devices_lists_the_jack_device_as_default(jack_server):
    result = run_gapfill(jack_server, "devices")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "system" in line)
    assert line.startswith("><") and "JACK Audio Connection Kit" in line and "48000 Hz" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "no-such-card"], "gapfill: no input device matching 'no-such-card'"),
        (["--output", "99"], "gapfill: no output device with index 99"),
        (["--rate", "44100"], "gapfill: input device 0 'system' refuses 44100 Hz"),
        (["--channels", "3"], "gapfill: input device 0 'system' has 2 input channels, 3 requested"),
        (["--rate", "12345"], "gapfill: input device 0 'system' refuses 12345 Hz"),
    ],
)
def test_bad_device_or_rate_is_a_one_line_error_with_status_2(jack_server, args, message):
    result = run_gapfill(jack_server, "live", "--duration", "1", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_live_reports_what_it_did_consistently(jack_server, tmp_path):
    """Default config, 2 s: the summary, the JSON and the engine agree (nothing here depends on timing)."""
    stats_path = tmp_path / "stats.json"
    result = run_gapfill(jack_server, "live", "--input", "system", "--output", "0", "--rate", "48000",
                         "--blocksize", "256", "--duration", "2", "--stats-json", str(stats_path), timeout=90)
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["blocks_processed"] > 0 and stats["engine_blocks"] <= stats["blocks_processed"]
    assert stats["callback_errors"] == 0 and stats["interrupted"] is False
    engine = Restorer.from_config(None)
    engine.prepare(RATE, 2, 256)
    latency = stats["latency"]
    parts = latency["parts_samples"]
    assert parts["engine"] == engine.latency_samples and parts["front_end"] == 256
    assert latency["engine_parts_samples"] == engine.latency_parts
    assert latency["total_samples"] == sum(parts.values())
    codec = stats["codec_report"]
    assert codec["gate_enabled"] is True and codec["engaged"] is False  # the dummy card's input is silence
    summary = result.stdout
    assert f"{stats['blocks_processed']} blocks of 256 frames at 48000 Hz, 2 channels" in summary
    assert (f"overloads: {stats['overloads']}   input overflows: {stats['input_overflows']}   "
            f"output underflows: {stats['output_underflows']}") in summary
    assert (f"latency: {latency['total_samples']} samples ({latency['total_ms']:.2f} ms) = engine "
            f"{parts['engine']} + front end 256 + device input {parts['device_input']}") in summary
    assert "codec gate: no codec damage detected: passed through unchanged" in summary
    assert result.stderr == ""  # no status line when stderr is not a terminal


def test_engine_failure_stops_live_with_one_line_error(jack_server):
    result = run_gapfill(jack_server, "live", "--duration", "20", slow="1,0,0,0,50", timeout=90)
    assert result.returncode == 1
    assert result.stderr.startswith("gapfill: internal error: RuntimeError: the engine stopped after ")
    assert "EngineFault: test fault at block 50" in result.stderr and result.stderr.count("\n") == 1


def _threads_taking_sigint(pid: int) -> list[int]:
    """Thread ids of process pid, other than its main thread, that do not block SIGINT (Linux /proc)."""
    tids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
        if int(task.name) != pid and not blocked & (1 << (signal.SIGINT - 1)):
            tids.append(int(task.name))
    return sorted(tids)


def test_ctrl_c_that_lands_on_another_thread_stops_live(jack_server, tmp_path, passthrough_yaml):
    """The kernel may hand a process's SIGINT to any thread that does not block it (PortAudio's and JACK's
    threads do not); Python only sets a flag there, so the main thread must not sleep through it."""
    stats_path = tmp_path / "stats.json"
    rig = PlayRecord(jack_server, np.zeros((PERIOD, 2), np.float32), PERIOD)
    try:
        process = start_gapfill(jack_server, "live", "--input", PLAYER, "--output", RECORDER, "--duration", "600",
                                "--config", passthrough_yaml, "--stats-json", str(stats_path))
        try:
            rig.wait_for_gapfill(process)
            others = _threads_taking_sigint(process.pid)
            assert others, "gapfill live runs no thread besides the main one"
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.tgkill(process.pid, others[-1], int(signal.SIGINT)) == 0   # glibc >= 2.30
            stdout, stderr = process.communicate(timeout=120)   # without the fix: only after --duration 600
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    finally:
        rig.close()
    assert process.returncode == 0, stderr
    assert json.loads(stats_path.read_text())["interrupted"] is True


@pytest.mark.timing
def test_ten_seconds_live_with_the_default_config_no_overloads_no_xruns(jack_server, tmp_path):
    stats_path = tmp_path / "stats.json"
    result = run_gapfill(jack_server, "live", "--input", "system", "--output", "0", "--rate", "48000",
                         "--blocksize", "256", "--duration", "10", "--stats-json", str(stats_path), timeout=90)
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert (stats["overloads"], stats["input_overflows"], stats["output_underflows"]) == (0, 0, 0), stats
    assert 9.9 <= stats["duration_s"] <= 11.0
    assert abs(stats["blocks_processed"] - stats["duration_s"] * RATE / PERIOD) <= 10
    assert stats["blocks_processed"] - 1 <= stats["engine_blocks"] <= stats["blocks_processed"]
    compute = stats["compute_ms"]
    assert 0 < compute["p50"] <= compute["p99"] <= compute["max"]
    engine = Restorer.from_config(None)
    engine.prepare(RATE, 2, 256)
    latency = stats["latency"]
    parts = latency["parts_samples"]
    assert parts["engine"] == engine.latency_samples and parts["front_end"] == 256
    assert latency["engine_parts_samples"] == engine.latency_parts
    assert parts["device_input"] >= 0 and parts["device_output"] >= 256  # JACK: at least one period out
    assert latency["total_samples"] == sum(parts.values())
    summary = result.stdout
    assert f"{stats['blocks_processed']} blocks of 256 frames at 48000 Hz, 2 channels" in summary
    assert "overloads: 0   input overflows: 0   output underflows: 0" in summary
    assert (f"latency: {latency['total_samples']} samples ({latency['total_ms']:.2f} ms) = engine "
            f"{parts['engine']} + front end 256 + device input {parts['device_input']}") in summary
    assert f"p99 {compute['p99']:.3f} ms" in summary
    assert result.stderr == ""  # no status line when stderr is not a terminal


def play_through_gapfill(server: JackServer, x: np.ndarray, tmp_path, *live_args: str, slow: str | None = None):
    """Play x (frames, C) into `gapfill live` and record its output; returns (recording, stats, stdout)."""
    stats_path = tmp_path / "stats.json"
    recorded, cycles_seen, status, stdout, stderr = play_through_live(server, x, stats_path, *live_args, slow=slow)
    assert status == 0, stderr
    assert cycles_seen.all(), "the recorder missed JACK cycles"
    stats = json.loads(stats_path.read_text())
    assert stats["interrupted"] is True and "gapfill live:" in stdout  # Ctrl-C: a clean stop and a summary
    return recorded, stats, stdout


def reported_latency(stats: dict) -> int:
    """The total latency gapfill reports: engine + front end + device input + device output."""
    parts = stats["latency"]["parts_samples"]
    assert None not in parts.values(), parts  # the test clients declare their latency
    assert stats["latency"]["total_samples"] == sum(parts.values())
    return stats["latency"]["total_samples"]


@pytest.mark.timing
def test_known_signal_comes_out_restored_aligned_by_the_reported_latency(jack_server, tmp_path, passthrough_yaml):
    x = tones(RATE * 2, 2) + 0.05 * np.random.default_rng(1).standard_normal((RATE * 2, 2)).astype(np.float32)
    y, stats, _ = play_through_gapfill(jack_server, x, tmp_path, "--config", passthrough_yaml)
    delay = reported_latency(stats)
    assert (stats["overloads"], stats["input_overflows"], stats["output_underflows"]) == (0, 0, 0), stats
    np.testing.assert_allclose(y, delayed(x, delay, len(y)), atol=1e-5)  # pass-through: the input itself
    correlation = np.correlate(y[:, 0], x[:4096, 0], mode="valid")
    assert int(np.argmax(correlation)) == delay


@pytest.mark.timing
def test_slow_engine_blocks_become_aligned_dry_counted_and_recover_without_clicks(jack_server, tmp_path,
                                                                                   passthrough_yaml):
    x = tones(RATE * 2, 2)
    # restored = 0.5 x; from 150 blocks after the signal starts, 3 blocks take 8 ms more each (> 5.33 ms)
    y, stats, stdout = play_through_gapfill(jack_server, x, tmp_path, "--config", passthrough_yaml,
                                            slow="0.5,150,3,0.008")
    delay = reported_latency(stats)
    dry = delayed(x, delay, len(y))
    wet = 0.5 * dry
    last = [(b + 1) * PERIOD - 1 for b in range(len(y) // PERIOD)]  # each block's last sample
    ends_dry = [b for b, k in enumerate(last)  # restored = 0.5 dry: they differ where the signal is not ~0
                if np.all(y[k] == dry[k]) and np.max(np.abs(dry[k])) > 1e-2]
    assert stats["overloads"] >= 3 and len(ends_dry) == stats["overloads"], (stats, ends_dry)
    assert f"overloads: {stats['overloads']}" in stdout
    first = ends_dry[0]
    assert ends_dry == list(range(first, first + len(ends_dry))), ends_dry  # one run of dry blocks
    for b in ends_dry[1:]:  # exactly the input, delayed by the reported latency
        np.testing.assert_array_equal(y[b * PERIOD : (b + 1) * PERIOD], dry[b * PERIOD : (b + 1) * PERIOD])
    after = (ends_dry[-1] + 2) * PERIOD  # after the crossfade back: restored again
    np.testing.assert_allclose(y[after:], wet[after:], atol=1e-5)
    np.testing.assert_allclose(y[delay : first * PERIOD], wet[delay : first * PERIOD], atol=1e-5)
    assert max_step(y) <= max_step(dry) + 1e-3  # no clicks going dry or coming back


@pytest.mark.timing
def test_bypass_outputs_the_dry_signal_with_the_same_latency(jack_server, tmp_path, passthrough_yaml):
    x = tones(RATE, 2)
    y, stats, stdout = play_through_gapfill(jack_server, x, tmp_path, "--config", passthrough_yaml, "--bypass",
                                            slow="0.5,0,0,0")
    assert stats["bypass"] is True and stats["overloads"] == 0 and "(bypass)" in stdout
    np.testing.assert_array_equal(y, delayed(x, reported_latency(stats), len(y)))


def test_status_line_on_a_terminal(jack_server):
    main, terminal = pty.openpty()
    try:
        result = subprocess.run(gapfill_command("live", "--duration", "3"), stdout=subprocess.PIPE,
                                stderr=terminal, text=True, timeout=60, env=jack_server.env, cwd=REPO_ROOT)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert result.returncode == 0
    lines = shown.decode().split("\r")
    status = [line for line in lines if "overloads" in line]
    assert len(status) >= 2, shown  # four times a second, rewritten in place (two even on a busy machine)
    assert all(" dBFS" in line and "load" in line and "xruns" in line and "latency" in line
               and "codec none" in line and "strength 1.0" in line and "hearing restored" in line
               for line in status)
    assert lines[-1] == "\x1b[K"  # cleared before the summary
    assert "gapfill live:" in result.stdout
