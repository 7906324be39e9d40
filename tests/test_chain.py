"""The engine as a chain of stages: one protocol, latency as their sum, a read-only observer; the bypass
stage's output is the input itself where synthesis reconstructs it to float rounding."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FRAMINGS
from realtime.engine.chain import HOP_CLOCK
from realtime.engine.restorer import Restorer
from realtime.engine.stage import HopBuffers
from realtime.engine.stft import stft_offline
from realtime.engine.windows import synthesis_span

SIGNAL_ORDER = ("analysis", "level", "model", "gate", "phase", "strength", "synthesis", "bypass", "ceiling")


class Tap:
    """Records the order of the hook calls and copies of (every channel of) buffers after chosen stages."""

    def __init__(self, keep: dict[str, str]) -> None:
        self.keep = keep                                      # stage -> name of the HopBuffers attribute
        self.calls: list[tuple[str, str]] = []
        self.kept: dict[str, list[np.ndarray]] = {stage: [] for stage in keep}

    def stage_started(self, stage: str) -> None:
        self.calls.append(("started", stage))

    def stage_finished(self, stage: str, buffers: HopBuffers) -> None:
        self.calls.append(("finished", stage))
        if stage in self.keep:
            self.kept[stage].append(np.array(getattr(buffers, self.keep[stage])))


def _noise(channels: int, samples: int) -> np.ndarray:
    return (np.random.default_rng(5).standard_normal((channels, samples)) * 0.1).astype(np.float32)


def test_every_stage_implements_the_protocol_in_signal_order():
    restorer = Restorer.from_config(None)
    assert tuple(restorer.stages) == SIGNAL_ORDER
    for name, stage in restorer.stages.items():
        assert stage.name == name
        assert isinstance(stage.latency_samples, int) and stage.latency_samples >= 0
        for method in ("prepare", "reset", "process_hop"):
            assert callable(getattr(stage, method)), (name, method)
    with pytest.raises(TypeError):
        restorer.stages["gate"] = None                        # a read-only view


@pytest.mark.parametrize("overrides", [None, {"phase": {"lookahead_frames": 0}},
                                       {"stft": {"fft_size": 2048, "hop": 512, "window": "hann"},
                                        "model": {"path": "passthrough"}},
                                       {"stft": FRAMINGS["asymmetric"], "model": {"path": "passthrough"}}])
def test_latency_is_the_hop_clock_plus_the_sum_over_the_stages(overrides):
    restorer = Restorer.from_config(None, overrides)
    restorer.prepare(48_000, 1, 256)
    parts = restorer.chain.latency_parts
    span = synthesis_span(restorer.fft_size, restorer.hop, restorer.config.window)
    assert parts[HOP_CLOCK] == restorer.hop - 1
    assert parts["synthesis"] == span - restorer.hop
    assert parts["model"] == restorer.hop * restorer.model.lookahead_frames
    assert parts["phase"] == restorer.hop * restorer.config.phase["lookahead_frames"]
    assert restorer.latency_samples == sum(parts.values()) == restorer.engine_latency_samples
    assert restorer.latency_parts["stft"] == span - 1


def test_observer_sees_every_stage_of_every_hop_in_order_and_changes_nothing():
    audio = _noise(2, 48_000)
    plain = Restorer.from_config(None).restore(audio, 48_000)
    restorer = Restorer.from_config(None)
    tap = Tap({})
    restorer.observe(tap)
    observed = restorer.restore(audio, 48_000)
    np.testing.assert_array_equal(observed, plain)
    hops = len(tap.calls) // (2 * len(SIGNAL_ORDER))
    assert hops >= audio.shape[1] // restorer.hop
    expected = [(event, stage) for stage in SIGNAL_ORDER for event in ("started", "finished")] * hops
    assert tap.calls == expected
    restorer.observe(None)
    tap.calls.clear()
    restorer.restore(audio, 48_000)
    assert tap.calls == []


def test_observed_analysis_is_the_offline_stft_and_the_bypass_hops_are_the_output():
    """At 48 kHz mono with the pass-through model and decoded phase, what the observer sees after analysis
    is stft_offline's frame for frame; the hops after the bypass stage are the output, which is the input
    delayed by the latency bit for bit, and synthesis's own hops are that to float rounding."""
    audio = _noise(1, 24_000)
    restorer = Restorer.from_config(None, {"model": {"path": "passthrough"}, "phase": {"method": "decoded"}})
    restorer.prepare(48_000, 1, 4096)
    tap = Tap({"analysis": "newest_magnitudes", "synthesis": "hop_out", "bypass": "hop_out"})
    restorer.observe(tap)
    output = restorer.process(audio)
    frames = np.abs(stft_offline(audio[0], restorer.fft_size, restorer.hop, restorer.config.window))
    seen = np.array(tap.kept["analysis"])[:, 0]
    np.testing.assert_allclose(seen, frames[: len(seen)], atol=1e-4)
    # each finalised hop is read out one sample ahead: hop j covers output samples j*H + H - 1 ...
    start = restorer.hop - 1
    bypassed = np.concatenate(tap.kept["bypass"], axis=1)[0]
    np.testing.assert_array_equal(bypassed[: output.shape[1] - start], output[0, start:])
    synthesised = np.concatenate(tap.kept["synthesis"], axis=1)[0]
    np.testing.assert_allclose(synthesised[: output.shape[1] - start], output[0, start:], rtol=0, atol=1e-6)
    assert not np.array_equal(synthesised, bypassed)         # the rounding the bypass removes
    latency = restorer.latency_samples
    np.testing.assert_array_equal(output[0, latency:], audio[0, :-latency])


def test_a_stereo_pair_reaches_the_model_as_mid_and_side_and_the_input_hop_stays_as_it_came():
    left = _noise(1, 12_000)[0]
    audio = np.stack([left, 0.5 * left])
    restorer = Restorer.from_config(None, {"model": {"path": "passthrough"}, "phase": {"method": "decoded"}})
    restorer.prepare(48_000, 2, 4096)
    tap = Tap({"analysis": "newest_magnitudes", "bypass": "hop_in"})
    restorer.observe(tap)
    restorer.process(audio)
    seen = np.array(tap.kept["analysis"])
    for channel, share in enumerate((0.75, 0.25)):                # mid (L + R) / 2, side (L - R) / 2
        frames = np.abs(stft_offline(share * left, restorer.fft_size, restorer.hop, restorer.config.window))
        np.testing.assert_allclose(seen[:, channel], frames[: len(seen)], rtol=0, atol=1e-4)
    hops = np.concatenate(tap.kept["bypass"], axis=1)
    np.testing.assert_array_equal(hops, audio[:, : hops.shape[1]])
