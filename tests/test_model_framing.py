"""A model runs only with the framing it was trained with (metadata `gapfill.window`, Hann when absent), and
the shipped model and the default config agree on it; its gate calibration comes with it (`gapfill.gate.*`)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine.config import MODEL_RATE_HZ, load_config
from realtime.engine.model_files import open_session, shipped_model_path
from realtime.engine.model import OnnxModel
from realtime.engine.restorer import Restorer
from realtime.engine.windows import WINDOWS
from realtime.errors import GapfillError

onnx = pytest.importorskip("onnx")

from conftest import shipped_model_with_metadata  # noqa: E402


def test_the_shipped_model_follows_the_contract_with_the_default_framing():
    path = shipped_model_path()
    assert path.is_file() and path.stat().st_size < 8e6
    model = OnnxModel(path, threads=1)
    config = load_config(None)
    assert model.sample_rate == MODEL_RATE_HZ
    assert (model.fft_size, model.hop, model.window) == (config.fft_size, config.hop, config.window)
    assert model.state_shapes                       # temporal state is explicit
    opsets = onnx.load(str(path)).opset_import
    assert max(o.version for o in opsets if o.domain in ("", "ai.onnx")) >= 17


def test_the_shipped_model_carries_the_calibration_and_training_its_card_records():
    """The gate calibration `python -m training.v2 all` exports with, and at least the 20 CPU h of training
    a model needs before it ships (issue #23)."""
    pytest.importorskip("torch")
    from training.v2.export import SHIPPED_GATE_CALIBRATION

    gate = load_config(None).gate
    assert {key: gate[key] for key in SHIPPED_GATE_CALIBRATION} == SHIPPED_GATE_CALIBRATION
    meta = open_session(shipped_model_path(), 1).get_modelmeta().custom_metadata_map
    assert float(meta["gapfill.train_cpu_hours"]) >= 20.0 and meta["gapfill.weights"] == "average"


def test_the_shipped_model_refuses_the_other_framing():
    trained = load_config(None).window
    other = next(w for w in WINDOWS if w != trained)
    with pytest.raises(GapfillError, match=f"trained with the {trained} framing, config has {other}"):
        Restorer.from_config(None, {"stft": {"window": other}})


def test_a_model_that_names_no_window_is_a_hann_model(tmp_path):
    path = str(shipped_model_with_metadata(tmp_path / "hann.onnx", drop=("gapfill.window",), **{"gapfill.hop": "256"}))
    with pytest.raises(GapfillError, match="trained with the hann framing, config has asymmetric"):
        Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 256, "window": "asymmetric"}})
    restorer = Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 256, "window": "hann"}})
    assert restorer.describe()["stft"]["window"].startswith("hann")


def test_an_asymmetric_model_runs_only_with_the_asymmetric_framing(tmp_path):
    framing = {"gapfill.window": "asymmetric", "gapfill.hop": "128"}
    path = str(shipped_model_with_metadata(tmp_path / "asymmetric.onnx", **framing))
    with pytest.raises(GapfillError, match="trained with the asymmetric framing, config has hann"):
        Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 128, "window": "hann"}})
    restorer = Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 128, "window": "asymmetric"}})
    restorer.prepare(48_000, 1, 512)
    lookahead = restorer.model.lookahead_frames + restorer.config.phase["lookahead_frames"]
    assert restorer.latency_samples == 2 * 128 - 1 + 128 * lookahead      # framing plus the look-aheads
    assert restorer.describe()["stft"]["window"].startswith("asymmetric")
    out = restorer.process(np.zeros((1, 2048), np.float32))
    assert np.all(out == 0.0)


def test_a_config_that_names_only_the_model_runs_at_the_models_framing(tmp_path):
    framing = {"gapfill.window": "asymmetric", "gapfill.hop": "128"}
    path = str(shipped_model_with_metadata(tmp_path / "asymmetric.onnx", **framing))
    config_file = tmp_path / "model-only.yaml"
    config_file.write_text(f"model:\n  path: {path}\n")
    restorer = Restorer.from_config(str(config_file))
    assert (restorer.config.fft_size, restorer.config.hop, restorer.config.window) == (1024, 128, "asymmetric")
    restorer.prepare(48_000, 1, 512)
    assert restorer.latency_samples == 2 * 128 - 1 + 128 * (restorer.model.lookahead_frames
                                                            + restorer.config.phase["lookahead_frames"])
    hann = str(shipped_model_with_metadata(tmp_path / "hann.onnx", drop=("gapfill.window",), **{"gapfill.hop": "256"}))
    assert Restorer.from_config(None, {"model": {"path": hann}}).config.stft == {"fft_size": 1024, "hop": 256,
                                                                                 "window": "hann"}


def test_the_gate_calibration_comes_from_the_model_unless_the_config_sets_it(tmp_path):
    from realtime.engine.model_files import GATE_CALIBRATION, gate_metadata_key

    calibration = tuple(gate_metadata_key(key) for key in GATE_CALIBRATION)
    bare = str(shipped_model_with_metadata(tmp_path / "bare.onnx", drop=calibration))
    assert {k: load_config(None, {"model": {"path": bare}}).gate[k] for k in GATE_CALIBRATION} == GATE_CALIBRATION
    path = str(shipped_model_with_metadata(tmp_path / "calibrated.onnx", drop=calibration,
                                           **{"gapfill.gate.damage_share": "0.04"}))
    gate = load_config(None, {"model": {"path": path}}).gate
    assert gate["damage_share"] == 0.04 and gate["codec_share"] == GATE_CALIBRATION["codec_share"]
    assert load_config(None, {"model": {"path": path}, "gate": {"damage_share": 0.01}}).gate["damage_share"] == 0.01
    restorer = Restorer.from_config(None, {"model": {"path": path}})
    assert restorer.config.gate["damage_share"] == 0.04
    broken = str(shipped_model_with_metadata(tmp_path / "broken.onnx", **{"gapfill.gate.codec_share": "high"}))
    with pytest.raises(GapfillError, match="metadata 'gapfill.gate.codec_share' is not a number"):
        load_config(None, {"model": {"path": broken}})
    with pytest.raises(GapfillError, match="or 'model'"):
        load_config(None, {"gate": {"codec_share": "auto"}})
