"""The shipped ONNX model, streamed frame by frame through the engine's model stage
(`realtime.engine.model.OnnxModel`: IOBinding, state fed back each hop), equals its PyTorch twin run offline
on the whole clip: max relative error 1e-4 on the magnitudes, 1e-4 absolute on the confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.config import MODEL_RATE_HZ, load_config
from realtime.engine.config import shipped_model_path
from realtime.engine.model import OnnxModel
from realtime.engine.stft import stft_offline

torch = pytest.importorskip("torch")

from training.export import LOOKAHEAD_FRAMES, load_weights  # noqa: E402
from training.unet import EPS, FFT_SIZE, HOP  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "hedgewars-british-32k.mp3"


def _magnitudes(channels: int) -> np.ndarray:
    """(channels, frames, 513) f32: the 32 kbit/s example clip (and a louder copy as channel 2)."""
    x, sr = sf.read(str(CLIP), dtype="float32")
    assert sr == MODEL_RATE_HZ
    mags = [np.abs(stft_offline(x * g, FFT_SIZE, HOP)) for g in (1.0, 2.5)[:channels]]
    return np.stack(mags).astype(np.float32)


def test_shipped_model_contract() -> None:
    """The shipped model has the framing training declares (training.unet), which is also the shipped config's."""
    path = shipped_model_path()
    assert path.is_file() and path.stat().st_size < 8e6
    m = OnnxModel(path, threads=1)
    assert (m.sample_rate, m.fft_size, m.hop, m.lookahead_frames) == (MODEL_RATE_HZ, FFT_SIZE, HOP, LOOKAHEAD_FRAMES)
    assert (load_config(None).fft_size, load_config(None).hop) == (FFT_SIZE, HOP)
    assert m.state_shapes                       # temporal state is explicit
    import onnx
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_onnx_equals_offline_pytorch(channels: int) -> None:
    mags = _magnitudes(channels)
    net = load_weights(shipped_model_path().with_suffix(".pt"))
    with torch.no_grad():
        offline, logit = (x.numpy() if x is not None else None for x in net.forward_with_confidence(torch.from_numpy(mags)))
    model = OnnxModel(shipped_model_path(), threads=1)
    assert model.has_confidence == net.confidence
    model.prepare(channels)
    model.reset()
    streamed = np.zeros_like(mags)
    streamed_confidence = np.zeros_like(mags)
    frame_out = np.zeros((channels, 513), np.float32)
    confidence = np.zeros((channels, 513), np.float32)
    for t in range(mags.shape[1]):
        model.process(np.ascontiguousarray(mags[:, t]), frame_out, confidence)
        streamed[:, t] = frame_out
        streamed_confidence[:, t] = confidence
    if net.confidence:      # the head's probability per bin; Nyquist is not predicted (0)
        np.testing.assert_allclose(streamed_confidence[..., :512], 1 / (1 + np.exp(-logit)), atol=1e-4)
        assert np.all(streamed_confidence[..., 512] == 0.0)
    else:
        assert np.all(streamed_confidence == 0.0)
    err = np.abs(streamed - offline)
    # relative to each frame's largest magnitude (bins at the -128 dB floor have no meaningful ratio)
    rel = err / np.maximum(np.abs(offline).max(axis=2, keepdims=True), 1e-6)
    assert rel.max() <= 1e-4, f"max relative error {rel.max():.2e}"
    # and per bin, wherever the output is within 60 dB of its frame's peak and above the model's own
    # floor EPS = 1e-4 (-128 dB re a full-scale sine; below it exp(.) - EPS cancels and ratios mean nothing)
    big = (np.abs(offline) > 1e-3 * np.abs(offline).max(axis=2, keepdims=True)) & (np.abs(offline) > EPS)
    assert (err[big] / np.abs(offline[big])).max() <= 1e-4
    # in the network's own (log) domain, everywhere
    assert np.abs(np.log(streamed + EPS) - np.log(offline + EPS)).max() <= 1e-4
