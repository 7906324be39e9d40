"""The ceiling stage: what the restoration adds never takes a sample past the ceiling; nothing else moves."""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest

from realtime.engine.ceiling import CeilingStage, limit
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.stage import HopBuffers
from realtime import Restorer
from test_strength import band_limited

HOP = 128


def run(stage: CeilingStage, delayed: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """delayed, restored (C, n) f32, n a multiple of HOP -> the stage's output hops, joined."""
    channels, n = delayed.shape
    buffers = HopBuffers(channels, 1024, HOP, 0)
    stage.prepare(channels)
    out = []
    for start in range(0, n, HOP):
        buffers.hop_delayed[:] = delayed[:, start:start + HOP]
        buffers.hop_out[:] = restored[:, start:start + HOP]
        stage.process_hop(buffers)
        out.append(buffers.hop_out.copy())
    return np.concatenate(out, axis=1)


def loud_restoration(seconds: float = 0.5, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A stereo input peaking at 0.95 and an added band (3-12 kHz noise bursts) that takes the sum to ~1.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * MODEL_RATE_HZ) // HOP * HOP
    t = np.arange(n) / MODEL_RATE_HZ
    delayed = np.stack([0.95 * np.sin(2 * np.pi * 220 * t), 0.9 * np.sin(2 * np.pi * 330 * t + 1)])
    spectrum = np.fft.rfft(rng.standard_normal((2, n)))
    f = np.fft.rfftfreq(n, 1 / MODEL_RATE_HZ)
    band = np.fft.irfft(spectrum * ((f > 3000) & (f < 12000)), n)
    band *= 0.5 / np.abs(band).max() * (np.sin(2 * np.pi * 3 * t) > 0)
    return delayed.astype(np.float32), (delayed + band).astype(np.float32)


def test_the_restoration_never_takes_a_sample_past_the_ceiling() -> None:
    delayed, restored = loud_restoration()
    assert np.abs(restored).max() > 1.3
    out = run(CeilingStage(0.0), delayed, restored)
    assert np.abs(out).max() <= 1.0
    lower = run(CeilingStage(-3.0), delayed, restored)
    assert np.all(np.abs(lower) <= np.maximum(np.float32(10 ** (-3 / 20)), np.abs(delayed)))


def test_one_gain_in_0_to_1_on_what_was_added_in_every_channel() -> None:
    """out = delayed + g (restored - delayed), the same g for both channels, 0 <= g <= 1."""
    delayed, restored = loud_restoration()
    out = run(CeilingStage(0.0), delayed, restored).astype(np.float64)
    added = restored.astype(np.float64) - delayed
    big = np.all(np.abs(added) > 0.05, axis=0)
    gains = (out - delayed)[:, big] / added[:, big]
    np.testing.assert_allclose(gains[0], gains[1], atol=1e-5)
    assert gains.min() >= -1e-6 and gains.max() <= 1 + 1e-6 and gains.min() < 0.8


def test_only_the_samples_past_the_ceiling_change_and_they_reach_it() -> None:
    """0.05 added to 0.9 everywhere, one sample at 1.4: that sample alone comes out at the ceiling, every
    other one as it was, bit for bit."""
    n = 16 * HOP
    delayed = np.full((1, n), 0.9, np.float32)
    restored = np.full((1, n), 0.95, np.float32)
    peak = 5 * HOP + 100
    restored[0, peak] = 1.4
    out = run(CeilingStage(0.0), delayed, restored)
    assert np.flatnonzero(out[0] != restored[0]).tolist() == [peak] and out[0, peak] == 1.0


def test_the_input_own_overs_pass_and_are_not_made_larger() -> None:
    """Where |delayed| > ceiling, the output stays within |delayed|; an input over the ceiling with nothing
    added passes bit for bit."""
    n = 16 * HOP
    t = np.arange(n) / MODEL_RATE_HZ
    delayed = (1.2 * np.sin(2 * np.pi * 100 * t))[None].astype(np.float32)
    same = run(CeilingStage(0.0), delayed, delayed.copy())
    np.testing.assert_array_equal(same, delayed)
    restored = (delayed + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    out = run(CeilingStage(0.0), delayed, restored)
    assert np.all(np.abs(out) <= np.maximum(1.0, np.abs(delayed)))


def test_under_the_ceiling_and_off_nothing_changes_bit_for_bit() -> None:
    delayed, restored = loud_restoration()
    quiet_delayed, quiet_restored = 0.5 * delayed, 0.5 * restored
    np.testing.assert_array_equal(run(CeilingStage(0.0), quiet_delayed, quiet_restored),
                                  quiet_restored)
    np.testing.assert_array_equal(run(CeilingStage(None), delayed, restored), restored)


@pytest.mark.parametrize("rate", [MODEL_RATE_HZ, 44_100])
def test_the_engine_output_stays_under_the_ceiling_where_its_input_does(rate: int) -> None:
    """A loud band-limited signal (test_strength's noise low-passed at 6 kHz, brought to a peak of 0.99: the
    cliff a codec leaves) that the shipped model restores, under a ceiling of -6 dB: with the ceiling off many
    output samples pass max(ceiling, |input|) (input aligned; 1503 at 48 kHz, 1473 at 44.1 kHz), with it on
    none does, at the model rate and through the resampling wrapper."""
    x = band_limited(1, 3.0, rate)
    x *= np.float32(0.99 / np.abs(x).max())
    n = x.shape[1]
    ceiling = np.float32(10 ** (-6 / 20))

    def over(ceiling_db: float | None) -> int:
        restorer = Restorer.from_config(None, {"model": {"ceiling_db": ceiling_db}})
        restorer.prepare(rate, 1, 4096)
        out = np.concatenate([restorer.process(x[:, i:i + 4096]) for i in range(0, n, 4096)], axis=1)
        assert restorer.codec_report()["engaged"]
        aligned = out[:, restorer.latency_samples:]
        return int(np.sum(np.abs(aligned) > np.maximum(ceiling, np.abs(x[:, :aligned.shape[1]]))))

    assert over(None) > 100
    assert over(-6.0) == 0


def test_the_kernel_allocates_no_arrays() -> None:
    """The compiled per-hop kernel calls no Numba allocator (the cached build cannot be inspected)."""
    for signature in limit.signatures:
        fresh = numba.njit(limit.py_func)
        fresh.compile(signature)
        runtime_calls = set(re.findall(r"@(NRT_\w+)", fresh.inspect_llvm(signature)))
        assert not {call for call in runtime_calls if "alloc" in call.lower() or call == "NRT_MemInfo_new"}


def test_the_ceiling_is_in_the_engine_facts() -> None:
    """`gapfill info` (Restorer.describe) says the ceiling: 0 dB by default, None when off."""
    assert Restorer.from_config(None).describe()["ceiling_db"] == 0.0
    assert Restorer.from_config(None, {"model": {"ceiling_db": None}}).describe()["ceiling_db"] is None
