"""The Restorer processor: exact reconstruction, true latency, block-size invariance, real-time rules."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.config import load_config
from realtime.errors import GapfillError
from realtime.restorer import SUPPORTED_RATES_HZ, Restorer


@pytest.fixture(scope="module")
def passthrough_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "passthrough.yaml"
    path.write_text("model: {path: passthrough}\nphase: {method: decoded}\n")
    return path


def make_restorer(config_path, rate=48_000, channels=2, max_block=4096) -> Restorer:
    restorer = Restorer.from_config(config_path)
    restorer.prepare(rate, channels, max_block)
    return restorer


def run_in_blocks(restorer: Restorer, signal: np.ndarray, sizes) -> np.ndarray:
    """Feed signal (C, n) in blocks of the given sizes (cycled), return the concatenated output."""
    outputs, position, index = [], 0, 0
    while position < signal.shape[1]:
        size = min(sizes[index % len(sizes)], signal.shape[1] - position, restorer.max_block)
        outputs.append(restorer.process(signal[:, position : position + size]).copy())
        position += size
        index += 1
    return np.concatenate(outputs, axis=1)


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, samples))).astype(np.float32)


def test_passthrough_reconstructs_input_delayed_by_latency(passthrough_config):
    restorer = make_restorer(passthrough_config)
    signal = noise(2, 48_000)
    output = np.concatenate([run_in_blocks(restorer, signal, [4096]), restorer.flush()], axis=1)
    latency = restorer.latency_samples
    assert output.shape == (2, signal.shape[1] + latency)
    assert np.max(np.abs(output[:, latency:] - signal)) < 1e-5
    assert np.max(np.abs(output[:, :latency])) < 1e-5


@pytest.mark.parametrize("rate", SUPPORTED_RATES_HZ)
def test_impulse_comes_out_exactly_latency_samples_later(passthrough_config, rate):
    restorer = make_restorer(passthrough_config, rate=rate, channels=1, max_block=512)
    length = restorer.latency_samples + rate // 4
    impulse_at = rate // 10
    signal = np.zeros((1, length), np.float32)
    signal[0, impulse_at] = 1.0
    output = run_in_blocks(restorer, signal, [512])[0]
    assert int(np.argmax(np.abs(output))) == impulse_at + restorer.latency_samples
    if rate == 48_000:
        assert output[impulse_at + restorer.latency_samples] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("rate", [44_100, 16_000, 96_000])
def test_resampled_passthrough_returns_band_limited_input(passthrough_config, rate):
    restorer = make_restorer(passthrough_config, rate=rate, channels=2, max_block=1000)
    t = np.arange(rate) / rate
    tone = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1234.5 * t)])
    signal = tone.astype(np.float32)
    output = np.concatenate([run_in_blocks(restorer, signal, [1000, 3, 77]), restorer.flush()], axis=1)
    latency = restorer.latency_samples
    settled = slice(rate // 10, rate - rate // 10)
    assert np.max(np.abs(output[:, latency:][:, settled] - signal[:, settled])) < 2e-3
    assert sum(restorer.latency_parts.values()) == latency


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.sampled_from([0, 1, 2, 7, 64, 255, 256, 257, 441, 1023, 4096])
                      | st.integers(0, 4096), min_size=1, max_size=12),
       rate=st.sampled_from([48_000, 44_100]))
def test_any_block_sizes_give_the_same_output_as_one_block(passthrough_config, sizes, rate):
    signal = noise(2, 12_000, seed=1)
    whole = make_restorer(passthrough_config, rate=rate, max_block=signal.shape[1])
    reference = whole.process(signal).copy()
    if not any(sizes):
        sizes = sizes + [1]
    chunked = make_restorer(passthrough_config, rate=rate, max_block=4096)
    assert np.allclose(run_in_blocks(chunked, signal, sizes), reference, atol=1e-6)


def test_zero_length_block_returns_nothing_and_changes_nothing(passthrough_config):
    restorer = make_restorer(passthrough_config)
    signal = noise(2, 3000)
    a = run_in_blocks(restorer, signal, [1000])
    restorer.reset()
    outputs = []
    for start in range(0, 3000, 1000):
        assert restorer.process(signal[:, :0]).shape == (2, 0)
        outputs.append(restorer.process(signal[:, start : start + 1000]).copy())
    assert np.array_equal(np.concatenate(outputs, axis=1), a)


def test_reset_forgets_the_past(passthrough_config):
    restorer = make_restorer(passthrough_config, rate=44_100)
    signal = noise(2, 9000)
    first = run_in_blocks(restorer, signal, [333])
    restorer.reset()
    assert np.array_equal(run_in_blocks(restorer, signal, [333]), first)


def test_non_finite_samples_are_replaced_and_counted(passthrough_config):
    restorer = make_restorer(passthrough_config, channels=1)
    signal = noise(1, 6000)
    signal[0, [10, 2000, 2001]] = [np.nan, np.inf, -np.inf]
    output = np.concatenate([run_in_blocks(restorer, signal, [500]), restorer.flush()], axis=1)
    assert np.all(np.isfinite(output))
    assert restorer.nonfinite_count == 3
    expected = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    assert np.max(np.abs(output[:, restorer.latency_samples :] - expected)) < 1e-5


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_process_allocates_no_buffers_in_steady_state(passthrough_config, rate):
    restorer = make_restorer(passthrough_config, rate=rate, max_block=512)
    signal = noise(2, 512)
    for _ in range(50):  # warm up: Numba compilation, first-call caches
        restorer.process(signal)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for size in [512, 1, 100, 511, 256] * 20:
        restorer.process(signal[:, :size])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) < 2048, grown[:5]
    # and no single allocation the size of an audio buffer happened in between
    assert all(s.size < 1024 or s.count_diff <= 0 for s in after.compare_to(before, "lineno")), grown[:5]


def test_prepare_rejects_unsupported_rate_and_channels(passthrough_config):
    restorer = Restorer.from_config(passthrough_config)
    with pytest.raises(GapfillError, match="sample rate 11025 Hz is not supported"):
        restorer.prepare(11_025, 1, 256)
    with pytest.raises(GapfillError, match="channels are not supported"):
        restorer.prepare(48_000, 0, 256)
    with pytest.raises(GapfillError, match="channels are not supported"):
        restorer.prepare(48_000, 9, 256)


def test_default_latency_is_within_32_ms_at_48k():
    restorer = Restorer(load_config(None))
    restorer.prepare(48_000, 1, 256)
    assert restorer.latency_samples == restorer.engine_latency_samples
    assert restorer.latency_samples / 48_000 <= 0.032
    assert sum(restorer.latency_parts.values()) == restorer.latency_samples


def test_block_of_wrong_shape_is_refused(passthrough_config):
    restorer = make_restorer(passthrough_config, channels=2, max_block=64)
    with pytest.raises(ValueError):
        restorer.process(np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError):
        restorer.process(np.zeros((2, 65), np.float32))
