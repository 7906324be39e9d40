"""Configuration validation, the allocation-free FFT and the STFT conventions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from realtime.engine.config import DEFAULT_CONFIG_PATH, FROM_MODEL, load_config
from realtime.engine.model import OnnxModel
from realtime.engine.model_files import PASSTHROUGH_FRAMING, model_settings, shipped_model_path
from realtime.errors import GapfillError
from realtime.engine.fft import FFTPlan
from realtime.engine.analysis import AnalysisStage
from realtime.engine.stft import istft_offline, stft_offline
from realtime.engine.synthesis import SynthesisStage
from realtime.engine.phase import HANN_GAMMA, gaussian_gamma
from realtime.engine.windows import (
    analysis_window,
    asymmetric_windows,
    full_scale_magnitude,
    synthesis_span,
    synthesis_window,
)


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_load_and_validate():
    """The defaults are default.yaml's values as written, the framing and gate calibration the shipped model's
    own (its metadata; tests/test_model_framing.py)."""
    config = load_config(None)
    written = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert written["stft"] == {"fft_size": FROM_MODEL, "hop": FROM_MODEL, "window": FROM_MODEL}
    assert written["gate"]["damage_share"] == written["gate"]["codec_share"] == FROM_MODEL
    fixed = model_settings("default")
    written["stft"] = fixed["stft"]
    written["gate"].update(fixed["gate"])
    assert {"model": config.model, "stft": config.stft, "phase": config.phase, "gate": config.gate} == written
    model = OnnxModel(shipped_model_path(), threads=1)
    assert (config.fft_size, config.hop, config.window) == (model.fft_size, model.hop, model.window)
    assert config.source is None


def test_the_framing_follows_the_model_unless_set():
    """'model' takes each stft key from the model named; a value set is kept (and checked on loading)."""
    assert load_config(None, {"model": {"path": "passthrough"}}).stft == PASSTHROUGH_FRAMING
    set_hop = load_config(None, {"model": {"path": "passthrough"}, "stft": {"hop": 128, "window": "asymmetric"}})
    assert set_hop.stft == {"fft_size": 1024, "hop": 128, "window": "asymmetric"}
    with pytest.raises(GapfillError, match="cannot load model '.*missing.onnx': no such file"):
        load_config(None, {"model": {"path": "/nonexistent/missing.onnx"}})


@pytest.mark.parametrize(
    "text, message",
    [
        ("stft: {hop: 300}",
         "config 'stft.hop': must be a power of two between 64 and 1024, or 'model' (the model's), got 300"),
        ("stft: {fft_size: 256, hop: 256}", "config 'stft.hop': must be at most half"),
        ("stft: {window: kaiser}", "config 'stft.window': must be one of 'hann', 'asymmetric'"),
        ("phase: {method: magic}", "config 'phase.method': must be one of 'decoded', 'rtpghi', 'completion'"),
        ("phase: {lookahead_frames: 2}", "config 'phase.lookahead_frames'"),
        ("model: {threads: 0}", "config 'model.threads': must be an integer between 1 and 16, got 0"),
        ("model: {threads: true}", "config 'model.threads'"),
        ("model: {stereo: ms}", "config 'model.stereo': must be one of 'mid_side', 'channels'"),
        ("model: {max_boost_db: -3}", "config 'model.max_boost_db'"),
        ("model: {input_level_db: 5}", "config 'model.input_level_db'"),
        ("gate: {enabled: 'yes'}", "config 'gate.enabled': must be one of True, False"),
        ("stft: {overlap: 4}", "config 'stft.overlap': unknown key (allowed: fft_size, hop, window)"),
        ("colour: red", "config 'colour': unknown section"),
        ("- a\n- b", "must be a mapping of sections"),
        ("stft: 5", "config 'stft': must be a mapping of keys"),
        ("stft: {hop: [1, 2", "malformed YAML at line"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(GapfillError) as caught:
        load_config(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_and_directory_are_clear_errors(tmp_path):
    with pytest.raises(GapfillError, match="cannot read config .*: No such file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(GapfillError, match="it is a directory"):
        load_config(tmp_path)


def test_partial_user_file_keeps_other_defaults(tmp_path):
    config = load_config(write(tmp_path, "phase: {method: rtpghi}\n"))
    defaults = load_config(None)
    assert config.phase["method"] == "rtpghi" != defaults.phase["method"]
    assert {k: v for k, v in config.phase.items() if k != "method"} == \
           {k: v for k, v in defaults.phase.items() if k != "method"}
    assert (config.model, config.stft, config.gate) == (defaults.model, defaults.stft, defaults.gate)


@pytest.mark.parametrize("n", [4, 16, 512, 1024, 2048])
def test_fft_plan_matches_numpy(n):
    rng = np.random.default_rng(n)
    plan = FFTPlan(n)
    frame = rng.standard_normal(n)
    spectrum = np.zeros(n // 2 + 1, np.complex128)
    plan.rfft_into(frame, spectrum)
    assert np.allclose(spectrum, np.fft.rfft(frame), atol=1e-10)
    noisy = spectrum + 1j * rng.standard_normal(n // 2 + 1)  # DC/Nyquist imaginary parts are ignored
    back = np.zeros(n)
    plan.irfft_into(noisy, back)
    assert np.allclose(back, np.fft.irfft(noisy, n), atol=1e-10)


@pytest.mark.parametrize("fft_size, hop", [(1024, 256), (512, 128), (1024, 512), (2048, 256)])
def test_windows_reconstruct_perfectly(fft_size, hop):
    products = analysis_window(fft_size) * synthesis_window(fft_size, hop)
    overlap = sum(products[start : start + hop] for start in range(0, fft_size, hop))
    assert np.allclose(overlap, 1.0)


@pytest.mark.parametrize("fft_size, hop", [(1024, 128), (1024, 256), (512, 128), (768, 64)])
def test_asymmetric_windows_reconstruct_perfectly_within_the_last_two_hops(fft_size, hop):
    analysis, synthesis = asymmetric_windows(fft_size, hop)
    products = analysis * synthesis
    overlap = sum(products[start : start + hop] for start in range(0, fft_size, hop))
    assert np.allclose(overlap, 1.0)
    assert np.all(synthesis[: fft_size - 2 * hop] == 0.0)                   # the delay is 2 * hop - 1
    assert analysis.max() == pytest.approx(1.0) and np.all(analysis >= 0.0)


@pytest.mark.parametrize("window, hop", [("hann", 256), ("asymmetric", 128), ("asymmetric", 256)])
def test_streaming_analysis_and_synthesis_equal_offline(window, hop):
    fft_size = 1024
    signal = np.random.default_rng(3).standard_normal(40 * hop).astype(np.float32)
    offline = stft_offline(signal, fft_size, hop, window)
    analysis = AnalysisStage(fft_size, hop, window=window)
    synthesis = SynthesisStage(fft_size, hop, window=window)
    spectra = np.zeros((1, fft_size // 2 + 1), np.complex64)
    magnitudes = np.zeros((1, fft_size // 2 + 1), np.float32)
    hop_out = np.zeros((1, hop), np.float32)
    hops = []
    for k in range(40):
        analysis.push_hop(signal[None, k * hop : (k + 1) * hop], spectra, magnitudes)
        assert np.allclose(spectra[0], offline[k], atol=1e-3)
        assert np.allclose(magnitudes[0], np.abs(offline[k]), atol=1e-3)
        synthesis.push_frame(spectra, hop_out)
        hops.append(hop_out[0].copy())
    streamed = np.concatenate(hops)
    resynthesised = istft_offline(offline, fft_size, hop, window)
    # streaming emits hop k at the end of hop k; the offline version places it one sample later
    assert np.allclose(streamed[: -(hop - 1)], resynthesised[hop - 1 :], atol=1e-5)
    latency = synthesis_span(fft_size, hop, window) - 1
    assert latency + 1 == synthesis.latency_samples + hop
    assert np.allclose(resynthesised[latency + fft_size :], signal[fft_size : len(signal) - latency], atol=1e-5)


@pytest.mark.parametrize("window, hop", [("hann", 256), ("asymmetric", 128)])
def test_full_scale_magnitude_is_the_peak_bin_of_a_full_scale_sine(window, hop):
    fft_size = 1024
    bin_index = 100                                      # a sine on a bin centre: no scalloping
    t = np.arange(8 * fft_size)
    sine = np.sin(2 * np.pi * bin_index * t / fft_size)
    peak = np.abs(stft_offline(sine, fft_size, hop, window)[-1, bin_index])
    assert peak == pytest.approx(full_scale_magnitude(fft_size, window, hop), rel=1e-4)


def test_phase_gamma_of_a_window_follows_its_spread():
    """4 pi times the variance of the squared window: about the published 0.25645 N^2 for Hann (0.2514),
    wider for the asymmetric window's long rise."""
    hann = gaussian_gamma(analysis_window(1024)) / 1024**2
    assert hann == pytest.approx(HANN_GAMMA, rel=0.03)
    assert gaussian_gamma(asymmetric_windows(1024, 128)[0]) / 1024**2 > hann
