"""A pair of v2 networks exported as one graph: the envelope network's magnitude, the detector's confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from training.export import stream_onnx  # noqa: E402
from training.v2.export import export_pair  # noqa: E402
from training.v2.model import BandNet, BandNetConfig, config_dict  # noqa: E402
from training.v2.pair import StreamingPair  # noqa: E402


def _checkpoint(path: Path, config: BandNetConfig, seed: int, step: int) -> BandNet:
    """A checkpoint of a random network as train.py writes one (weights and weight average alike)."""
    torch.manual_seed(seed)
    net = BandNet(config).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    torch.save({"config": config_dict(net), "model": net.state_dict(), "average": net.state_dict(),
                "state": {"step": step, "cpu_s": 3600.0 * step, "audio_s": 10.0 * step}}, path)
    return net


def test_the_pair_streams_the_envelopes_magnitude_and_the_detectors_confidence(tmp_path: Path) -> None:
    envelope = _checkpoint(tmp_path / "envelope.pt", BandNetConfig(hidden=24, gru_stride=4), seed=1, step=7)
    detector = _checkpoint(tmp_path / "detector.pt", BandNetConfig(hidden=16, gru_stride=3), seed=2, step=5)
    path = export_pair(tmp_path / "envelope.pt", tmp_path / "detector.pt", tmp_path / "pair.onnx",
                       {"damage_share": 0.05})
    rng = np.random.default_rng(0)
    mag = (rng.gamma(0.5, 1.0, (2, 21, 513)) * rng.uniform(0.01, 10.0, (2, 21, 1))).astype(np.float32)
    mag[:, :, 170:] *= 1e-5                                      # a codec cutoff near 8 kHz
    magnitude, confidence = stream_onnx(path, mag)
    with torch.no_grad():
        own = envelope(torch.from_numpy(mag))
        detected = detector(torch.from_numpy(mag))
    reference = own.magnitude.numpy()
    assert np.max(np.abs(magnitude - reference)) <= 1e-4 * np.max(reference)
    expected = (torch.sigmoid(detected.confidence_logit) @ detector.expansion).numpy()
    assert np.max(np.abs(confidence - expected)) <= 1e-4
    assert np.max(np.abs(confidence - (torch.sigmoid(own.confidence_logit) @ envelope.expansion).numpy())) > 0.01
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (meta["gapfill.train_steps"], meta["gapfill.detector_train_steps"]) == ("7", "5")
    assert meta["gapfill.gate.damage_share"] == "0.05"
    assert int(meta["gapfill.macs_per_frame"]) == envelope.count_macs() + detector.count_macs()


def test_networks_that_look_ahead_differently_are_refused() -> None:
    with pytest.raises(ValueError, match="look ahead alike"):
        StreamingPair(BandNet(BandNetConfig(lookahead=1)), BandNet(BandNetConfig()))
