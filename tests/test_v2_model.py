"""Model v2: causal, band outputs consistent with bins, streaming (torch and ONNX) equal to offline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.v2 import features  # noqa: E402
from training.v2.model import BandNet, BandNetConfig, StreamingBandNet, build  # noqa: E402


def _random_net(config: BandNetConfig) -> BandNet:
    torch.manual_seed(0)
    net = BandNet(config).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net


def _magnitudes(frames: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mag = rng.gamma(0.5, 1.0, (2, frames, 513)) * rng.uniform(0.01, 10.0, (2, frames, 1))
    mag[:, :, 170:] *= 1e-5                      # a codec cutoff near 8 kHz
    mag[:, :, 40:45] = 0.0                       # and a hole
    return torch.from_numpy(mag.astype(np.float32))


def _same_function_then_two_steps(old: BandNet, new: BandNet) -> None:
    """new computes old's function; then two SGD steps on new (its gradients stay for the caller to check)."""
    mag = _magnitudes(20)
    with torch.no_grad():
        a, b = old(mag), new(mag)
    torch.testing.assert_close(b.magnitude, a.magnitude, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(b.confidence_logit, a.confidence_logit, rtol=1e-5, atol=1e-6)
    new.train()
    opt = torch.optim.SGD(new.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        new(mag).magnitude.log().mean().backward()
        opt.step()


@pytest.mark.parametrize("config", [BandNetConfig(), BandNetConfig(fill="magnitude", channels=4, bands=24),
                                    BandNetConfig(gru_stride=3),
                                    BandNetConfig(gru_stride=4, context=5, block=16, channels=3),
                                    BandNetConfig(lookahead=1), BandNetConfig(gru_stride=1, lookahead=2),
                                    BandNetConfig(bin_input=True),
                                    BandNetConfig(gru_stride=2, lookahead=1, bin_input=True)])
def test_future_frames_do_not_change_past_outputs(config: BandNetConfig) -> None:
    """An estimate sees its frame and `lookahead` frames after it, no more."""
    net = _random_net(config)
    mag = _magnitudes(30)
    changed = mag.clone()
    changed[:, 12:] = changed[:, 12:].flip(-1) * 3.0
    seen = 12 - config.lookahead                  # the frames whose estimates see none of the change
    with torch.no_grad():
        a, b = net(mag), net(changed)
    assert torch.equal(a.magnitude[:, :seen], b.magnitude[:, :seen])
    assert not torch.allclose(a.magnitude[:, seen: seen + 1], b.magnitude[:, seen: seen + 1])


@pytest.mark.parametrize("fill", ["power", "magnitude"])
def test_band_power_from_band_outputs_equals_pooled_bins(fill: str) -> None:
    net = _random_net(BandNetConfig(fill=fill))
    mag = _magnitudes(6)
    with torch.no_grad():
        out = net.bands(mag)
        pooled = (net.expand(out.gain, out.fill, mag) / net.full_scale) ** 2 @ net.pooling
        torch.testing.assert_close(net.band_power(out), pooled, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("config", [BandNetConfig(), BandNetConfig(gru_stride=2), BandNetConfig(gru_stride=3),
                                    BandNetConfig(gru_stride=4, context=4, block=16),
                                    BandNetConfig(gru_stride=1, context=3, block=8),
                                    BandNetConfig(gru_stride=2, context=3, channels=3),
                                    BandNetConfig(lookahead=1), BandNetConfig(gru_stride=1, context=3, lookahead=2),
                                    BandNetConfig(gru_stride=3, context=4, block=8, lookahead=1),
                                    BandNetConfig(bin_input=True), BandNetConfig(gru_stride=1, bin_input=True),
                                    BandNetConfig(gru_stride=3, lookahead=2, block=8, bin_input=True)])
def test_streaming_torch_and_onnx_equal_offline(tmp_path, config: BandNetConfig) -> None:
    """Call k of the streaming graph gives frame k - lookahead's estimate, the offline one; after the last
    frame, `lookahead` silent ones flush the rest, as the engine does."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from training.export import stream_onnx
    from training.v2.export import export_onnx

    net = _random_net(config)
    mag = _magnitudes(25)
    la = config.lookahead
    fed = torch.cat([mag, torch.zeros(2, la, mag.shape[2])], dim=1)    # the flush: la silent frames
    with torch.no_grad():
        offline = net(mag)
        stream = StreamingBandNet(net)
        states = [torch.zeros(2, *shape) for shape in net.state_shapes().values()]
        frames = []
        for t in range(fed.shape[1]):
            out, _, *states = stream(fed[:, t], *states)
            frames.append(out)
    reference = offline.magnitude.numpy()
    np.testing.assert_allclose(torch.stack(frames[la:], 1).numpy(), reference, rtol=1e-5, atol=1e-6 * reference.max())
    path = export_onnx(net, tmp_path / "v2.onnx")
    import onnx
    model = onnx.load(str(path))
    branches = [node.op_type for node in model.graph.node if node.op_type == "If"]
    assert len(branches) == (config.gru_stride > 1)          # the frames between GRU updates skip it
    assert {p.key: p.value for p in model.metadata_props}["gapfill.lookahead_frames"] == str(la)
    magnitude, confidence = (a[:, la:] for a in stream_onnx(path, fed.numpy()))
    assert np.max(np.abs(magnitude - reference)) <= 1e-4 * np.max(np.abs(reference))
    expected = (torch.sigmoid(offline.confidence_logit) @ net.expansion).numpy()
    assert np.max(np.abs(confidence - expected)) <= 1e-4
    mono, _ = stream_onnx(path, fed[:1].numpy())                 # one channel: batch 1
    assert np.max(np.abs(mono[:, la:] - reference[:1])) <= 1e-4 * np.max(np.abs(reference))


def test_a_widened_network_starts_from_its_parent_and_keeps_the_checkpoint_going(tmp_path) -> None:
    from training.v2.__main__ import main
    from training.v2.widen import parent_bands, widen

    parents = parent_bands(32, 64)
    assert parents[0] == 0 and parents[-1] == 31 and np.all(np.diff(parents) >= 0)
    assert set(parents.tolist()) == set(range(32))                       # every old band has a child
    torch.manual_seed(3)
    net = BandNet(BandNetConfig(bands=32, hidden=16))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    wide = widen(net, 64)
    flat = torch.full((1, 5, features.BINS), 0.05)                        # every band's features alike
    a, b = net.bands(flat), wide.bands(flat)
    for old, new in ((a.gain, b.gain), (a.fill, b.fill), (a.confidence_logit, b.confidence_logit)):
        torch.testing.assert_close(new, old[..., parents], rtol=2e-4, atol=1e-9)   # each band its parent's
    with pytest.raises(ValueError, match="not more"):
        widen(net, 32)
    ck = tmp_path / "last.pt"
    adam = torch.optim.Adam(net.parameters()).state_dict()
    torch.save({"model": net.state_dict(), "optim": adam, "config": {"bands": 32, "channels": 0, "hidden": 16,
                "fill": "power"}, "state": {"step": 7, "cpu_s": 1.5}, "budget_cpu_s": 3600.0}, ck)
    assert main(["widen", "--bands", "64", "--checkpoint", str(ck)]) == 0
    widened = torch.load(ck, weights_only=False)
    assert widened["config"]["bands"] == 64 and widened["state"]["step"] == 7
    assert widened["state"]["widened"] == [{"bands": [32, 64], "step": 7, "cpu_s": 1.5}]


def test_more_hidden_units_keep_the_function_and_all_units_learn(tmp_path) -> None:
    from training.v2.__main__ import main
    from training.v2.widen import widen_hidden

    torch.manual_seed(4)
    net = _random_net(BandNetConfig(hidden=16, channels=3))
    wide = widen_hidden(net, 24)
    _same_function_then_two_steps(net, wide)   # the head learns to read the new units first, then they learn
    assert wide.out.weight.grad[:, 16:].abs().sum() > 0
    assert wide.gru.weight_hh_l0.grad[16:24].abs().sum() > 0
    with pytest.raises(ValueError, match="not more"):
        widen_hidden(net, 16)
    ck = tmp_path / "last.pt"
    adam = torch.optim.Adam(net.parameters()).state_dict()
    torch.save({"model": net.state_dict(), "optim": adam, "config": {"bands": 32, "channels": 3, "hidden": 16,
                "fill": "power"}, "state": {"step": 9, "cpu_s": 2.0}, "budget_cpu_s": 3600.0}, ck)
    torch.save({**torch.load(ck, weights_only=False), "average": net.state_dict()}, ck)
    assert main(["widen", "--hidden", "24", "--gru-stride", "2", "--checkpoint", str(ck)]) == 0
    widened = torch.load(ck, weights_only=False)
    assert widened["config"]["hidden"] == 24 and widened["config"]["gru_stride"] == 2
    assert widened["state"]["widened"] == [{"hidden": [16, 24], "gru_stride": [1, 2], "step": 9, "cpu_s": 2.0}]
    assert widened["average"].keys() == widened["model"].keys()   # the average widened with the weights
    new_units = slice(16, 24)
    torch.testing.assert_close(widened["average"]["gru.weight_hh_l0"][new_units],
                               widened["model"]["gru.weight_hh_l0"][new_units])
    torch.save({**widened, "optim": {"kept": 1}}, ck)
    assert main(["widen", "--gru-stride", "4", "--checkpoint", str(ck)]) == 0
    restrided = torch.load(ck, weights_only=False)          # same shapes: Adam and the average are kept
    assert restrided["optim"] == {"kept": 1} and "average" in restrided and restrided["config"]["gru_stride"] == 4


def test_more_context_and_blocks_keep_the_function_and_learn(tmp_path) -> None:
    from training.v2.__main__ import main
    from training.v2.widen import add_blocks, widen_context

    net = _random_net(BandNetConfig(hidden=16, gru_stride=2))
    deep = add_blocks(widen_context(net, 4), 12)
    assert deep.config.context == 4 and deep.config.block == 12
    mag = _magnitudes(20)
    _same_function_then_two_steps(net, deep)   # the blocks' last layers learn first, then their first ones
    assert deep.in_block[0].weight.grad.abs().sum() > 0 and deep.head_block[0].weight.grad.abs().sum() > 0
    assert deep.gru_in.weight.grad.view(16, 32, 12)[..., :6].abs().sum() > 0
    with pytest.raises(ValueError, match="not more"):
        widen_context(net, 2)
    with pytest.raises(ValueError, match="blocks already"):
        add_blocks(deep, 8)
    ck = tmp_path / "last.pt"
    opt = torch.optim.Adam(net.parameters())
    net(mag).magnitude.log().mean().backward()
    opt.step()
    averaged = _random_net(BandNetConfig(hidden=16, gru_stride=2))
    torch.save({"model": net.state_dict(), "average": dict(averaged.named_parameters()), "optim": opt.state_dict(),
                "config": {"bands": 32, "channels": 0, "hidden": 16, "fill": "power", "gru_stride": 2},
                "state": {"step": 5, "cpu_s": 1.0}, "budget_cpu_s": 3600.0}, ck)
    assert main(["widen", "--context", "4", "--block", "12", "--checkpoint", str(ck)]) == 0
    widened = torch.load(ck, weights_only=False)
    assert widened["config"]["context"] == 4 and widened["config"]["block"] == 12
    assert widened["state"]["widened"] == [{"context": [2, 4], "block": [0, 12], "step": 5, "cpu_s": 1.0}]
    names = [name for name, _ in deep.named_parameters()]
    kept = {names[i] for i in widened["optim"]["state"]}     # Adam's moments where the shape did not change
    assert kept == {name for name, _ in net.named_parameters()} - {"gru_in.weight"}
    resumed = torch.optim.Adam(deep.parameters())
    resumed.load_state_dict(widened["optim"])
    average = build(widened["config"])
    average.load_state_dict(widened["average"])              # the average widened too: the same function
    with torch.no_grad():
        torch.testing.assert_close(average(mag).magnitude, averaged(mag).magnitude, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(widened["average"]["in_block.0.weight"], widened["model"]["in_block.0.weight"])


def test_a_look_ahead_starts_as_the_network_a_frame_late_and_learns_the_new_frame(tmp_path) -> None:
    from training.v2.__main__ import main
    from training.v2.widen import add_lookahead

    net = _random_net(BandNetConfig(hidden=16, gru_stride=1))
    ahead = add_lookahead(net, 1)
    assert (ahead.config.lookahead, ahead.config.context) == (1, 3)
    w = ahead.gru_in.weight.view(16, 32, 9)
    assert torch.equal(w[..., :6], net.gru_in.weight.view(16, 32, 6)) and not w[..., 6:].any()
    mag = _magnitudes(20)
    ahead.train()
    opt = torch.optim.SGD(ahead.parameters(), lr=0.1)
    opt.zero_grad()
    ahead(mag).magnitude.log().mean().backward()
    assert ahead.gru_in.weight.grad.view(16, 32, 9)[..., 6:].abs().sum() > 0     # the new frame is learnt
    with pytest.raises(ValueError, match="looks ahead already"):
        add_lookahead(ahead, 1)
    ck = tmp_path / "last.pt"
    torch.save({"model": net.state_dict(), "optim": torch.optim.Adam(net.parameters()).state_dict(),
                "config": {"bands": 32, "channels": 0, "hidden": 16, "fill": "power", "gru_stride": 1},
                "state": {"step": 3, "cpu_s": 1.0}, "budget_cpu_s": 3600.0}, ck)
    assert main(["widen", "--lookahead", "1", "--checkpoint", str(ck)]) == 0
    widened = torch.load(ck, weights_only=False)
    assert widened["config"]["lookahead"] == 1 and widened["config"]["context"] == 3
    assert widened["state"]["widened"] == [{"context": [2, 3], "lookahead": [0, 1], "step": 3, "cpu_s": 1.0}]


def test_bin_levels_start_unread_and_are_learnt(tmp_path) -> None:
    """add_bin_input keeps the network's function (zero columns), the new columns get gradients, a second
    call is refused, `widen --bin-input` records the change, and a stored config without the key means none."""
    from training.v2.__main__ import main
    from training.v2.widen import add_bin_input

    net = _random_net(BandNetConfig(hidden=16))
    fine = add_bin_input(net)
    assert fine.config.bin_input and fine.gru_in.weight.shape == (16, 32 * 6 + features.BINS)
    assert not fine.gru_in.weight[:, 32 * 6:].any()
    _same_function_then_two_steps(net, fine)
    assert fine.gru_in.weight.grad[:, 32 * 6:].abs().sum() > 0
    assert fine.count_macs() - net.count_macs() == features.BINS * 16 // 4    # on the GRU's frames only
    with pytest.raises(ValueError, match="bin levels already"):
        add_bin_input(fine)
    ck = tmp_path / "last.pt"
    torch.save({"model": net.state_dict(), "optim": torch.optim.Adam(net.parameters()).state_dict(),
                "config": {"bands": 32, "channels": 0, "hidden": 16, "fill": "power", "gru_stride": 4},
                "state": {"step": 7, "cpu_s": 2.0}, "budget_cpu_s": 3600.0}, ck)
    assert main(["widen", "--bin-input", "--checkpoint", str(ck)]) == 0
    widened = torch.load(ck, weights_only=False)
    assert widened["config"]["bin_input"] is True
    assert widened["state"]["widened"] == [{"bin_input": [False, True], "step": 7, "cpu_s": 2.0}]
    assert build({k: v for k, v in widened["config"].items() if k != "bin_input"}).config.bin_input is False
