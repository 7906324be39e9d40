"""A model runs only with the framing it was trained with (metadata `gapfill.window`, Hann when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engine.config import shipped_model_path
from realtime.engine.restorer import Restorer
from realtime.errors import GapfillError

onnx = pytest.importorskip("onnx")


def _with_metadata(tmp_path, **values: str):
    """A copy of the shipped model with metadata entries replaced or added."""
    model = onnx.load(str(shipped_model_path()))
    entries = {p.key: p.value for p in model.metadata_props}
    entries.update(values)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_the_shipped_model_is_a_hann_model_and_refuses_the_asymmetric_framing():
    with pytest.raises(GapfillError, match="trained with the hann framing, config has asymmetric"):
        Restorer.from_config(None, {"stft": {"window": "asymmetric"}})


def test_an_asymmetric_model_runs_only_with_the_asymmetric_framing(tmp_path):
    path = str(_with_metadata(tmp_path, **{"gapfill.window": "asymmetric", "gapfill.hop": "128"}))
    with pytest.raises(GapfillError, match="trained with the asymmetric framing, config has hann"):
        Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 128}})
    restorer = Restorer.from_config(None, {"model": {"path": path}, "stft": {"hop": 128, "window": "asymmetric"}})
    restorer.prepare(48_000, 1, 512)
    assert restorer.latency_samples == 2 * 128 - 1 + 128               # framing plus one hop of phase look-ahead
    assert restorer.describe()["stft"]["window"].startswith("asymmetric")
    out = restorer.process(np.zeros((1, 2048), np.float32))
    assert np.all(out == 0.0)
