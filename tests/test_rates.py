"""Every supported rate, 8 to 192 kHz, through the front ends: `stream` gives one sample out per sample in
(and n * R / rate with --output-rate R), `restore` keeps the duration (48 kHz out below 44.1 kHz), the
live core delays by the engine's latency plus one block; aligned, with the pass-through engine, whose
output is its input bit for bit at every rate (the bypass; only a change of rate resamples). (The
impulse test of test_restorer.py proves the latency itself at each rate.)"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import stream_file
from realtime.cli.main import main
from realtime.engine.restorer import SUPPORTED_RATES_HZ, Restorer
from realtime.frontends.duplex import DuplexCore

NEW_RATES = (8_000, 11_025, 12_000, 176_400, 192_000)
"""The rates issue 24 added (telephone, LAME's lowest, high-resolution masters)."""


def tones(rate: int, frames: int, channels: int) -> np.ndarray:
    """(frames, channels) float32: one tone per channel, well inside the band of every rate (< 3.6 kHz)."""
    t = np.arange(frames) / rate
    columns = [0.4 * np.sin(2 * np.pi * 700.0 * (c + 1) * t) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def inner(x: np.ndarray, rate: int) -> np.ndarray:
    """x without its first and last 50 ms (the resamplers' onset and end transients)."""
    return x[rate // 20 : len(x) - rate // 20]


@pytest.mark.parametrize("rate", SUPPORTED_RATES_HZ)
def test_stream_gives_one_sample_out_per_sample_in_aligned(rate, passthrough_config, tmp_path):
    frames = int(0.3 * rate) + 17
    x = tones(rate, frames, 2)
    (tmp_path / "in.raw").write_bytes(x.astype("<f4").tobytes())
    restorer = Restorer.from_config(passthrough_config)
    restorer.prepare(rate, 2, 4096)
    result = stream_file(restorer, tmp_path / "in.raw", tmp_path / "out.raw", "f32le", 2)
    y = np.frombuffer((tmp_path / "out.raw").read_bytes(), "<f4").reshape(-1, 2)
    assert result.frames_in == frames and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("rate", [8_000, 11_025, 12_000])
def test_stream_output_rate_48k_from_the_lowest_rates(rate, passthrough_config, run_gapfill):
    frames = int(0.7 * rate) + 13
    x = tones(rate, frames, 1)
    done = run_gapfill("stream", "--rate", str(rate), "--output-rate", "48000", "--channels", "1", "--config",
                       passthrough_config, stdin=x.astype("<f4").tobytes())
    assert done.returncode == 0, done.stderr.decode()
    y = np.frombuffer(done.stdout, "<f4").reshape(-1, 1)
    assert len(y) == (2 * frames * 48_000 + rate) // (2 * rate)  # n * 48000 / rate, half up
    assert np.abs(inner(y, 48_000) - inner(tones(48_000, len(y), 1), 48_000)).max() < 2e-3


@pytest.mark.parametrize("rate", NEW_RATES)
def test_restore_keeps_duration_and_alignment(rate, passthrough_config, tmp_path):
    frames = int(0.4 * rate) + 5
    sf.write(tmp_path / "in.wav", tones(rate, frames, 2), rate, subtype="FLOAT")
    assert main(["restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--config", passthrough_config]) == 0
    y, out_rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert out_rate == (48_000 if rate < 44_100 else rate)
    assert len(y) == (2 * frames * out_rate + rate) // (2 * rate)
    if out_rate == rate:
        np.testing.assert_array_equal(y, sf.read(tmp_path / "in.wav", dtype="float32", always_2d=True)[0])
    else:
        assert np.abs(inner(y, out_rate) - inner(tones(out_rate, len(y), 2), out_rate)).max() < 2e-3


@pytest.mark.parametrize("rate", [8_000, 192_000])
def test_live_core_delays_by_the_engine_latency_plus_one_block(rate, passthrough_config):
    block = 256
    restorer = Restorer.from_config(passthrough_config)
    core = DuplexCore(restorer, rate, 2, block, worker_priority=None)
    assert core.delay_samples == restorer.latency_samples + block
    x = tones(rate, 40 * block + rate // 5, 2)
    x = x[: len(x) // block * block]
    y = np.zeros_like(x)
    for start in range(0, len(x), block):
        core.exchange(x[start : start + block], y[start : start + block])
        core.work()
    delay = core.delay_samples
    np.testing.assert_array_equal(y[delay:], x[: len(x) - delay])
