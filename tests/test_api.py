"""The Python API a newcomer uses: `from realtime import restore` restores an array in one call."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import realtime
from conftest import ENGINES, REPO_ROOT
from realtime import GapfillError, Restorer, load_config, restore

PASSTHROUGH = ENGINES["passthrough"]


def test_import_realtime_loads_no_engine():
    code = "import sys, realtime; print(any(m.startswith(('numba', 'onnxruntime')) for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert done.stdout.strip() == "False"
    assert set(realtime.__all__) >= {"Restorer", "restore", "restore_file", "load_config"}


@pytest.mark.parametrize("shape", [(20_000,), (1, 20_000), (2, 20_000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_restore_keeps_shape_dtype_and_alignment(shape, dtype):
    audio = (0.3 * np.random.default_rng(0).standard_normal(shape)).astype(dtype)
    restored = restore(audio, 48_000, PASSTHROUGH)  # the pass-through engine: an exact, compensated copy
    assert restored.shape == audio.shape and restored.dtype == audio.dtype
    np.testing.assert_allclose(restored, audio, rtol=0, atol=1e-6)


def test_restore_with_the_shipped_engine_equals_streaming_it():
    audio = (0.3 * np.random.default_rng(1).standard_normal((2, 30_000))).astype(np.float32)
    restored = restore(audio, 44_100)
    restorer = Restorer()
    restorer.prepare(44_100, 2, 512)
    streamed = np.concatenate([restorer.process(audio[:, i : i + 512]) for i in range(0, 30_000, 512)]
                              + [restorer.flush()], axis=1)
    np.testing.assert_allclose(restored, streamed[:, restorer.latency_samples :], rtol=0, atol=1e-6)


def test_restore_refuses_frames_by_channels_with_a_hint():
    with pytest.raises(ValueError, match=r"must be \(channels, samples\), got \(20000, 2\): transpose"):
        restore(np.zeros((20_000, 2), np.float32), 48_000, PASSTHROUGH)
    with pytest.raises(ValueError, match="float32 or float64, got int16"):
        restore(np.zeros(100, np.int16), 48_000, PASSTHROUGH)


def test_overrides_are_validated_like_the_yaml_file(tmp_path):
    restorer = Restorer.from_config(None, overrides={"phase": {"method": "rtpghi"}})
    assert restorer.config.phase["method"] == "rtpghi" and restorer.config.stft == load_config(None).stft
    with pytest.raises(GapfillError, match=r"config 'phase.method': must be one of 'decoded', 'rtpghi'"):
        Restorer.from_config(None, overrides={"phase": {"method": "magic"}})
    with pytest.raises(GapfillError, match=r"config 'stft.hopp': unknown key"):
        load_config(None, {"stft": {"hopp": 128}})
    (tmp_path / "user.yaml").write_text("phase: {method: decoded}\nmodel: {threads: 2}\n")
    config = load_config(tmp_path / "user.yaml", {"model": {"threads": 1}})
    assert config.phase["method"] == "decoded" and config.model["threads"] == 1  # overrides win


def test_codec_report_of_clean_input_says_nothing_was_restored():
    restorer = Restorer()
    audio = (0.3 * np.random.default_rng(2).standard_normal(48_000)).astype(np.float32)
    np.testing.assert_allclose(restorer.restore(audio, 48_000), audio, rtol=0, atol=1e-5)  # never worse
    report = restorer.codec_report()
    assert report["gate_enabled"] is True and report["engaged"] is False and report["cutoff_hz"] is None
    assert report["engaged_after_s"] is None and report["restored_share"] == 0.0
