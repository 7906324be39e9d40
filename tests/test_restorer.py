"""The Restorer processor, for the pass-through engine and the shipped model + gate + completion phase:
true latency, block-size invariance, reset, no allocation, no compilation after prepare(), the boundary.
(Clean input of every kind comes out bit for bit: test_bypass.py.)"""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba.core.registry import CPUDispatcher

from conftest import ENGINES
from realtime.engine.config import load_config
from realtime.errors import GapfillError
from realtime.engine.restorer import SUPPORTED_RATES_HZ, Restorer

PASSTHROUGH = ENGINES["passthrough"]


def make_restorer(overrides, rate=48_000, channels=2, max_block=4096) -> Restorer:
    restorer = Restorer.from_config(None, overrides)
    restorer.prepare(rate, channels, max_block)
    return restorer


def run_in_blocks(restorer: Restorer, signal: np.ndarray, sizes) -> np.ndarray:
    """Feed signal (C, n) in blocks of the given sizes (cycled), return the concatenated output."""
    outputs, position, index = [], 0, 0
    while position < signal.shape[1]:
        size = min(sizes[index % len(sizes)], signal.shape[1] - position)
        outputs.append(restorer.process(signal[:, position : position + size]))
        position += size
        index += 1
    return np.concatenate(outputs, axis=1)


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, samples))).astype(np.float32)


def compiled_signatures() -> dict[str, int]:
    """Compiled specialisations of every Numba kernel of gapfill loaded so far: 'module.name' -> count."""
    counts = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("realtime"):
            for attribute, value in vars(module).items():
                if isinstance(value, CPUDispatcher):
                    counts[f"{name}.{attribute}"] = len(value.overloads)
    return counts


def test_passthrough_reproduces_input_delayed_by_latency_bit_for_bit():
    restorer = make_restorer(PASSTHROUGH)
    signal = noise(2, 48_000)
    output = np.concatenate([run_in_blocks(restorer, signal, [4096]), restorer.flush()], axis=1)
    latency = restorer.latency_samples
    assert output.shape == (2, signal.shape[1] + latency)
    np.testing.assert_array_equal(output[:, latency:], signal)
    assert not output[:, :latency].any()


@pytest.mark.parametrize("rate", SUPPORTED_RATES_HZ)
def test_impulse_comes_out_exactly_latency_samples_later(engine, rate):
    restorer = make_restorer(engine, rate=rate, channels=1, max_block=512)
    length = restorer.latency_samples + rate // 4
    impulse_at = rate // 10
    signal = np.zeros((1, length), np.float32)
    signal[0, impulse_at] = 1.0
    output = run_in_blocks(restorer, signal, [512])[0]
    assert int(np.argmax(np.abs(output))) == impulse_at + restorer.latency_samples
    np.testing.assert_array_equal(output[restorer.latency_samples :], signal[0, : length - restorer.latency_samples])


@pytest.mark.parametrize("stereo", ["mid_side", "channels"])
def test_stereo_impulse_stays_in_its_channel_latency_samples_later(engine, stereo):
    restorer = make_restorer({**engine, "model": {**engine.get("model", {}), "stereo": stereo}}, max_block=512)
    length = restorer.latency_samples + 12_000
    signal = np.zeros((2, length), np.float32)
    signal[0, 4_800] = 1.0
    output = run_in_blocks(restorer, signal, [512])
    assert int(np.argmax(np.abs(output[0]))) == 4_800 + restorer.latency_samples
    assert output[0, 4_800 + restorer.latency_samples] == 1.0
    assert not output[1].any()


@pytest.mark.parametrize("rate", [8_000, 11_025, 16_000, 44_100, 96_000, 192_000])
def test_resampled_passthrough_returns_the_input_bit_for_bit(rate):
    restorer = make_restorer(PASSTHROUGH, rate=rate, channels=2, max_block=1000)
    t = np.arange(rate) / rate
    tone = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1234.5 * t)])
    signal = tone.astype(np.float32)
    output = np.concatenate([run_in_blocks(restorer, signal, [1000, 3, 77]), restorer.flush()], axis=1)
    latency = restorer.latency_samples
    np.testing.assert_array_equal(output[:, latency:], signal)
    assert sum(restorer.latency_parts.values()) == latency


BLOCK_SIZES = st.lists(st.sampled_from([0, 1, 2, 7, 64, 255, 256, 257, 441, 1023, 4096, 5000])
                       | st.integers(0, 4096), min_size=1, max_size=12)


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_any_block_sizes_give_the_same_output_as_one_block(engine, rate):
    signal = noise(2, 12_000, seed=1)
    whole = make_restorer(engine, rate=rate, max_block=signal.shape[1])
    reference = whole.process(signal)
    chunked = make_restorer(engine, rate=rate, max_block=4096)

    @settings(max_examples=25 if engine is PASSTHROUGH else 8, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sizes=BLOCK_SIZES)
    def check(sizes):
        chunked.reset()
        if not any(sizes):
            sizes = sizes + [1]
        np.testing.assert_allclose(run_in_blocks(chunked, signal, sizes), reference, rtol=0, atol=1e-6)

    check()


def test_outputs_collected_in_a_list_equal_the_one_block_result(engine):
    signal = noise(2, 9000, seed=2)
    reference = make_restorer(engine, max_block=9000).process(signal)
    restorer = make_restorer(engine, max_block=1000)
    collected = [restorer.process(signal[:, start : start + 700]) for start in range(0, 9000, 700)]
    np.testing.assert_allclose(np.concatenate(collected, axis=1), reference, rtol=0, atol=1e-6)


def test_a_block_longer_than_max_block_is_processed_in_pieces(engine):
    signal = noise(2, 5000, seed=3)
    reference = run_in_blocks(make_restorer(engine, max_block=256), signal, [256])
    np.testing.assert_allclose(make_restorer(engine, max_block=256).process(signal), reference, rtol=0, atol=1e-6)


def test_float64_fortran_strided_and_read_only_blocks_equal_float32(engine):
    signal = noise(2, 6000, seed=4)
    reference = make_restorer(engine, max_block=1000).process(signal)
    read_only = signal.copy()
    read_only.flags.writeable = False
    variants = {
        "float64": signal.astype(np.float64),
        "fortran": np.asfortranarray(signal),
        "strided": np.repeat(signal, 2, axis=1)[:, ::2],
        "read-only": read_only,
    }
    for name, variant in variants.items():
        restorer = make_restorer(engine, max_block=1000)
        np.testing.assert_allclose(run_in_blocks(restorer, variant, [1000, 333]), reference, rtol=0, atol=1e-6,
                                   err_msg=name)


def test_out_receives_the_output_and_may_be_the_block_itself(engine):
    signal = noise(2, 4000, seed=5)
    reference = make_restorer(engine, max_block=4000).process(signal)
    restorer = make_restorer(engine, max_block=4000)
    out = np.zeros((2, 4000), np.float32)
    assert restorer.process(signal, out=out) is out
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)
    restorer.reset()
    in_place = signal.copy()
    restorer.process(in_place, out=in_place)
    np.testing.assert_allclose(in_place, reference, rtol=0, atol=1e-6)


def test_zero_length_block_returns_nothing_and_changes_nothing():
    restorer = make_restorer(PASSTHROUGH)
    signal = noise(2, 3000)
    a = run_in_blocks(restorer, signal, [1000])
    restorer.reset()
    outputs = []
    for start in range(0, 3000, 1000):
        assert restorer.process(signal[:, :0]).shape == (2, 0)
        outputs.append(restorer.process(signal[:, start : start + 1000]))
    assert np.array_equal(np.concatenate(outputs, axis=1), a)


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_reset_forgets_the_past(engine, rate):
    restorer = make_restorer(engine, rate=rate)
    signal = noise(2, 9000)
    first = run_in_blocks(restorer, signal, [333])
    run_in_blocks(restorer, noise(2, 5000, seed=9), [1000])
    restorer.reset()
    assert np.array_equal(run_in_blocks(restorer, signal, [333]), first)


def test_non_finite_samples_are_replaced_and_counted():
    restorer = make_restorer(PASSTHROUGH, channels=1)
    signal = noise(1, 6000)
    signal[0, [10, 2000, 2001]] = [np.nan, np.inf, -np.inf]
    output = np.concatenate([run_in_blocks(restorer, signal, [500]), restorer.flush()], axis=1)
    assert np.all(np.isfinite(output))
    assert restorer.nonfinite_count == 3
    expected = np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0)
    np.testing.assert_array_equal(output[:, restorer.latency_samples :], expected)


@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_process_with_out_allocates_no_buffers_in_steady_state(engine, rate):
    restorer = make_restorer(engine, rate=rate, max_block=512)
    signal = noise(2, 512)
    out = np.zeros_like(signal)
    for _ in range(50):  # past the first hops
        restorer.process(signal, out=out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for size in [512, 1, 100, 511, 256] * 20:
        restorer.process(signal[:, :size], out=out[:, :size])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) < 2048, grown[:5]
    # and no single allocation the size of an audio buffer happened in between
    assert all(s.size < 1024 or s.count_diff <= 0 for s in after.compare_to(before, "lineno")), grown[:5]


@pytest.mark.parametrize("rate", [48_000, 44_100, 22_050])
def test_nothing_compiles_after_prepare_whatever_the_block(engine, rate):
    """Every block size 1..max_block, then C-, F-ordered, strided, float64 and read-only blocks of the
    full size: no Numba kernel gains a compiled specialisation after prepare()."""
    max_block = 300
    restorer = make_restorer(engine, rate=rate, max_block=max_block)
    before = compiled_signatures()
    signal = noise(2, max_block * (max_block + 1) // 2, seed=6)
    position = 0
    for size in range(1, max_block + 1):
        restorer.process(signal[:, position : position + size])
        position += size
    whole = np.ascontiguousarray(signal[:, :max_block])
    read_only = whole.copy()
    read_only.flags.writeable = False
    out = np.zeros_like(whole)
    for block in (whole, np.asfortranarray(whole), signal[:, : 2 * max_block : 2], whole.astype(np.float64),
                  read_only):
        restorer.process(block)
        restorer.process(block, out=out)
    restorer.flush()
    after = compiled_signatures()
    assert after == before, {name: (before.get(name), count) for name, count in after.items()
                             if before.get(name) != count}


def test_bad_blocks_are_one_line_errors_naming_what_was_given():
    restorer = make_restorer(PASSTHROUGH, channels=2, max_block=64)
    cases = [(np.zeros((1, 10), np.float32), "got float32 (1, 10) array"),
             (np.zeros((2, 10), np.int16), "got int16 (2, 10) array"),
             (np.zeros(10, np.float32), "got float32 (10,) array"),
             ([[0.0], [0.0]], "got list")]
    for block, given in cases:
        with pytest.raises(ValueError, match=r"block must be a \(2, n\) float32 or float64 array") as caught:
            restorer.process(block)
        assert given in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"out must be a writable \(2, 10\) float32 array, got float64"):
        restorer.process(np.zeros((2, 10), np.float32), out=np.zeros((2, 10)))


def test_prepare_rejects_unsupported_rate_and_channels():
    restorer = Restorer.from_config(None, PASSTHROUGH)
    for rate in (7_999, 37_800, 384_000):
        with pytest.raises(GapfillError, match=f"sample rate {rate} Hz is not supported"):
            restorer.prepare(rate, 1, 256)
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
