"""Each channel's model estimate is its own: independent of the channel's position among the others and of
how many there are, so identical channels come out of the engine identical, bit for bit.

onnxruntime computes the rows of one batch slightly differently (a few 1e-6 on identical rows), and the
completion phase stage can turn that into audibly different channels; the model stage runs each channel
alone. A graph built here that weights each batch row by its position stands in for that rounding, so the
unit test does not depend on which kernels onnxruntime picks on this machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.model import OnnxModel
from realtime.engine.restorer import Restorer

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

from conftest import REPO_ROOT  # noqa: E402

BINS = 513
CLIP = REPO_ROOT / "examples" / "hedgewars-british-32k.mp3"


def _position_weighted_model(path: Path) -> Path:
    """An ONNX model whose estimate of row b is (magnitude + previous magnitude) * (b + 1); state
    `prev` [batch, BINS] carries the previous magnitude."""
    nodes = [
        helper.make_node("Shape", ["magnitude"], ["shape"]),
        helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                         value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Constant", [], ["batch_axis"], value=helper.make_tensor("axis", TensorProto.INT64, [], [0])),
        helper.make_node("CumSum", ["ones", "batch_axis"], ["position"]),
        helper.make_node("Add", ["magnitude", "state_in.prev"], ["pair_sum"]),
        helper.make_node("Mul", ["pair_sum", "position"], ["magnitude_out"]),
        helper.make_node("Identity", ["magnitude"], ["state_out.prev"]),
    ]
    def tensor(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", BINS])
    graph = helper.make_graph(nodes, "position_weighted", [tensor("magnitude"), tensor("state_in.prev")],
                              [tensor("magnitude_out"), tensor("state_out.prev")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in {"gapfill.sample_rate": MODEL_RATE_HZ, "gapfill.fft_size": 1024, "gapfill.hop": 256,
                       "gapfill.lookahead_frames": 0}.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_every_channel_gets_the_estimate_it_would_get_alone(tmp_path):
    model = OnnxModel(_position_weighted_model(tmp_path / "position.onnx"), threads=1)
    frames = np.random.default_rng(0).uniform(0.0, 1.0, (4, 3, BINS)).astype(np.float32)  # (hops, channels, F)
    model.prepare(3)
    model.reset()
    estimate, confidence = np.zeros((3, BINS), np.float32), np.ones((3, BINS), np.float32)
    previous = np.zeros((3, BINS), np.float32)
    for hop in frames:
        model.process(hop, estimate, confidence)
        np.testing.assert_array_equal(estimate, hop + previous)      # every channel as row 0, its own state
        assert np.all(confidence == 0.0)                              # no confidence output: 0
        previous = hop


def test_identical_channels_are_restored_identically_and_as_one_channel_alone():
    """The shipped model on MP3-coded speech: two identical channels restored apart come out identical, bit
    for bit, and equal to the channel restored alone (as a mid/side pair: tests/test_decode_chains.py)."""
    mono, rate = sf.read(str(CLIP), dtype="float32")
    assert rate == MODEL_RATE_HZ
    mono = mono[: 3 * rate]
    alone = Restorer.from_config(None)
    expected = alone.restore(mono, rate)
    assert alone.codec_report()["engaged"] and np.max(np.abs(expected - mono)) > 1e-3   # restored, not bypassed
    pair = Restorer.from_config(None, {"model": {"stereo": "channels"}}).restore(np.stack([mono, mono]), rate)
    np.testing.assert_array_equal(pair[0], expected)
    np.testing.assert_array_equal(pair[1], expected)
