"""`gapfill live` while listening (issue 24): A/B between the restored output and the latency-aligned
decoded input, crossfaded without a click and counted, and the strength keys. The stepped core first
(deterministic), then the real CLI on JACK's dummy backend: SIGUSR1 switches within a block and leaves no
step larger than the signal's own; keys on a terminal change the strength and switch A/B. Nothing here
asserts timing (a run with xruns is repeated: its samples cannot be compared)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import termios
import threading
import time

import numpy as np
import pytest

from jack_fixture import (
    PERIOD, RATE, REPO_ROOT, SlowRestorer, gapfill_command, jack_server, play_through_live,  # noqa: F401 - a fixture
)
from realtime.frontends.duplex import FADE_S, DuplexCore
from realtime.frontends.live import STRENGTH_STEP, TerminalKeys, handle_key
from realtime.engine.restorer import Restorer
from test_live import delayed, max_step, passthrough_yaml, tones  # noqa: F401 - a fixture

FADE_SAMPLES = round(FADE_S * RATE)


def stepped_ab(config: str, block: int, blocks: int, switch_at: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, DuplexCore]:
    """Drive a core whose "restored" output is half the input block by block, switching A/B before the
    blocks in `switch_at`; returns (output, the dry input delayed as the core delays it, core)."""
    core = DuplexCore(SlowRestorer(config, 0.5, after_onset=0, slow_blocks=0, sleep_s=0.0), RATE, 2, block,
                      worker_priority=None)
    x = tones(blocks * block, 2)
    out = np.zeros_like(x)
    for b in range(blocks):
        if b in switch_at:
            core.toggle_bypass()
        core.exchange(x[b * block : (b + 1) * block], out[b * block : (b + 1) * block])
        core.work()
    return out, delayed(x, core.delay_samples, len(x)), core


@pytest.mark.parametrize("block", [256, 64])
def test_ab_switch_crossfades_over_a_few_ms_to_the_aligned_dry_signal_and_back(passthrough_yaml, block):
    """A switch starts with the next block and is linear over FADE_S: within that block when the block is
    at least as long (256), over several blocks when it is shorter (64)."""
    blocks = 160 * 256 // block
    on, off = blocks // 4, blocks // 2
    out, dry, core = stepped_ab(passthrough_yaml, block, blocks, (on, off))
    wet = 0.5 * dry
    start, back = on * block, off * block
    np.testing.assert_array_equal(out[start + FADE_SAMPLES - 1 : back], dry[start + FADE_SAMPLES - 1 : back])
    np.testing.assert_allclose(out[back + FADE_SAMPLES :], wet[back + FADE_SAMPLES :], atol=1e-5)
    np.testing.assert_allclose(out[start - 4 * block : start], wet[start - 4 * block : start], atol=1e-5)
    share = np.arange(1, FADE_SAMPLES + 1) / FADE_SAMPLES                 # of the dry path, sample by sample
    fade = slice(start, start + FADE_SAMPLES)
    np.testing.assert_allclose(out[fade], wet[fade] + share[:, None] * (dry[fade] - wet[fade]), atol=1e-5)
    assert max_step(out) <= max_step(dry) + 1e-3
    assert core.switches == 2 and core.overloads == 0 and FADE_SAMPLES <= 256


def test_keys_step_the_strength_and_switch_ab(passthrough_yaml):
    core = DuplexCore(Restorer.from_config(passthrough_yaml), RATE, 2, 256, worker_priority=None)
    restorer = core.restorer
    for key in "+-" + "-" * 12:
        handle_key(key, core, restorer)
    assert restorer.strength == 0.0                                       # clamped at 0
    for key in "=+x?":                                                    # '=' is '+' without shift
        handle_key(key, core, restorer)
    assert restorer.strength == pytest.approx(2 * STRENGTH_STEP) and core.switches == 0
    for key in "aB ":
        handle_key(key, core, restorer)
    assert core.bypass is True and core.switches == 3


def test_keys_are_read_only_from_this_process_foreground_terminal():
    read_end, write_end = os.pipe()
    main, terminal = os.openpty()
    try:
        with os.fdopen(os.dup(read_end)) as pipe, os.fdopen(os.dup(terminal)) as other_terminal:
            assert not TerminalKeys(pipe).active
            assert not TerminalKeys(other_terminal).active                # not this process's terminal
            assert not TerminalKeys(None).active and TerminalKeys(None).read(0.0) == ""
    finally:
        for fd in (read_end, write_end, main, terminal):
            os.close(fd)


# -- the real CLI on JACK's dummy backend -----------------------------------------------------------------
def _send_after(seconds: float, signum: int):
    def send(process: subprocess.Popen) -> None:
        time.sleep(seconds)
        process.send_signal(signum)

    return send


def test_sigusr1_switches_to_the_aligned_decoded_input_within_a_block_without_a_click(jack_server, tmp_path,
                                                                                     passthrough_yaml):
    x = tones(3 * RATE, 2)
    stats_path = tmp_path / "stats.json"
    for _ in range(3):                                                    # samples only compare without xruns
        y, cycles_seen, status, stdout, stderr = play_through_live(
            jack_server, x, stats_path, "--config", passthrough_yaml, slow="0.5,0,0,0",
            while_playing=_send_after(1.0, signal.SIGUSR1))
        assert status == 0, stderr
        stats = json.loads(stats_path.read_text())
        if cycles_seen.all() and stats["input_overflows"] == stats["output_underflows"] == 0:
            break
    else:
        pytest.fail(f"xruns in three runs, the recordings cannot be compared: {stats}")
    assert stats["ab_switches"] == 1 and stats["heard_at_end"] == "decoded"
    assert "A/B switches: 1 (heard decoded at the end)" in stdout
    dry = delayed(x, stats["latency"]["total_samples"], len(y))
    wet = 0.5 * dry
    telling = np.abs(dry).min(axis=1) > 0.05                              # where restored and dry differ
    is_dry = np.all(np.abs(y - dry) <= 1e-5, axis=1)
    is_wet = np.all(np.abs(y - wet) <= 1e-5, axis=1)
    last_wet = int(np.nonzero(telling & is_wet)[0][-1])
    dry_from = int(np.nonzero(telling & ~is_dry)[0][-1]) + 1              # dry for good from here
    assert last_wet > RATE // 2 and dry_from < len(x)                     # the switch is in the recording
    assert dry_from - last_wet <= PERIOD                                  # switched within one block
    around = y[last_wet - PERIOD : dry_from + PERIOD]
    assert max_step(around) <= max_step(dry) + 1e-3                       # no step larger than the signal's


def test_keys_on_a_terminal_change_the_strength_and_switch_ab(jack_server, tmp_path, passthrough_yaml):
    stats_path = tmp_path / "stats.json"
    main, terminal = os.openpty()
    process = subprocess.Popen(
        gapfill_command("live", "--config", passthrough_yaml, "--strength", "0.5", "--stats-json", str(stats_path)),
        stdin=terminal, stderr=terminal, stdout=subprocess.PIPE, text=True, env=jack_server.env, cwd=REPO_ROOT,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # its own terminal
    os.close(terminal)
    shown = bytearray()
    reader = threading.Thread(target=_read_all, args=(main, shown), daemon=True)
    reader.start()
    try:
        _wait_for(shown, lambda text: "keys: a = A/B" in text, process)
        os.write(main, b"++-a")
        _wait_for(shown, lambda text: "strength 0.6  hearing decoded" in text, process)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        reader.join(timeout=10)
        os.close(main)
    assert process.returncode == 0, bytes(shown).decode(errors="replace")
    stats = json.loads(stats_path.read_text())
    assert (stats["strength"], stats["ab_switches"], stats["heard_at_end"]) == (0.6, 1, "decoded")
    assert "A/B switches: 1 (heard decoded at the end); strength 0.6" in stdout


def _read_all(fd: int, into: bytearray) -> None:
    """Append what the terminal shows to `into` until it closes."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into += chunk


def _wait_for(shown: bytearray, seen, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Wait until `seen(text shown so far)`; fail if gapfill exits first or nothing comes in `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not seen(bytes(shown).decode(errors="replace")):
        assert process.poll() is None, f"gapfill exited: {bytes(shown).decode(errors='replace')}"
        assert time.monotonic() < deadline, f"not shown: {bytes(shown).decode(errors='replace')[-2000:]}"
        time.sleep(0.05)
