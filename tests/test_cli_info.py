"""`gapfill info`, help and version."""

from __future__ import annotations

import json

from realtime import __version__
from realtime.cli.main import main
from realtime.engine.restorer import Restorer


def test_info_text_shows_model_stft_and_latency_parts(passthrough_config, capsys):
    assert main(["info", "--config", passthrough_config]) == 0
    text = capsys.readouterr().out
    restorer = Restorer.from_config(passthrough_config)
    restorer.prepare(48_000, 1, 1024)
    total = restorer.latency_samples
    assert "passthrough" in text and f"fft_size: {restorer.fft_size}\n" in text and f"hop: {restorer.hop}\n" in text
    assert f"latency at 48000 Hz: {total} samples ({1000 * total / 48_000:.2f} ms)" in text
    for name, samples in restorer.latency_parts.items():
        assert f"  {name}: {samples} samples" in text
    assert "latency at 44100 Hz" not in text


def test_info_json_with_host_rate(passthrough_config, capsys):
    assert main(["info", "--config", passthrough_config, "--rate", "44100", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["model"]["name"] == "passthrough" and facts["stft"]["fft_size"] == 1024
    assert [entry["rate_hz"] for entry in facts["latency"]] == [48_000, 44_100]
    restorer = Restorer.from_config(passthrough_config)
    for entry in facts["latency"]:
        restorer.prepare(entry["rate_hz"], 1, 1024)
        assert entry["samples"] == restorer.latency_samples
        assert sum(part["samples"] for part in entry["parts"].values()) == entry["samples"]
        assert abs(entry["ms"] - 1000 * entry["samples"] / entry["rate_hz"]) < 1e-3


def test_no_command_prints_help_and_version_works(run_gapfill):
    done = run_gapfill()
    assert done.returncode == 0
    for command in ("restore", "stream", "info"):
        assert command in done.stdout.decode()
    done = run_gapfill("--version")
    assert done.returncode == 0 and done.stdout.decode().strip() == f"gapfill {__version__}"
