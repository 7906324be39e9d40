"""Clean input comes out unchanged, bit for bit (issue 23): where the engine changes nothing, its output is
the input delayed by `latency_samples`, at 48 kHz (the bypass stage) and at other rates (the resampling
wrapper's bypass), whatever the host blocks; strength 0 is that on damaged input too. Damaged input is
still restored: wherever a hop is not bypassed the output is synthesis's own. The strength stage's
`unmodified` flag and the bypass stage, unit by unit."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from scipy.signal import butter, resample_poly, sosfiltfilt

from benchmarks.signals import program_material
from conftest import ENGINES, REPO_ROOT
from evaluation.chains import Encoding, degrade, noise_floor, quantize
from realtime import restore
from realtime.engine.bypass import BypassStage
from realtime.engine.chain import HOP_CLOCK
from realtime.engine.resample import round_trip_padding
from realtime.engine.resampled import Resampled
from realtime.engine.restorer import Restorer
from realtime.engine.stage import HopBuffers
from realtime.engine.strength import UNMODIFIED_ULPS, StrengthStage
from test_restorer import BLOCK_SIZES, run_in_blocks

RATES = (48_000, 44_100)
CLEAN_ENGINES = ("shipped", "other_framing")
IRREGULAR_BLOCKS = [1, 7, 256, 441, 1023, 4096, 300, 2, 1000]
SPEECH = REPO_ROOT / "tests" / "data" / "hedgewars-default-speech-48k.flac"
EPS = float(np.finfo(np.float32).eps)


def at_rate(x: np.ndarray, rate: int) -> np.ndarray:
    """x (C, n) at 48 kHz, at `rate` (scipy's polyphase resampler), float32."""
    if rate == 48_000:
        return x
    return resample_poly(x, rate // 300, 160, axis=1).astype(np.float32)


def clean_inputs(rate: int) -> dict[str, np.ndarray]:
    """Clean (C, n) float32 signals at `rate` of every kind issue 23 names."""
    rng = np.random.default_rng(23)
    music = program_material(2.0, rate, 1, seed=1)
    n = music.shape[1]
    return {
        "float": music,
        "16-bit": quantize(music, "s16", rng),
        "dithered 16-bit": quantize(music, "s16_tpdf", rng),
        "-30 dB dithered": quantize(music * np.float32(10 ** (-30 / 20)), "s16_tpdf", rng),
        "white floor -75 dBFS": music + noise_floor(1, n, -75.0, "white", rng),
        "pink floor -75 dBFS, 16-bit": quantize(music + noise_floor(1, n, -75.0, "pink", rng), "s16", rng),
        "speech": quantize(at_rate(sf.read(SPEECH, dtype="float32")[0][None, : 2 * 48_000], rate), "s16", rng),
        "stereo pair": program_material(2.0, rate, 2, seed=2),
        "low-passed onset out of digital silence": lowpassed_onset(rate),
    }


def lowpassed_onset(rate: int) -> np.ndarray:
    """(1, n) float32: 0.5 s of exact zeros, then music low-passed at 20 kHz by a zero-phase order-16
    Butterworth, whose ringing reaches back into the silence through subnormal levels (frames that are all
    far below float32's resolution of their own largest bin)."""
    music = program_material(1.5, rate, 1, seed=3).astype(np.float64)
    signal = np.concatenate([np.zeros((1, rate // 2)), music], axis=1)
    return sosfiltfilt(butter(16, 20_000, fs=rate, output="sos"), signal, axis=1).astype(np.float32)


def delayed(x: np.ndarray, latency: int) -> np.ndarray:
    """x (C, n) delayed by `latency` samples, silence before, same length."""
    out = np.zeros_like(x)
    out[:, latency:] = x[:, : x.shape[1] - latency]
    return out


def restorer_for(engine: str, rate: int, channels: int, max_block: int = 4096, strength: float | None = None):
    restorer = Restorer.from_config(None, ENGINES[engine])
    if strength is not None:
        restorer.set_strength(strength)
    restorer.prepare(rate, channels, max_block)
    return restorer


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("engine", CLEAN_ENGINES)
def test_clean_input_of_every_kind_comes_out_delayed_bit_for_bit(engine, rate):
    for kind, x in clean_inputs(rate).items():
        restorer = restorer_for(engine, rate, x.shape[0])
        y = run_in_blocks(restorer, x, IRREGULAR_BLOCKS)
        np.testing.assert_array_equal(y, delayed(x, restorer.latency_samples), err_msg=kind)
        assert not restorer.codec_report()["engaged"], kind


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("engine", CLEAN_ENGINES)
def test_clean_input_is_exact_for_any_block_sizes(engine, rate):
    x = program_material(1.5, rate, 2, seed=3)
    restorer = restorer_for(engine, rate, 2)
    expected = delayed(x, restorer.latency_samples)

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(sizes=BLOCK_SIZES)
    def check(sizes):
        restorer.reset()
        np.testing.assert_array_equal(run_in_blocks(restorer, x, sizes if any(sizes) else sizes + [1]), expected)

    check()


@pytest.fixture(scope="module")
def damaged() -> np.ndarray:
    """A stereo music clip through LAME at 32 kbit/s, decoded: (2, n) float32 at 48 kHz."""
    _, decoded, _ = degrade(program_material(3.0, 48_000, 2, seed=5), Encoding("lameenc", 32, channels=2))
    return np.ascontiguousarray(decoded, np.float32)


@pytest.mark.parametrize("rate", RATES)
def test_strength_0_passes_damaged_input_bit_for_bit(damaged, rate):
    x = at_rate(damaged, rate)
    np.testing.assert_array_equal(restore(x, rate, strength=0.0), x)
    restorer = restorer_for("shipped", rate, 2, max_block=1000, strength=0.0)
    np.testing.assert_array_equal(run_in_blocks(restorer, x, IRREGULAR_BLOCKS), delayed(x, restorer.latency_samples))
    assert restorer.codec_report()["engaged"]                 # the gate restores; strength 0 undoes it


class HopTap:
    """Per hop: synthesis's output hop, the final output hop, the input hop and whether it was bypassed."""

    def __init__(self) -> None:
        self.synthesised: list[np.ndarray] = []
        self.output: list[np.ndarray] = []
        self.inputs: list[np.ndarray] = []
        self.bypassed: list[int] = []

    def stage_started(self, stage: str) -> None:
        pass

    def stage_finished(self, stage: str, buffers: HopBuffers) -> None:
        if stage == "synthesis":
            self.synthesised.append(buffers.hop_out.copy())
        elif stage == "bypass":
            self.output.append(buffers.hop_out.copy())
            self.inputs.append(buffers.hop_in.copy())
            self.bypassed.append(int(buffers.bypassed[0]))


def test_damaged_input_is_restored_and_only_unmodified_hops_are_bypassed(damaged):
    """With the gate engaged the output is synthesis's own hop for hop, as before the bypass existed; the
    hops bypassed (before the gate engages) are the input hop of the stages' latency before."""
    restorer = restorer_for("shipped", 48_000, 2)
    tap = HopTap()
    restorer.observe(tap)
    y = run_in_blocks(restorer, damaged, IRREGULAR_BLOCKS)
    report = restorer.codec_report()
    assert report["engaged"]
    delay_hops = (restorer.engine_latency_samples - restorer.chain.latency_parts[HOP_CLOCK]) // restorer.hop
    for k, bypassed in enumerate(tap.bypassed):
        if bypassed:
            source = tap.inputs[k - delay_hops] if k >= delay_hops else np.zeros_like(tap.inputs[0])
            np.testing.assert_array_equal(tap.output[k], source)
            np.testing.assert_allclose(tap.synthesised[k], source, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(tap.output[k], tap.synthesised[k])
    restoring = int(report["engaged_after_s"] * 48_000 / restorer.hop) + delay_hops + 2
    assert all(tap.bypassed[:restoring - 10])                 # unchanged until the gate engages ...
    assert not any(tap.bypassed[restoring : int(2.6 * 48_000 / restorer.hop)])   # ... then restored (to the gap)
    settled = restoring * restorer.hop + restorer.latency_samples
    assert np.abs(y[:, settled:] - delayed(damaged, restorer.latency_samples)[:, settled:]).max() > 1e-3


def test_estimated_phases_are_never_bypassed():
    """rtpghi re-estimates every phase: no frame of sound is unmodified, so no hop with sound is bypassed."""
    x = program_material(1.0, 48_000, 1, seed=6)
    restorer = Restorer.from_config(None, {"model": {"path": "passthrough"}, "phase": {"method": "rtpghi"}})
    restorer.prepare(48_000, 1, 4096)
    tap = HopTap()
    restorer.observe(tap)
    restorer.process(x)
    assert not any(tap.bypassed[10:])


def test_the_bypass_and_the_ceiling_come_last_and_add_no_latency():
    restorer = restorer_for("shipped", 44_100, 1)
    assert tuple(restorer.stages)[-2:] == ("bypass", "ceiling")
    assert restorer.chain.latency_parts["bypass"] == restorer.chain.latency_parts["ceiling"] == 0
    assert "bypass" not in restorer.latency_parts and "ceiling" not in restorer.latency_parts
    others = sum(stage.latency_samples for stage in restorer.stages.values())
    assert restorer.engine_latency_samples == restorer.hop - 1 + others


# -- the strength stage's flag -------------------------------------------------------------------
def spectrum(rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal((2, 513)) + 1j * rng.standard_normal((2, 513))).astype(np.complex64)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_unmodified_flag_is_1_exactly_while_every_bin_is_the_decoded_one_within_rounding(strength):
    stage = StrengthStage(strength, 1024, 0)
    buffers = HopBuffers(2, 1024, 256, 0)
    stage.prepare(2)
    rng = np.random.default_rng(7)
    decoded = spectrum(rng)
    decoded[1, :20] = 0
    buffers.spectra[0] = decoded

    def flag(phased: np.ndarray) -> int:
        buffers.phased[...] = phased
        stage.process_hop(buffers)
        return int(buffers.unmodified[0])

    assert flag(decoded) == 1
    rounded = decoded * np.complex64(np.exp(1j * 2 * EPS))     # a phase 2 ulps off, as completion's
    assert flag(rounded) == 1
    peak = float(np.abs(decoded[0]).max())
    changed = decoded.copy()
    changed[0, 300] += np.float32(4 * UNMODIFIED_ULPS * EPS * peak)   # 4x the rounding the frame allows (2x at s 0.5)
    assert flag(changed) == (1 if strength == 0.0 else 0)
    filled = decoded.copy()
    filled[1, 5] = np.complex64(4 * UNMODIFIED_ULPS * EPS * np.abs(decoded[1]).max())  # a zero bin given that
    assert flag(filled) == (1 if strength == 0.0 else 0)
    rounding = decoded.copy()
    rounding[0, 400] += np.float32(UNMODIFIED_ULPS * EPS * peak / 2)  # within it: a bin far below the peak
    assert flag(rounding) == 1                                         # may not keep ulps of its own size
    subnormal = decoded * np.complex64(1e-40)                          # a frame at subnormal levels, its
    buffers.spectra[0] = subnormal                                     # bins rounded by one subnormal step
    assert flag(subnormal + np.complex64(np.finfo(np.float32).smallest_subnormal)) == 1
    buffers.spectra[0] = decoded
    assert flag(spectrum(rng)) == (1 if strength == 0.0 else 0)


def test_bypass_stage_replaces_the_output_hop_once_every_overlapping_frame_was_unmodified():
    stage = BypassStage(hop=4, span=12, delay_samples=8)       # 3 frames overlap a hop; the output trails 2 hops
    buffers = HopBuffers(1, 16, 4, 0)
    stage.prepare(1)
    flags = [1, 1, 0, 1, 1, 1, 1, 0, 1]
    for k, unmodified in enumerate(flags):
        buffers.hop_in[...] = np.arange(4) + 10 * k
        buffers.hop_out[...] = -1.0
        buffers.unmodified[0] = unmodified
        stage.process_hop(buffers)
        expected = all(([1, 1] + flags)[k : k + 3])           # the silent past counts as unmodified
        assert buffers.bypassed[0] == expected, k
        source = np.arange(4) + 10 * (k - 2) if k >= 2 else np.zeros(4)
        np.testing.assert_array_equal(buffers.hop_out[0], source if expected else -1.0)
    with pytest.raises(ValueError, match="whole hops"):
        BypassStage(hop=4, span=12, delay_samples=6)


# -- the resampling wrapper's bypass -------------------------------------------------------------
class HalvedDelay:
    """A model-rate processor for the wrapper: its input delayed by `latency_samples`, exact in the first
    half of every `period` output samples and halved (changed) in the second half."""

    def __init__(self, latency_samples: int, period: int) -> None:
        self.latency_samples, self.period = latency_samples, period

    def prepare(self, channels: int, max_block: int) -> None:
        self.exact = np.zeros((1, max_block), np.float32)
        self.line = np.zeros((channels, self.latency_samples), np.float32)

    def reset(self) -> None:
        self.line[...] = 0
        self.position = 0

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        n = block.shape[1]
        joined = np.concatenate([self.line, block], axis=1)
        out[...] = joined[:, :n]
        self.line[...] = joined[:, n:]
        exact = (np.arange(self.position, self.position + n) % self.period) < self.period // 2
        out[:, ~exact] *= 0.5
        self.exact[0, :n] = exact
        self.position += n


def wrapped(inner: HalvedDelay, rate: int, x: np.ndarray, sizes: list[int]) -> tuple[Resampled, np.ndarray]:
    """`inner` wrapped at `rate`, prepared for blocks of 1000, run over x (C, n) in blocks of `sizes` (cycled)."""
    wrapper = Resampled(inner, rate)
    wrapper.prepare(x.shape[0], 1000)
    y = np.zeros_like(x)
    position, index = 0, 0
    while position < x.shape[1]:
        size = min(sizes[index % len(sizes)], x.shape[1] - position)
        wrapper.process(x[:, position : position + size], y[:, position : position + size])
        position, index = position + size, index + 1
    return wrapper, y


@pytest.mark.parametrize("rate", [44_100, 16_000])
def test_resampled_output_is_the_input_where_the_inner_chain_is_exact_and_the_resampled_output_elsewhere(rate):
    """Output samples whose down-resampler support (after the pad) was exact for the whole crossfade before
    them are the host input of `latency_samples` before, bit for bit; those that read only changed samples,
    with not one exact support in the crossfade before them, are what the wrapper gives of an inner chain
    never exact; between them, crossfades."""
    period, latency_48k = 9_600, 1279                          # 0.1 s exact, 0.1 s changed, at 48 kHz
    x = program_material(1.0, rate, 2, seed=8)
    wrapper, y = wrapped(HalvedDelay(latency_48k, period), rate, x, [1000, 1, 441, 7])
    never_exact = wrapped(HalvedDelay(latency_48k, 1), rate, x, [1000])[1]
    down = wrapper.downsampler
    pad = round_trip_padding(rate, latency_48k)[0]
    newest = (np.arange(x.shape[1]) - wrapper.margin) * down.down // down.up - pad   # inner sample indices
    inner = np.arange(newest.min() - down.taps_per_phase, newest.max() + 1)
    changed_before = np.cumsum((inner >= 0) & (inner % period >= period // 2))      # pre-stream: exact
    changed_in_support = (changed_before[newest - inner[0]]
                          - changed_before[newest - down.taps_per_phase - inner[0]])
    fade = np.ones(wrapper.fade_samples)
    steady_exact = np.convolve(changed_in_support > 0, fade)[: x.shape[1]] == 0
    steady_changed = ((np.convolve(changed_in_support == 0, fade)[: x.shape[1]] == 0)
                      & (changed_in_support == down.taps_per_phase))    # crossfaded, and no exact input read
    assert steady_exact.mean() > 0.4 and steady_changed.mean() > 0.3
    np.testing.assert_array_equal(y[:, steady_exact], delayed(x, wrapper.latency_samples)[:, steady_exact])
    np.testing.assert_array_equal(y[:, steady_changed], never_exact[:, steady_changed])
    assert np.abs(y[:, steady_changed] - delayed(x, wrapper.latency_samples)[:, steady_changed]).max() > 0.05
    crossfades = ~(steady_exact | steady_changed)
    assert crossfades.sum() <= 2 * 10 * (wrapper.fade_samples + down.taps_per_phase * rate // 48_000 + 2)
