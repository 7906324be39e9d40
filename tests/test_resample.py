"""Tests for realtime/resample.py: filter spec, block-size invariance, exact round-trip delay, no allocation."""

import tracemalloc
from collections.abc import Callable
from math import lcm

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.engine.resample import MODEL_RATE_HZ as MODEL_RATE
from realtime.engine.resample import StreamingResampler, prototype_filter, round_trip_padding
from realtime.engine.restorer import SUPPORTED_RATES_HZ

HOST_RATES = [rate for rate in SUPPORTED_RATES_HZ if rate != MODEL_RATE]


def _stream(resampler: StreamingResampler, x: np.ndarray, chunks: list[int]) -> np.ndarray:
    """Feed x (channels, sum(chunks)) in the given chunk sizes; concatenated output (channels, m)."""
    outs, start = [], 0
    for n in chunks:
        expected = resampler.output_samples(n)
        y = resampler.process(x[:, start : start + n])
        assert y.shape == (x.shape[0], expected) and expected <= resampler.max_output(n)
        outs.append(y.copy())
        start += n
    return np.concatenate(outs, axis=1)


def _sines(rng: np.random.Generator, max_hz: float, count: int = 12) -> Callable[[np.ndarray], np.ndarray]:
    """Band-limited test signal: t (seconds, array) -> sum of `count` unit-peak-bounded sines below max_hz."""
    freqs = rng.uniform(20.0, max_hz, count)
    phases = rng.uniform(0.0, 2 * np.pi, count)
    return lambda t: np.sin(2 * np.pi * freqs * t[..., None] + phases).sum(axis=-1) / count


@pytest.mark.parametrize("quality, min_stop_db", [("high", 90.0), ("low", 55.0)])
@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_prototype_passband_and_stopband(host_rate: int, quality: str, min_stop_db: float) -> None:
    taps = prototype_filter(host_rate, MODEL_RATE, quality)
    np.testing.assert_array_equal(taps, prototype_filter(MODEL_RATE, host_rate, quality))
    rate, low = lcm(host_rate, MODEL_RATE), min(host_rate, MODEL_RATE)
    nfft = 1 << int(np.ceil(np.log2(16 * len(taps))))
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(taps, nfft)) + 1e-30)
    freqs = np.fft.rfftfreq(nfft, 1 / rate)
    assert np.abs(gain_db[freqs <= 0.45 * low]).max() <= 0.1
    assert gain_db[freqs >= 0.5 * low].max() <= -min_stop_db


@pytest.mark.parametrize("in_rate, out_rate", [(44100, 48000), (48000, 44100), (16000, 48000)])
def test_block_size_invariance(in_rate: int, out_rate: int) -> None:
    chunk = st.one_of(st.sampled_from([0, 1, 7, 441, 4096]), st.integers(0, 700))

    @settings(max_examples=25, deadline=None)
    @given(chunks=st.lists(chunk, min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1))
    def check(chunks: list[int], seed: int) -> None:
        total = sum(chunks)
        x = np.random.default_rng(seed).standard_normal((2, total)).astype(np.float32)
        streamed = StreamingResampler(in_rate, out_rate)
        streamed.prepare(2, 4096)
        whole = StreamingResampler(in_rate, out_rate)
        whole.prepare(2, max(total, 1))
        y_streamed = _stream(streamed, x, chunks)
        y_whole = _stream(whole, x, [total])
        # Every output whose newest input floor(j*q/p) has arrived is out: ceil(p*total/q) samples.
        assert y_streamed.shape == y_whole.shape == (2, -(-streamed.up * total // streamed.down))
        np.testing.assert_allclose(y_streamed, y_whole, rtol=0, atol=1e-6)

    check()


def test_reset_restarts_from_silence() -> None:
    x = np.random.default_rng(1).standard_normal((1, 3000)).astype(np.float32)
    r = StreamingResampler(48000, 44100)
    r.prepare(1, 1000)
    first = _stream(r, x, [1000, 1000, 1000])
    r.reset()
    np.testing.assert_array_equal(_stream(r, x, [1000, 1000, 1000]), first)


@pytest.mark.parametrize(
    "host_rate, engine_delay, quality, tolerance",
    [(rate, delay, "high", 1e-3) for rate in HOST_RATES for delay in (0, 1023)] + [(44100, 517, "low", 5e-3)],
)
def test_round_trip_is_exact_integer_delay(host_rate: int, engine_delay: int, quality: str, tolerance: float) -> None:
    pad, total = round_trip_padding(host_rate, engine_delay, quality)
    signal = _sines(np.random.default_rng(host_rate + engine_delay), 0.4 * min(host_rate, MODEL_RATE))
    settle = 600  # host samples after the onset transient
    t = np.arange(total + settle + 4000)
    x = signal(t / host_rate).astype(np.float32)[None, :]
    block = 256
    to_model = StreamingResampler(host_rate, MODEL_RATE, quality)
    to_host = StreamingResampler(MODEL_RATE, host_rate, quality)
    to_model.prepare(1, block)
    to_host.prepare(1, max(engine_delay + pad, to_model.max_output(block)))
    outs = [to_host.process(np.zeros((1, engine_delay + pad), np.float32)).copy()]  # the 48 kHz delay line
    for start in range(0, x.shape[1], block):
        outs.append(to_host.process(to_model.process(x[:, start : start + block])).copy())
    y = np.concatenate(outs, axis=1)[0, : len(t)]
    expected = signal((t - total) / host_rate)
    error = np.abs(y[total + settle :] - expected[total + settle :]).max()
    assert error < tolerance * np.abs(x).max()


def test_round_trip_at_model_rate_is_engine_delay() -> None:
    assert round_trip_padding(MODEL_RATE, 1023) == (0, 1023)


@pytest.mark.parametrize("in_rate, out_rate", [(48000, 44100), (44100, 48000)])
@pytest.mark.parametrize("freq_hz", [997.0, 19000.0])
def test_sine_frequency_amplitude_and_delay(in_rate: int, out_rate: int, freq_hz: float) -> None:
    r = StreamingResampler(in_rate, out_rate)
    x = np.sin(2 * np.pi * freq_hz * np.arange(20000) / in_rate).astype(np.float32)[None, :]
    r.prepare(1, 1000)
    y = _stream(r, x, [1000] * 20)[0]
    delay = float(r.delay_in_output_samples)
    expected = np.sin(2 * np.pi * freq_hz * (np.arange(len(y)) - delay) / out_rate)
    steady = slice(int(2 * delay) + 10, None)
    assert np.abs(y[steady] - expected[steady]).max() < 1e-4


@pytest.mark.parametrize(
    "in_rate, out_rate, freq_hz", [(48000, 44100, 22500.0), (48000, 16000, 8500.0), (48000, 16000, 20000.0),
                                   (96000, 48000, 30000.0), (48000, 22050, 11500.0)]
)
def test_tone_above_new_nyquist_is_rejected(in_rate: int, out_rate: int, freq_hz: float) -> None:
    r = StreamingResampler(in_rate, out_rate)
    x = np.sin(2 * np.pi * freq_hz * np.arange(24000) / in_rate).astype(np.float32)[None, :]
    r.prepare(1, x.shape[1])
    y = r.process(x)[0]
    steady = y[int(2 * r.delay_in_output_samples) + 10 :]
    assert 20 * np.log10(np.sqrt(np.mean(steady**2)) / np.sqrt(0.5)) <= -80.0


def test_process_allocates_nothing_and_returns_a_view() -> None:
    r = StreamingResampler(44100, 48000)
    r.prepare(2, 512)
    x = np.random.default_rng(2).standard_normal((2, 512)).astype(np.float32)
    first = r.process(x)
    assert np.shares_memory(first, r.process(x))
    tracemalloc.start()
    try:
        r.process(x)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            r.process(x)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A (2, 512) float32 buffer is 4 KiB; a call's transient Python objects are a few hundred bytes.
    assert peak - before < 1024 and current - before < 256


def _prepared(in_rate: int, out_rate: int, channels: int, max_in_block: int) -> StreamingResampler:
    r = StreamingResampler(in_rate, out_rate)
    r.prepare(channels, max_in_block)
    return r


@pytest.mark.parametrize(
    "make",
    [
        lambda: StreamingResampler(48000, 48000),
        lambda: StreamingResampler(44100, 48000, "ultra"),
        lambda: StreamingResampler(44100, 48000).process(np.zeros((1, 8), np.float32)),  # not prepared
        lambda: _prepared(44100, 48000, 1, 64).process(np.zeros((2, 8), np.float32)),
        lambda: _prepared(44100, 48000, 1, 64).process(np.zeros((1, 65), np.float32)),
        lambda: _prepared(44100, 48000, 1, 64).process(np.zeros((1, 8), np.float64)),
    ],
    ids=["same-rate", "unknown-quality", "not-prepared", "wrong-channels", "block-too-long", "float64"],
)
def test_invalid_use_raises(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()
