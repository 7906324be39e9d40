"""`python -m training` end to end on synthetic data in seconds: train, resume, export, parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from training.__main__ import main  # noqa: E402
from training.export import load_checkpoint, stream_onnx  # noqa: E402
from training.unet import StreamingUNet, UNet  # noqa: E402


def test_smoke_train_resume_export(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--synthetic", "--batch", "2", "--minutes", "5", "--run", str(run), "--threads", "1"]
    assert main(args + ["--steps", "2"]) == 0
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["step"] == 2
    assert main(args + ["--steps", "3"]) == 0              # resumes from last.pt
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and np.isfinite(log[-1]["val_loss"])

    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx_path)]) == 0
    net, _ = load_checkpoint(run / "last.pt")
    mag = np.random.default_rng(0).gamma(0.5, 1.0, (2, 40, 513)).astype(np.float32)
    mag[:, :, 200:] = 0.0                                    # band-limited like a codec output
    ref = net(torch.from_numpy(mag)).detach().numpy()
    out, confidence = stream_onnx(onnx_path, mag)
    assert confidence is None
    assert np.max(np.abs(out - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_a_stage_keeps_its_gain_range_through_a_resume_and_the_card_names_it(tmp_path: Path) -> None:
    from training.card import _gain_ranges

    run = tmp_path / "levels"
    args = ["train", "--synthetic", "--batch", "2", "--minutes", "5", "--run", str(run), "--threads", "1"]
    assert main(args + ["--steps", "1", "--gain-db", "-35", "6"]) == 0
    assert main(args + ["--steps", "2"]) == 0              # resumed without the option: keeps -35..+6
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["step"] == 2 and ck["gain_db"] == [-35.0, 6.0] and ck["stages"][-1]["gain_db"] == [-35.0, 6.0]
    earlier = [{"steps": 10}, {"steps": 10, "gain_db": [-20.0, 6.0]}]       # the first recorded none
    assert _gain_ranges(earlier + ck["stages"][-1:]) == "-20..+6 dB (stage 3: -35..+6 dB)"


def test_streaming_module_equals_offline_and_is_causal() -> None:
    torch.manual_seed(0)
    net = UNet().eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(2, 25, 513)
    y = net(x)
    stream = StreamingUNet(net)
    states = [torch.zeros(2, *s) for s in net.state_shapes().values()]
    outs = []
    for t in range(25):
        o, *states = stream(x[:, t], *states)
        outs.append(o)
    assert torch.max(torch.abs(torch.stack(outs, 1) - y)) <= 1e-5 * torch.max(torch.abs(y))
    x2 = x.clone()
    x2[:, 10:] = torch.rand(2, 15, 513)                       # the future does not change the past
    assert torch.equal(net(x2)[:, :10], y[:, :10])
    assert 3e5 <= sum(p.numel() for p in net.parameters()) <= 2e6


def test_confidence_head_trains_warm_exports_and_streams(tmp_path: Path) -> None:
    from realtime.engine.model import OnnxModel

    plain, run = tmp_path / "plain", tmp_path / "conf"
    args = ["train", "--synthetic", "--batch", "2", "--minutes", "5", "--threads", "1", "--steps", "1"]
    assert main(args + ["--run", str(plain)]) == 0
    assert main(args + ["--run", str(run), "--confidence", "--init", str(plain / "last.pt")]) == 0
    net, ck = load_checkpoint(run / "last.pt")
    assert net.confidence and ck["model_args"]["confidence"] is True
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert 0.0 <= log[-1]["val_clean_p_mean"] <= 1.0 and log[-1]["val_clean_labels_mean"] == 0.0
    onnx_path = tmp_path / "c.onnx"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(onnx_path)]) == 0
    mag = np.random.default_rng(1).gamma(0.5, 1.0, (2, 30, 513)).astype(np.float32)
    with torch.no_grad():
        ref, logit = net.forward_with_confidence(torch.from_numpy(mag))
    out, confidence = stream_onnx(onnx_path, mag)
    assert np.max(np.abs(out - ref.numpy())) <= 1e-4 * np.max(np.abs(ref.numpy()))
    np.testing.assert_allclose(confidence[..., :512], torch.sigmoid(logit).numpy(), atol=1e-5)
    assert np.all(confidence[..., 512] == 0.0)
    assert OnnxModel(onnx_path, threads=1).has_confidence


def test_compare_scores_checkpoints_on_the_validation_crops(tmp_path: Path, monkeypatch) -> None:
    """`compare` (model-only metrics of checkpoints) runs on a training checkpoint and on the shipped, stripped
    one, and scores the decoded crops as evaluation.metrics.spectrum_metrics does, crop by crop."""
    import training.train as training
    from evaluation.metrics import codec_cutoff_bin, magnitude_db, spectrum_metrics

    synthetic = training.validation_sets(None, synthetic=True)
    monkeypatch.setattr(training, "validation_sets", lambda root, synthetic_=False, **_: synthetic)
    run = tmp_path / "run"
    assert main(["train", "--synthetic", "--batch", "2", "--minutes", "5", "--run", str(run), "--threads", "1",
                 "--steps", "1"]) == 0
    out = tmp_path / "compare.json"
    shipped = str(Path(__file__).resolve().parents[1] / "models" / "gapfill-unet-mp3.pt")
    assert main(["compare", str(run / "last.pt"), shipped, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res[str(run / "last.pt")]["step"] == 1 and res[shipped]["step"] is None

    dec, clean, _ = synthetic["reference"]
    c_db, d_db = magnitude_db(clean.numpy()), magnitude_db(dec.numpy())
    lsd = np.mean([spectrum_metrics(c, d, codec_cutoff_bin(c, d))["lsd_full"] for c, d in zip(c_db, d_db)])
    assert res["crops"] == len(dec) and res["mp3"]["lsd_full"] == pytest.approx(lsd)
    for name in ("mp3", str(run / "last.pt"), shipped):
        assert set(res[name]) >= {"l1", "lsd_full", "lsd_below", "lsd_above", "holes"}
