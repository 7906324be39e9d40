"""The v1 U-Net (training/: models/gapfill-unet-mp3.onnx, its PyTorch twin beside it), whether or not it
is the shipped model: streamed frame by frame through the engine's model stage
(`realtime.engine.model.OnnxModel`: IOBinding, state fed back each hop), it equals its PyTorch twin run offline
on the whole clip: max relative error 1e-4 on the magnitudes, 1e-4 absolute on the confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.model import OnnxModel
from realtime.engine.stft import stft_offline

torch = pytest.importorskip("torch")

from training.__main__ import DEFAULT_ONNX  # noqa: E402
from training.export import LOOKAHEAD_FRAMES, load_weights  # noqa: E402
from training.unet import EPS, FFT_SIZE, HOP  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "hedgewars-british-32k.mp3"
V1_MODEL = REPO / DEFAULT_ONNX
"""The v1 model's ONNX file (what `python -m training export` writes), kept for side-by-side benchmarks."""


def _magnitudes(channels: int) -> np.ndarray:
    """(channels, frames, 513) f32: the 32 kbit/s example clip (and a louder copy as channel 2)."""
    x, sr = sf.read(str(CLIP), dtype="float32")
    assert sr == MODEL_RATE_HZ
    mags = [np.abs(stft_offline(x * g, FFT_SIZE, HOP)) for g in (1.0, 2.5)[:channels]]
    return np.stack(mags).astype(np.float32)


def test_v1_model_contract() -> None:
    """The v1 model has the framing its training declares (training.unet: the Hann framing)."""
    assert V1_MODEL.is_file() and V1_MODEL.stat().st_size < 8e6
    m = OnnxModel(V1_MODEL, threads=1)
    assert (m.sample_rate, m.fft_size, m.hop, m.lookahead_frames) == (MODEL_RATE_HZ, FFT_SIZE, HOP, LOOKAHEAD_FRAMES)
    assert m.window == "hann"
    assert m.state_shapes                       # temporal state is explicit
    import onnx
    model = onnx.load(str(V1_MODEL))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_onnx_equals_offline_pytorch(channels: int) -> None:
    mags = _magnitudes(channels)
    net = load_weights(V1_MODEL.with_suffix(".pt"))
    with torch.no_grad():
        offline, logit = (x.numpy() if x is not None else None for x in net.forward_with_confidence(torch.from_numpy(mags)))
    model = OnnxModel(V1_MODEL, threads=1)
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
