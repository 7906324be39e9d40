"""CodecGate: passes full-band input unchanged, fills only above the codec cutoff and in deep holes."""

from __future__ import annotations

import numpy as np

from realtime.config import load_config
from realtime.gate import ATTACK_FRAMES, CodecGate

DEFAULTS = load_config(None).gate

F = 513


def _frames(cut_bin: int | None, seed: int = 0, level: float = 1.0) -> np.ndarray:
    """(2, F) f32 magnitudes like a music frame: falling spectrum; zero from cut_bin up."""
    rng = np.random.default_rng(seed)
    k = np.arange(F)
    m = level * 50.0 / (1 + k / 20.0) ** 1.5 * rng.uniform(0.5, 1.5, (2, F))
    if cut_bin is not None:
        m[:, cut_bin:] = 0.0
    return m.astype(np.float32)


def _run(gate: CodecGate, dec: np.ndarray, pred: np.ndarray, hops: int) -> np.ndarray:
    out = np.zeros_like(dec)
    for _ in range(hops):
        gate.process(dec, pred, out)
    return out


def test_full_band_input_passes_bit_exact() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(2)
    dec = _frames(None)
    pred = dec * 3.0 + 1.0                      # a wildly wrong model
    for seed in range(50):
        dec = _frames(None, seed)
        out = _run(gate, dec, pred, 1)
        np.testing.assert_array_equal(out, dec)
    assert np.all(gate.cutoff_hz > DEFAULTS["max_cutoff_hz"]) and np.all(gate.activity == 0.0)


def test_band_limited_input_is_filled_above_cutoff_only() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(2)
    cut = 171                                     # 8 kHz, like LAME at 32 kbit/s
    dec = _frames(cut)
    pred = dec.copy()
    pred[:, cut:] = 0.01                          # the model's guess above the cutoff
    out = _run(gate, dec, pred, 400)
    assert np.allclose(gate.cutoff_hz, cut * 48_000 / 1024)
    np.testing.assert_array_equal(out[:, :cut - 12], dec[:, :cut - 12])   # the codec's band: untouched
    np.testing.assert_allclose(out[:, cut:], 0.01, rtol=1e-5)              # above: the prediction
    xf = out[0, cut - 12: cut]                                             # cross-over: between the two
    assert np.all(xf <= np.maximum(dec[0, cut - 12: cut], 0.01) * 1.0001)


def test_deep_holes_below_cutoff_take_the_prediction() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(1)
    dec = _frames(171)[:1]
    pred = dec.copy()
    pred[0, 100] = dec[0, 100] * 10 ** (30 / 20)       # 30 dB hole -> filled
    pred[0, 101] = dec[0, 101] * 10 ** (3 / 20)        # 3 dB -> keep decoded
    dec_hole = dec.copy()
    out = _run(gate, dec_hole, pred, 100)
    np.testing.assert_allclose(out[0, 100], pred[0, 100], rtol=1e-5)
    assert out[0, 101] == dec[0, 101]


def test_activity_ramps_smoothly_and_reset_forgets() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(1)
    dec = _frames(171)[:1]
    pred = dec + 0.5
    acts = []
    out = np.zeros_like(dec)
    for _ in range(100):
        gate.process(dec, pred, out)
        acts.append(float(gate.activity[0]))
    assert np.all(np.diff(acts) <= 1.0 / ATTACK_FRAMES + 1e-12) and acts[-1] == 1.0
    gate.reset()
    assert gate.activity[0] == 0.0 and gate.cutoff_hz[0] == DEFAULTS["max_cutoff_hz"]


def test_quiet_frames_do_not_move_the_cutoff() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(2)
    _run(gate, _frames(None), _frames(None), 3)
    high = gate.cutoff_bins.copy()
    _run(gate, _frames(50, level=1e-6), _frames(None), 200)   # near silence, band-limited
    np.testing.assert_array_equal(gate.cutoff_bins, high)


def test_a_stray_full_band_frame_does_not_switch_the_gate_off() -> None:
    gate = CodecGate(DEFAULTS, 48_000, 1024, 256)
    gate.prepare(1)
    dec, pred = _frames(171)[:1], _frames(None)[:1]
    _run(gate, dec, pred, 300)
    assert gate.activity[0] == 1.0
    _run(gate, _frames(None)[:1], pred, 1)          # one click with energy up to 24 kHz
    _run(gate, dec, pred, 1)
    assert gate.activity[0] == 1.0 and gate.cutoff_hz[0] < 8_100
    assert set(DEFAULTS) >= {"enabled", "max_cutoff_hz", "hole_db"}
