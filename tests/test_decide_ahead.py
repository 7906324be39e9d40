"""Deciding from the stream's head (`Restorer.decide_ahead`, `gate.decide_ahead_s`): input at hand ahead of
time (whole signals, files, compensated pipes) is restored from its first sample on, the same for any host
blocks; clean input still comes out bit for bit; live input never waits for it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.signals import program_material
from evaluation.chains import Encoding, degrade
from realtime.engine.restorer import Restorer, compensated
from test_bypass import CLEAN_ENGINES, RATES, at_rate, clean_inputs, restorer_for
from test_restorer import BLOCK_SIZES, run_in_blocks


@pytest.fixture(scope="module")
def damaged() -> np.ndarray:
    """A stereo music clip through LAME at 32 kbit/s, decoded: (2, n) float32 at 48 kHz, 4 s (longer than
    the default head of 3 s)."""
    _, decoded, _ = degrade(program_material(4.0, 48_000, 2, seed=5), Encoding("lameenc", 32, channels=2))
    return np.ascontiguousarray(decoded, np.float32)


def in_blocks(restorer: Restorer, x: np.ndarray, sizes: list[int], compensate: bool = True) -> np.ndarray:
    """`compensated` over x (C, n) cut into blocks of the given sizes (cycled), concatenated."""
    def blocks():
        position, index = 0, 0
        while position < x.shape[1]:
            size = sizes[index % len(sizes)]
            yield x[:, position : position + size]
            position, index = position + size, index + 1
    return np.concatenate([out.copy() for out in compensated(restorer, blocks(), compensate)], axis=1)


def test_damaged_input_is_restored_from_its_first_hop(damaged):
    ahead = restorer_for("shipped", 48_000, 2)
    y = ahead.restore(damaged, 48_000)
    report = ahead.codec_report()
    assert report["engaged_after_s"] <= 2 * ahead.hop / 48_000 and report["restored_share"] > 0.95
    waiting = Restorer.from_config(None, {"gate": {"decide_ahead_s": 0.0}})
    z = waiting.restore(damaged, 48_000)
    decided_s = waiting.codec_report()["engaged_after_s"]
    assert decided_s >= 0.2                                  # without the head, the gate decides later ...
    start = slice(0, int(decided_s * 48_000) - waiting.fft_size)     # the first restored frame reaches back
    assert np.abs(z[:, start] - damaged[:, start]).max() < 1e-6     # ... and passes the start as it is
    assert np.abs(y[:, start] - damaged[:, start]).max() > 1e-3


@pytest.mark.parametrize("rate", RATES)
def test_any_block_sizes_give_what_restore_gives(damaged, rate):
    x = at_rate(damaged, rate)
    reference = restorer_for("shipped", rate, 2).restore(x, rate)
    restorer = restorer_for("shipped", rate, 2, max_block=1000)

    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sizes=BLOCK_SIZES)
    def check(sizes):
        sizes = [size for size in sizes if size] or [1]
        np.testing.assert_allclose(in_blocks(restorer, x, sizes), reference, rtol=0, atol=1e-6)

    check()


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("engine", CLEAN_ENGINES)
def test_clean_input_of_every_kind_is_restored_bit_for_bit(engine, rate):
    for kind, x in clean_inputs(rate).items():
        restorer = restorer_for(engine, rate, x.shape[0])
        np.testing.assert_array_equal(restorer.restore(x, rate), x, err_msg=kind)
        assert not restorer.codec_report()["engaged"], kind


def test_without_a_head_restore_is_the_stream_as_it_comes(damaged):
    restorer = Restorer.from_config(None, {"gate": {"decide_ahead_s": 0.0}})
    restored = restorer.restore(damaged, 48_000, max_block=1000)
    restorer.reset()
    streamed = np.concatenate([run_in_blocks(restorer, damaged, [1000]), restorer.flush()], axis=1)
    np.testing.assert_array_equal(restored, streamed[:, restorer.latency_samples :])


def test_a_signal_shorter_than_the_head_is_decided_from_all_of_it(damaged):
    short = np.ascontiguousarray(damaged[:, : 48_000 // 2])
    restorer = restorer_for("shipped", 48_000, 2)
    whole = restorer.restore(short, 48_000)
    assert whole.shape == short.shape and np.isfinite(whole).all()
    restorer.decide_ahead(short)
    streamed = np.concatenate([run_in_blocks(restorer, short, [777]), restorer.flush()], axis=1)
    np.testing.assert_allclose(whole, streamed[:, restorer.latency_samples :], rtol=0, atol=1e-6)


@pytest.mark.parametrize("compensate", [True, False])
def test_only_compensated_streams_read_the_head_before_the_first_output(damaged, compensate):
    """A live chain (no delay compensation) gets each block's output before the next block is read."""
    restorer = restorer_for("shipped", 48_000, 2, max_block=1000)
    read = []

    def blocks():
        for start in range(0, damaged.shape[1], 1000):
            read.append(start)
            yield damaged[:, start : start + 1000]

    next(compensated(restorer, blocks(), compensate))
    head_blocks = -(-restorer.decide_ahead_samples // 1000)
    assert len(read) == (head_blocks if compensate else 1)
