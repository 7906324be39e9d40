"""The model input level stage (realtime/level.py) and its place in the engine."""

import numpy as np
import pytest

from realtime.engine.level import LEVEL_TIME_S, InputLevel, undo_gain
from realtime.engine.stage import HopBuffers
from realtime.engine.restorer import Restorer
from realtime.engine.windows import stft_windows

N, HOP, RATE = 1024, 256, 48_000
BINS = N // 2 + 1


def frame_at(level_db: float, channels: int = 1) -> np.ndarray:
    """(channels, BINS) f32 magnitudes whose frame level is level_db (one bin carries all the power)."""
    mag = np.zeros((channels, BINS), np.float32)
    mag[:, 40] = N / 4 * 10 ** (level_db / 20)
    return mag


def stage(target_db: float = -35.0, max_boost_db: float = 30.0, channels: int = 1) -> InputLevel:
    level = InputLevel(target_db, max_boost_db, -70.0, RATE, N, HOP)
    level.prepare(channels)
    return level


@pytest.mark.parametrize("level_db, expected_db", [(-50.0, 15.0), (-35.0, 0.0), (-10.0, 0.0), (-75.0 + 10, 30.0)])
def test_gain_brings_the_level_to_the_target_within_the_limits(level_db, expected_db):
    level = stage()
    scaled = np.zeros((1, BINS), np.float32)
    for _ in range(10):
        level.scale_in(frame_at(level_db), scaled)
    assert level.gain_db == pytest.approx(expected_db, abs=1e-6)
    assert scaled[0, 40] == pytest.approx(frame_at(level_db)[0, 40] * 10 ** (expected_db / 20), rel=1e-6)


def test_estimate_is_divided_by_the_gain_the_input_took():
    level = stage()
    buffers = HopBuffers(1, N, HOP, 0)
    mag = frame_at(-55.0)
    buffers.newest_magnitudes[:] = mag
    level.process_hop(buffers)
    assert buffers.model_gain[0] == pytest.approx(10 ** (level.gain_db / 20)) and level.gain_db > 0
    undo_gain(buffers.model_in, buffers.model_gain)
    np.testing.assert_allclose(buffers.model_in, mag, rtol=1e-6)


def test_silent_frames_leave_the_level_alone_and_the_first_active_frame_sets_it():
    level = stage()
    scaled = np.zeros((1, BINS), np.float32)
    level.scale_in(frame_at(-100.0), scaled)         # below active_db: silence
    assert level.gain_db == 0.0
    level.scale_in(frame_at(-45.0), scaled)
    assert level.gain_db == pytest.approx(10.0, abs=1e-6)
    level.scale_in(frame_at(-100.0), scaled)
    assert level.gain_db == pytest.approx(10.0, abs=1e-6)


def test_level_follows_with_its_time_constant():
    level = stage()
    scaled = np.zeros((1, BINS), np.float32)
    frames = int(LEVEL_TIME_S * RATE / HOP)
    for _ in range(frames):
        level.scale_in(frame_at(-45.0), scaled)
    for _ in range(frames):                          # one time constant at a level 10 dB lower
        level.scale_in(frame_at(-55.0), scaled)
    assert 10.0 + 10.0 * (1 - np.exp(-1)) * 0.95 < level.gain_db < 10.0 + 10.0 * (1 - np.exp(-1)) * 1.05


def test_one_gain_for_all_channels_from_the_loudest():
    level = stage(channels=2)
    mag = np.concatenate([frame_at(-50.0), frame_at(-80.0)])
    scaled = np.zeros_like(mag)
    level.scale_in(mag, scaled)
    assert level.gain_db == pytest.approx(15.0, abs=1e-6)
    np.testing.assert_allclose(scaled / np.maximum(mag, 1e-30), np.where(mag > 0, 10 ** 0.75, 0), rtol=1e-6)


def test_boost_off_and_pass_through_model_leave_the_engine_as_it_was():
    assert not Restorer.from_config(None, {"model": {"max_boost_db": 0.0}}).stages["level"].enabled
    assert not Restorer.from_config(None, {"model": {"path": "passthrough"}}).stages["level"].enabled
    assert Restorer.from_config(None).stages["level"].enabled


def _model_inputs(restorer: Restorer, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((hops, BINS) the magnitudes the engine's model saw, (hops,) the level stage's linear gain at each
    hop) for mono `audio` at 48 kHz."""
    class ModelInputs:
        def __init__(self) -> None:
            self.seen: list[np.ndarray] = []
            self.gains: list[float] = []

        def stage_started(self, stage: str) -> None:
            pass

        def stage_finished(self, stage: str, buffers: HopBuffers) -> None:
            if stage == "model":
                self.seen.append(buffers.model_in[0].copy())
                self.gains.append(float(buffers.model_gain[0]))

    tap = ModelInputs()
    restorer.observe(tap)
    restorer.restore(audio[None, :], RATE)
    restorer.observe(None)
    return np.array(tap.seen), np.array(tap.gains)


def test_the_engine_model_sees_quiet_input_times_the_gain():
    """A -50 dBFS tone over -90 dBFS noise: its frame level is -50 dB plus the analysis window's noise
    bandwidth in bins (N sum w^2 / (sum w)^2: 1.76 dB for Hann, so about -48 dB); once the level has
    settled, the gain is the target minus that level and the model input the analysis magnitudes times it."""
    t = np.arange(RATE * 2) / RATE
    noise = np.random.default_rng(3).standard_normal(t.size) * 10 ** (-90 / 20)
    quiet = (10 ** (-50 / 20) * np.sin(2 * np.pi * 440.0 * t) + noise).astype(np.float32)
    boosted = Restorer.from_config(None)
    plain = Restorer.from_config(None, {"model": {"max_boost_db": 0.0}})
    (seen, gains), (plain_seen, _) = _model_inputs(boosted, quiet), _model_inputs(plain, quiet)
    window = stft_windows(boosted.fft_size, boosted.hop, boosted.config.window)[0]
    frame_level_db = -50.0 + 10 * np.log10(window.size * np.sum(window ** 2) / np.sum(window) ** 2)
    expected_db = boosted.config.model["input_level_db"] - frame_level_db
    settled = slice(len(seen) // 2, len(seen) * 3 // 4)          # before the flush's silence
    assert np.all(np.abs(20 * np.log10(gains[settled]) - expected_db) < 0.5)   # the first frames are partial
    assert abs(boosted.stages["level"].gain_db - expected_db) < 0.5
    ratio = seen[settled].sum(axis=1) / plain_seen[settled].sum(axis=1)
    np.testing.assert_allclose(ratio, gains[settled], rtol=1e-3)
    assert boosted.codec_report()["model_input_gain_db"] == pytest.approx(boosted.stages["level"].gain_db, abs=0.01)
    assert plain.codec_report()["model_input_gain_db"] == 0.0
