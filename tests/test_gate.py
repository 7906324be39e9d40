"""CodecGate: finds a codec band limit relative to the signal (any gain, any floor), from damage_from_hz up
only with codec damage under it (a clean source's own cliff passes; less where no sample rate's band ends),
or codec damage the model is confident of; passes full-band input unchanged, fills only above the detected
cutoff, in deep holes and in bins the model finds codec-made."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine.config import load_config
from realtime.engine.gate import ATTACK_FRAMES, DECIDE_FRAMES, HOLD_FRAMES, HOLE_RAMP_DB, CodecGate
from realtime.engine.model_files import GATE_CALIBRATION

DEFAULTS = {**load_config(None).gate, **GATE_CALIBRATION}
"""The default gate settings with the calibration these tests' confidences are made for (model v1's, the
values a model without calibration metadata gets), whichever model is shipped."""
F = 513
FULL_SCALE = 256.0                           # |rfft| of a full-scale sine, N = 1024, Hann
CUT_BIN = 224                                # 10.5 kHz, a 22.05 kHz file's band edge: above damage_from_hz
LENIENT_CUT_BIN = 178                        # 8.34 kHz, LAME 32 kbit/s mono: in the lenient range
LOWPASS_8K_BIN = 171                         # 8.0 kHz: a clean source low-passed there, under that range
LENIENT_SHARE = DEFAULTS["lenient_damage_fraction"] * DEFAULTS["damage_share"]
"""The codec damage share a cliff in the lenient range needs (with these tests' calibration)."""
LOW_CUT_BIN = 117                            # 5.5 kHz, LAME 32 kbit/s stereo: below it
HOPS_PER_S = 48_000 / 256
WAIT_FRAMES = max(DECIDE_FRAMES, round(DEFAULTS["damage_wait_s"] * HOPS_PER_S))
HALF_SECOND = 94                             # hops of 256 samples at 48 kHz


def _frames(count: int, cut_bin: int | None = None, gain_db: float = 0.0, floor_db: float | None = None,
            seed: int = 0) -> np.ndarray:
    """(count, 1, F) f32 magnitudes like speech or music: a falling spectrum whose level comes and goes
    (syllables, notes) with random detail; from cut_bin up, a steady floor of floor_db per bin (dB re
    full scale; None: exact zeros), as a codec leaves it."""
    rng = np.random.default_rng(seed)
    k = np.arange(F)
    envelope = 10 ** (rng.uniform(-25, 0, (count, 1, 1)) / 20)
    shape = FULL_SCALE * 10 ** (-20 / 20) / (1 + k / 20.0) ** 1.2
    m = envelope * shape * rng.rayleigh(0.8, (count, 1, F)) * 10 ** (gain_db / 20)
    if cut_bin is not None:
        floor = 0.0 if floor_db is None else FULL_SCALE * 10 ** (floor_db / 20)
        m[:, :, cut_bin:] = floor * rng.rayleigh(0.8, (count, 1, F - cut_bin))
    return m.astype(np.float32)


def _gate(channels: int = 1) -> CodecGate:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(channels)
    return gate


def _run(gate: CodecGate, frames: np.ndarray, predicted: np.ndarray | None = None,
         confidence: np.ndarray | None = None) -> np.ndarray:
    """Feed (T, C, F) frames (with one predicted and one confidence frame (C, F) for all; default: the
    frame itself and 0); returns the gate's outputs (T, C, F)."""
    out = np.zeros_like(frames)
    none = np.zeros(frames.shape[1:], np.float32) if confidence is None else np.ascontiguousarray(confidence)
    for t, frame in enumerate(frames):
        pred = frame if predicted is None else predicted
        gate.process(np.ascontiguousarray(frame), np.ascontiguousarray(pred), none, out[t])
    return out


def _established(damage_share: float) -> int:
    """The active frame from which a constant codec damage share under a cliff above damage_from_hz counts:
    where it makes up for damage_wait_s."""
    return max(DECIDE_FRAMES, int(np.ceil(DEFAULTS["damage_share"] * WAIT_FRAMES / damage_share)))


def _no_confidence(channels: int = 1) -> np.ndarray:
    return np.zeros((channels, F), np.float32)


def _codec_damage(channels: int = 1, cut_bin: int = CUT_BIN, share: float = 0.05) -> np.ndarray:
    """(C, F) confidence of a model that finds codec-made bins (holes) under a codec's cutoff: 1 on every
    1/share-th bin below the evidence window's end (damage_margin_hz under cut_bin), 0 elsewhere."""
    conf = np.zeros((channels, F), np.float32)
    end = cut_bin - int(DEFAULTS["damage_margin_hz"] * 1024 / 48_000) - 4
    conf[:, : end : int(round(1 / share))] = 1.0
    return conf


def _empty_band_above(cut_bin: int = CUT_BIN, channels: int = 1) -> np.ndarray:
    """(C, F) confidence of a model that finds only the empty band above a cliff codec-made."""
    conf = np.zeros((channels, F), np.float32)
    conf[:, cut_bin:F - 1] = 1.0
    return conf


def test_full_band_input_passes_bit_exact() -> None:
    gate = _gate()
    frames = _frames(600)
    wrong = np.ascontiguousarray(frames[0] * 3.0 + 1.0)               # a wildly wrong model
    out = _run(gate, frames, wrong)
    np.testing.assert_array_equal(out, frames)
    report = gate.report()
    assert report["engaged"] is False and report["cutoff_hz"] is None and report["restored_share"] == 0.0
    assert np.all(gate.activity == 0.0)


FLOORS = {"zeros": None, "s16": -123.0, "s16_tpdf": -118.0, "noise-75dBFS": -97.0}   # dB per bin
CASES = [(gain, name) for gain in (-30.0, 0.0, 6.0) for name in FLOORS
         if not (gain == -30.0 and name == "noise-75dBFS")]   # there the noise covers the band edge itself


@pytest.mark.parametrize(("gain_db", "floor"), CASES, ids=[f"{g:+g}dB-{f}" for g, f in CASES])
def test_a_band_limit_is_found_at_any_gain_over_any_floor(gain_db: float, floor: str) -> None:
    floor_db = FLOORS[floor]
    gate = _gate()
    frames = _frames(900, CUT_BIN, gain_db, floor_db)
    _run(gate, frames, confidence=_codec_damage())
    report = gate.report()
    assert report["engaged"] and report["engaged_now"]
    assert report["engaged_after_s"] <= (WAIT_FRAMES + HOLD_FRAMES) / HOPS_PER_S + 0.1   # quiet frames wait
    assert abs(report["cutoff_hz"] - CUT_BIN * 48_000 / 1024) <= 200.0
    assert report["restored_share"] > 0.7


def test_a_steady_noise_floor_close_under_the_signal_counts_as_a_band_limit() -> None:
    """A floor only ~20 dB under the band below the cutoff (quiet input over dither or hiss): its mean drop
    alone is under cliff_db, but the bands above are as steady as noise, which earns floor_bonus_db."""
    frames = _frames(300, CUT_BIN, floor_db=-70.0)
    without = CodecGate({**DEFAULTS, "floor_bonus_db": 0.0}, 48_000, 1024, 256)
    _run(without, frames, confidence=_codec_damage())
    assert not without.report()["engaged"] and without.cliff_db[0] < DEFAULTS["cliff_db"]
    gate = _gate()
    _run(gate, frames, confidence=_codec_damage())
    report = gate.report()
    assert report["engaged"] and report["engaged_after_s"] <= (WAIT_FRAMES + HOLD_FRAMES) / HOPS_PER_S
    assert abs(report["cutoff_hz"] - CUT_BIN * 48_000 / 1024) <= 200.0


def test_steady_full_band_noise_is_not_a_band_limit() -> None:
    """Hiss everywhere is as steady as a codec floor, but it has no drop: it passes unchanged."""
    frames = (FULL_SCALE * 10 ** (-60 / 20) * np.random.default_rng(4).rayleigh(0.8, (600, 1, F))).astype(np.float32)
    gate = _gate()
    out = _run(gate, frames)
    np.testing.assert_array_equal(out, frames)
    assert not gate.report()["engaged"] and gate.cliff_db[0] < DEFAULTS["cliff_db"]


@pytest.mark.parametrize("floor", ["zeros", "s16_tpdf"])
def test_a_clean_source_whose_own_band_ends_in_a_cliff_passes_bit_exact(floor: str) -> None:
    """A 22.05 kHz file or a low-passed recording: the same steady cliff as a codec's, but the model finds
    nothing codec-made under it (only the empty band above, as it does above any cliff): neither detector
    engages, whatever the model predicts."""
    gate = _gate()
    frames = _frames(1200, CUT_BIN, floor_db=FLOORS[floor])
    wrong = np.ascontiguousarray(frames[0] * 3.0 + 1.0)
    out = _run(gate, frames, wrong, _empty_band_above())
    np.testing.assert_array_equal(out, frames)
    report = gate.report()
    assert gate.cliff_db[0] >= DEFAULTS["cliff_db"] and report["damage_share"] == 0.0
    assert not report["engaged"] and report["codec_made_share"] == 0.0


def test_with_damage_share_zero_a_cliff_alone_counts() -> None:
    gate = CodecGate({**DEFAULTS, "damage_share": 0.0}, 48_000, 1024, 256)
    _run(gate, _frames(300, CUT_BIN), confidence=_empty_band_above())
    report = gate.report()
    assert report["band_limit_now"]
    assert report["engaged_after_s"] == pytest.approx((DECIDE_FRAMES + HOLD_FRAMES - 1) / HOPS_PER_S, abs=1e-3)


@pytest.mark.parametrize("cut_bin", [LENIENT_CUT_BIN, CUT_BIN])
def test_a_coded_stream_s_cliff_counts_without_codec_damage_and_only_while_coded(cut_bin: int) -> None:
    """A low-rate lossy file (its header said so): its cliff is the codec's whatever lies under it; the same
    stream not known as coded, after a reset, passes bit exact."""
    frames = _frames(1200, cut_bin)
    wrong = np.ascontiguousarray(frames[0] * 3.0 + 1.0)
    gate = _gate()
    gate.set_coded_input(True)
    out = _run(gate, frames, wrong, _empty_band_above(cut_bin))
    report = gate.report()
    assert report["coded_input"] and report["engaged"] and report["damage_share"] == 0.0
    assert abs(report["cutoff_hz"] - cut_bin * 48_000 / 1024) <= 200.0
    assert not np.array_equal(out[-1, :, cut_bin:], frames[-1, :, cut_bin:])
    gate.set_coded_input(False)
    gate.reset()
    np.testing.assert_array_equal(_run(gate, frames, wrong, _empty_band_above(cut_bin)), frames)
    assert not gate.report()["coded_input"]
    assert CodecGate({**DEFAULTS, "coded_input": True}, 48_000, 1024, 256).coded_input


@pytest.mark.parametrize("cut_bin", [LOW_CUT_BIN, CUT_BIN])
def test_a_high_rate_stream_s_cliff_is_the_source_s_own(cut_bin: int) -> None:
    """A high-rate lossy file (its header said so): a cliff with codec damage under it, which otherwise
    engages, passes bit for bit; the codec-made share of a stream without a cliff still counts."""
    frames = _frames(1200, cut_bin)
    wrong = np.ascontiguousarray(frames[0] * 3.0 + 1.0)
    gate = _gate()
    gate.set_high_rate_input(True)
    np.testing.assert_array_equal(_run(gate, frames, wrong, _codec_damage(cut_bin=cut_bin)), frames)
    report = gate.report()
    assert report["high_rate_input"] and not report["engaged"] and report["cutoff_hz"] is None
    gate.reset()
    assert not np.array_equal(_run(gate, _frames(600), wrong, np.ones((1, F), np.float32)), _frames(600))
    assert gate.report()["codec_made_now"] and not gate.report()["band_limit_now"]
    gate.set_high_rate_input(False)
    gate.reset()
    assert not np.array_equal(_run(gate, frames, wrong, _codec_damage(cut_bin=cut_bin)), frames)
    report = gate.report()
    assert not report["high_rate_input"] and report["band_limit_now"]


def test_a_cliff_below_damage_from_needs_no_evidence() -> None:
    """LAME 32 kbit/s stereo's 5.5 kHz low-pass leaves little damage under it; no clean format ends there."""
    assert LOW_CUT_BIN * 48_000 / 1024 < DEFAULTS["damage_from_hz"] < CUT_BIN * 48_000 / 1024
    gate = _gate()
    _run(gate, _frames(300, LOW_CUT_BIN))
    report = gate.report()
    assert report["band_limit_now"] and report["engaged_after_s"] <= 0.5
    assert abs(report["cutoff_hz"] - LOW_CUT_BIN * 48_000 / 1024) <= 200.0


def test_a_cliff_where_no_sample_rate_s_band_ends_needs_less_evidence() -> None:
    """LAME 32 kbit/s mono's 8.3-8.4 kHz low-pass: sparse music leaves little damage under it, and no common
    sample rate's band ends between 8 kHz (16 kHz audio) and 10 kHz (22.05 kHz audio): there a fifth of the
    damage share counts; none, as a clean source low-passed there has, still does not."""
    assert DEFAULTS["lenient_from_hz"] <= LENIENT_CUT_BIN * 48_000 / 1024 < DEFAULTS["lenient_to_hz"]
    share = 2 * LENIENT_SHARE                                  # under damage_share, over the lenient share
    assert share < DEFAULTS["damage_share"]
    for cut_bin, engages in ((LENIENT_CUT_BIN, True), (CUT_BIN, False)):
        gate = _gate()
        _run(gate, _frames(1200, cut_bin), confidence=_codec_damage(cut_bin=cut_bin, share=share))
        report = gate.report()
        assert report["engaged"] is engages and LENIENT_SHARE < report["damage_share"] < DEFAULTS["damage_share"]
        if engages:
            assert abs(report["cutoff_hz"] - cut_bin * 48_000 / 1024) <= 200.0
    gate = _gate()
    frames = _frames(1200, LENIENT_CUT_BIN)
    out = _run(gate, frames, np.ascontiguousarray(frames[0] * 3.0 + 1.0), _empty_band_above(LENIENT_CUT_BIN))
    np.testing.assert_array_equal(out, frames)
    assert gate.cliff_db[0] >= DEFAULTS["cliff_db"] and not gate.report()["engaged"]


def test_a_clean_source_low_passed_at_8_khz_needs_the_full_evidence() -> None:
    """Its cliff lies under the lenient range: the lenient share of codec damage does not engage it."""
    assert LOWPASS_8K_BIN * 48_000 / 1024 < DEFAULTS["lenient_from_hz"]
    gate = _gate()
    frames = _frames(1200, LOWPASS_8K_BIN)
    damage = _codec_damage(cut_bin=LOWPASS_8K_BIN, share=2 * LENIENT_SHARE)
    out = _run(gate, frames, np.ascontiguousarray(frames[0] * 3.0 + 1.0), damage)
    assert gate.cliff_db[0] >= DEFAULTS["cliff_db"] and not gate.report()["engaged"]
    np.testing.assert_array_equal(out, frames)


def test_codec_damage_found_only_in_the_first_second_does_not_count() -> None:
    """The model flags bins of clean audio in bursts: damage_wait_s of audio are averaged before a cliff above
    damage_from_hz may count."""
    burst = round(0.5 * WAIT_FRAMES)
    frames = _frames(1200, CUT_BIN)
    gate = _gate()
    _run(gate, frames[:burst], confidence=_codec_damage(share=0.02))   # 0.02 alone, 0.01 over the wait
    _run(gate, frames[burst:], confidence=_empty_band_above())
    assert not gate.report()["engaged"] and gate.damage_share[0] < DEFAULTS["damage_share"]


@pytest.mark.parametrize(("damaged", "engages"), [((1,), False), ((0, 1), True)], ids=["side-only", "both"])
def test_a_stream_s_least_damaged_channel_decides(damaged: tuple[int, ...], engages: bool) -> None:
    """Mid and side of one codec's stream: the side of a joint-stereo stream is damaged even at 96-128 kbit/s,
    so a band limit needs codec damage under the cliff of every channel that shows one; and a side with more
    than codec_share of its bins codec-made is not restored while the stream's cliff lacks that damage."""
    gate = _gate(2)
    frames = np.concatenate([_frames(600, CUT_BIN), _frames(600, CUT_BIN, seed=3)], axis=1)
    conf = _empty_band_above(channels=2)
    conf[list(damaged)] = np.maximum(conf[list(damaged)], _codec_damage(len(damaged), share=0.3))
    _run(gate, frames, confidence=conf)
    assert gate.report()["codec_made_share"] >= DEFAULTS["codec_share"] / 2       # the side's alone: 0.25
    assert gate.report()["engaged"] is engages and bool(np.all(gate.activity == 1.0)) is engages


def test_band_limited_input_is_filled_above_cutoff_only() -> None:
    gate = _gate()
    frames = _frames(300, CUT_BIN)
    out = np.zeros((1, F), np.float32)
    for frame in frames:
        pred = frame.copy()
        pred[:, CUT_BIN:] = 0.01                                         # the model's guess above the cutoff
        gate.process(np.ascontiguousarray(frame), pred, _codec_damage(), out)
    cut = int(round(gate.cutoff_hz[0] * 1024 / 48_000))
    xfade = int(np.ceil(DEFAULTS["crossfade_hz"] * 1024 / 48_000))
    np.testing.assert_array_equal(out[:, : cut - xfade - 1], frames[-1][:, : cut - xfade - 1])   # kept
    np.testing.assert_allclose(out[:, CUT_BIN:], 0.01, rtol=1e-5)                             # filled


def test_deep_holes_below_cutoff_take_the_prediction() -> None:
    gate = _gate()
    frames = _frames(300, CUT_BIN)
    _run(gate, frames, confidence=_codec_damage())
    dec = np.ascontiguousarray(frames[-1])
    pred = dec.copy()
    hole_db = DEFAULTS["hole_db"]
    pred[0, 100] = dec[0, 100] * 10 ** ((hole_db + 18) / 20)               # a deep hole -> filled
    pred[0, 101] = dec[0, 101] * 10 ** ((hole_db - HOLE_RAMP_DB - 3) / 20)  # below the ramp -> decoded kept
    pred[0, 102] = dec[0, 102] * 10 ** ((hole_db - HOLE_RAMP_DB / 2) / 20)  # on the ramp -> in between
    out = np.zeros_like(dec)
    gate.process(dec, pred, _no_confidence(), out)
    np.testing.assert_allclose(out[0, 100], pred[0, 100], rtol=1e-5)
    assert out[0, 101] == dec[0, 101]
    assert dec[0, 102] * 1.001 < out[0, 102] < pred[0, 102] * 0.999


def test_activity_ramps_smoothly_and_reset_forgets() -> None:
    gate = _gate()
    acts = []
    out = np.zeros((1, F), np.float32)
    for frame in _frames(300, CUT_BIN):
        gate.process(np.ascontiguousarray(frame), np.ascontiguousarray(frame + 0.5), _codec_damage(), out)
        acts.append(float(gate.activity[0]))
    assert np.all(np.abs(np.diff(acts)) <= 1.0 / ATTACK_FRAMES + 1e-12) and acts[-1] == 1.0
    established = _established(gate.damage_share[0])
    assert DECIDE_FRAMES < established < WAIT_FRAMES
    first = established + HOLD_FRAMES - 2                                 # the frame that completes the hold
    assert acts[first - 1] == 0.0 and acts[first] == 1.0 / ATTACK_FRAMES
    gate.reset()
    assert gate.activity[0] == 0.0 and np.isnan(gate.cutoff_hz[0]) and gate.report()["engaged"] is False


def test_quiet_frames_change_nothing() -> None:
    gate = _gate()
    _run(gate, _frames(300, CUT_BIN, gain_db=-120.0), confidence=_codec_damage())   # near silence, band-limited
    assert gate.report() == {"engaged": False, "engaged_now": False, "cutoff_hz": None,
                             "engaged_after_s": None, "restored_share": 0.0, "band_limit_now": False,
                             "codec_made_now": False, "codec_made_share": 0.0, "damage_share": 0.0,
                             "coded_input": False, "high_rate_input": False}


def test_a_stray_full_band_frame_does_not_switch_the_gate_off() -> None:
    gate = _gate()
    _run(gate, _frames(300, CUT_BIN), confidence=_codec_damage())
    assert gate.activity[0] == 1.0
    _run(gate, _frames(1, seed=5) * 10)                                   # one click with energy up to 24 kHz
    _run(gate, _frames(20, CUT_BIN, seed=6), confidence=_codec_damage())
    assert gate.activity[0] == 1.0 and abs(gate.cutoff_hz[0] - CUT_BIN * 48_000 / 1024) <= 200.0


def test_the_gate_lets_go_when_full_band_audio_follows() -> None:
    gate = _gate()
    _run(gate, _frames(300, CUT_BIN), confidence=_codec_damage())
    assert gate.report()["engaged_now"]
    _run(gate, _frames(12 * HALF_SECOND, seed=7))                         # a clean source is switched in
    assert not gate.report()["engaged_now"]


def test_channels_are_gated_independently() -> None:
    gate = _gate(2)
    frames = np.concatenate([_frames(300, CUT_BIN), _frames(300, seed=3)], axis=1)
    conf = np.concatenate([_codec_damage(), _no_confidence()])
    _run(gate, frames, confidence=conf)
    assert gate.activity[0] == 1.0 and gate.activity[1] == 0.0
    assert gate.report()["restored_share"] == pytest.approx(
        (300 - _established(gate.damage_share[0]) - HOLD_FRAMES + 2) / 600, abs=0.02)


def _confident(share: float, p: float, seed: int = 0) -> np.ndarray:
    """(1, F) confidence: p on a random `share` of the bins, 0 elsewhere."""
    conf = np.zeros((1, F), np.float32)
    bins = np.random.default_rng(seed).choice(F - 1, int(round(share * (F - 1))), replace=False)
    conf[0, bins] = p
    return conf


def test_confidence_below_its_threshold_changes_nothing() -> None:
    gate = _gate()
    frames = _frames(600)
    below = np.full((1, F), DEFAULTS["confidence_from"] - 0.01, np.float32)
    out = _run(gate, frames, np.ascontiguousarray(frames[0] * 3.0 + 1.0), below)
    np.testing.assert_array_equal(out, frames)
    assert gate.report()["engaged"] is False and gate.report()["codec_made_share"] == 0.0


def test_codec_made_bins_engage_the_gate_without_a_cliff_and_take_the_prediction() -> None:
    gate = _gate()
    frames = _frames(300)                                                # full band: no cliff
    share = min(1.0, 1.5 * DEFAULTS["codec_share"])
    conf = _confident(share, 1.0)
    out = np.zeros_like(frames)
    for t, frame in enumerate(frames):                                   # the model: 6 dB quieter
        gate.process(np.ascontiguousarray(frame), np.ascontiguousarray(frame * 0.5), conf, out[t])
    pred = frames[-1] * 0.5
    report = gate.report()
    assert report["codec_made_now"] and not report["band_limit_now"] and report["cutoff_hz"] is None
    assert report["codec_made_share"] == pytest.approx(share, abs=0.01)
    made = conf[0] > 0
    np.testing.assert_allclose(out[-1][0, made], pred[0, made], rtol=1e-5)    # codec-made: the prediction
    np.testing.assert_array_equal(out[-1][0, ~made], frames[-1][0, ~made])    # the rest: decoded, bit exact
    engaged_at = DECIDE_FRAMES + HOLD_FRAMES - 1
    assert report["engaged_after_s"] == pytest.approx(engaged_at * 256 / 48_000, abs=2 * 256 / 48_000)


def test_without_a_cliff_the_codec_made_share_counts_up_to_codec_share_top_hz() -> None:
    """A model that finds the top of full-band audio codec-made (16-24 kHz, where 96-128 kbit/s encoders' own
    low-pass lies): over the whole spectrum that share engages the gate; under a codec_share_top_hz of 16 kHz
    it counts for nothing."""
    frames = _frames(300)
    conf = np.zeros((1, F), np.float32)
    conf[0, 342:] = 1.0                                                  # 16.0 kHz and up: a third of the bins
    whole = _gate()
    _run(whole, frames, confidence=conf)
    assert DEFAULTS["codec_share_top_hz"] == 24_000.0                    # the whole spectrum
    assert whole.report()["codec_made_now"] and whole.report()["codec_made_share"] > DEFAULTS["codec_share"]
    below = CodecGate({**DEFAULTS, "codec_share_top_hz": 16_000.0}, 48_000, 1024, 256)
    out = _run(below, frames, confidence=conf)
    assert not below.report()["engaged"] and below.report()["codec_made_share"] == 0.0
    np.testing.assert_array_equal(out, frames)


def test_confidence_weight_ramps_between_its_thresholds() -> None:
    gate = _gate()
    frames = _frames(300)
    lo, hi = DEFAULTS["confidence_from"], DEFAULTS["confidence_full"]
    conf = _confident(min(1.0, 1.5 * DEFAULTS["codec_share"]), 1.0)
    _run(gate, frames, confidence=conf)
    dec = np.ascontiguousarray(frames[-1])
    pred = np.ascontiguousarray(dec * 0.25)                               # quieter: no hole rule
    conf = conf.copy()
    conf[0, 10], conf[0, 11], conf[0, 12] = hi, (lo + hi) / 2, lo - 0.01
    out = np.zeros_like(dec)
    gate.process(dec, pred, conf, out)
    np.testing.assert_allclose(out[0, 10], pred[0, 10], rtol=1e-5)
    np.testing.assert_allclose(out[0, 11], dec[0, 11] * 0.5, rtol=1e-4)     # halfway in the log domain
    assert out[0, 12] == dec[0, 12]


def test_the_gate_lets_go_when_the_model_stops_finding_codec_made_bins() -> None:
    gate = _gate()
    frames = _frames(300)
    _run(gate, frames, confidence=_confident(min(1.0, 1.5 * DEFAULTS["codec_share"]), 1.0))
    assert gate.report()["codec_made_now"]
    out = _run(gate, _frames(12 * HALF_SECOND, seed=7), confidence=_no_confidence())
    assert not gate.report()["engaged_now"] and not gate.report()["codec_made_now"]
    np.testing.assert_array_equal(out[-1], _frames(12 * HALF_SECOND, seed=7)[-1])


def test_a_stream_started_from_its_heads_statistics_restores_from_its_first_frame() -> None:
    """`statistics()` at the end of a stream's head, `start_from()` after a reset (Restorer.decide_ahead): the
    statistics, decisions and activity carry over; the report counts from the new start."""
    frames = _frames(600, CUT_BIN)
    predicted = np.full((1, F), FULL_SCALE * 1e-3, np.float32)
    head = _gate()
    _run(head, frames, predicted, confidence=_codec_damage())
    assert head.report()["engaged_now"]
    gate = _gate()
    gate.start_from(head.statistics())
    assert gate.report()["engaged"] is False and gate.report()["restored_share"] == 0.0
    out = _run(gate, frames[:10], predicted, confidence=_codec_damage())
    report = gate.report()
    assert report["engaged_after_s"] == pytest.approx(1 / HOPS_PER_S, abs=1e-3)
    assert report["restored_share"] == 1.0 and report["cutoff_hz"] == head.report()["cutoff_hz"]
    assert np.all(out[:, :, CUT_BIN:] == predicted[:, CUT_BIN:])      # the band above restored from frame 0
    fresh = _run(_gate(), frames[:10], predicted, confidence=_codec_damage())
    np.testing.assert_array_equal(fresh, frames[:10])                  # a fresh gate is still deciding


def test_the_band_above_a_detected_cutoff_is_handed_to_the_phase_stage() -> None:
    """HopBuffers.band_above: F until the gate restores a band above a detected cutoff, then the first bin
    at or above that cutoff; F again with the gate off."""
    from realtime.engine.stage import HopBuffers

    gate = _gate()
    buffers = HopBuffers(1, 1024, 256, 0)
    frames = _frames(300, CUT_BIN)
    handed = []
    for frame in frames:
        buffers.magnitudes[0] = frame
        buffers.estimate[:] = frame
        buffers.estimate[:, CUT_BIN:] = 0.01
        buffers.confidence[:] = _codec_damage()
        gate.process_hop(buffers)
        handed.append(int(buffers.band_above[0]))
    assert handed[0] == F
    assert gate.report()["engaged_now"]
    assert handed[-1] == int(np.ceil(gate.cutoff_hz[0] * 1024 / 48_000 - 1e-9))
    off = CodecGate({**DEFAULTS, "enabled": False}, 48_000, 1024, 256)
    off.prepare(1)
    off.process_hop(buffers)
    assert buffers.band_above[0] == F


def test_the_band_above_without_a_confirmed_band_limit_is_the_last_credible_cliff_held() -> None:
    """Engaged by the codec-made share alone, the gate hands on the edge of the last cliff that scored at
    least cliff_db - release_db, and holds it while the score dips or the edge moves by up to
    EDGE_TOLERANCE_BANDS; a detected cutoff wins; a closed gate hands on F."""
    from realtime.engine import gate as g

    release = DEFAULTS["cliff_db"] - DEFAULTS["release_db"]
    state = np.zeros((1, g._STATE_SIZE))                      # one channel's state, as `reset` leaves it
    state[0, g._CUTOFF] = state[0, g._FILL_EDGE] = -1.0
    params = np.zeros(g._P_SIZE)
    params[g._P_RELEASE] = release
    band = np.zeros(1, np.int64)

    def hand_on(score: float, edge_band: int, **columns: float) -> int:
        state[0, g._ACTIVE_NOW], state[0, g._SCORE], state[0, g._EDGE] = 1.0, score, edge_band
        for name, value in {"_ACTIVITY": 1.0, "_MADE": 1.0, "_DETECTED": 0.0, **columns}.items():
            state[0, getattr(g, name)] = value
        g._band_above(state, params, F, band)
        return int(band[0])

    assert hand_on(release - 1.0, 41) == F                          # no credible cliff yet
    assert hand_on(release + 2.0, 41) == 41 * g.BAND_BINS           # 7.7 kHz
    assert hand_on(release - 5.0, 30) == 41 * g.BAND_BINS           # the score dips: held
    assert hand_on(release + 2.0, 41 + g.EDGE_TOLERANCE_BANDS) == 41 * g.BAND_BINS
    assert hand_on(release + 2.0, 45) == 45 * g.BAND_BINS           # a credible cliff elsewhere: moved
    assert hand_on(release + 2.0, 45, _ACTIVITY=0.0) == F
    assert hand_on(release + 2.0, 45, _DETECTED=1.0, _CUTOFF=170.3) == 171
