"""`gapfill restore`: length, alignment, rate and sample format of the output; atomic writing; progress;
`--stats-json` and the codec gate's verdict."""

from __future__ import annotations

import json
import os
import pty
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.engine.restorer import Restorer
from realtime.frontends.audiofile import output_subtype
from realtime.cli.main import main
from conftest import read_until_closed

ODD_FRAMES = int(48_000 * 1.3) + 17


def restore(source: Path, out: Path, config: str, *options: str) -> int:
    """Run `gapfill restore` in this process; returns the exit status."""
    return main(["restore", str(source), str(out), "--config", config, *options])


def leftovers(directory: Path) -> list[str]:
    """Names of temporary output files left in `directory`."""
    return [p.name for p in directory.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize(
    ("in_subtype", "channels", "out_name", "out_subtype", "tolerance"),
    [
        ("PCM_16", 2, "out.wav", "PCM_16", 2.0**-15),
        ("FLOAT", 1, "out.wav", "FLOAT", 1e-6),
        ("FLOAT", 2, "out.flac", "PCM_24", 2.0**-23 + 1e-6),
        ("PCM_24", 1, "OUT.FLAC", "PCM_24", 2.0**-23 + 1e-6),
    ],
)
def test_output_lines_up_with_input(
    in_subtype, channels, out_name, out_subtype, tolerance,
    tmp_path, write_audio, passthrough_config, run_gapfill,
):
    x = write_audio(tmp_path / "in.wav", ODD_FRAMES, channels, subtype=in_subtype)
    done = run_gapfill(
        "restore", str(tmp_path / "in.wav"), str(tmp_path / out_name), "--config", passthrough_config
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""  # no progress bar when stderr is not a terminal
    info = sf.info(tmp_path / out_name)
    assert (info.samplerate, info.channels, info.subtype) == (48_000, channels, out_subtype)
    y = sf.read(tmp_path / out_name, dtype="float32", always_2d=True)[0]
    assert y.shape == x.shape
    assert np.abs(y - x).max() <= tolerance
    assert leftovers(tmp_path) == []


def test_mp3_input(tmp_path, make_signal, passthrough_config):
    sf.write(tmp_path / "in.mp3", make_signal(48_000 * 2, 1), 48_000, format="MP3")
    decoded = sf.read(tmp_path / "in.mp3", dtype="float32", always_2d=True)[0]
    assert restore(tmp_path / "in.mp3", tmp_path / "out.wav", passthrough_config) == 0
    assert sf.info(tmp_path / "out.wav").subtype == "FLOAT"
    y = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)[0]
    assert y.shape == decoded.shape
    assert np.abs(y - decoded).max() <= 1e-5


def test_cut_mp3_restores_what_it_holds_quietly(tmp_path, make_signal, passthrough_config, capfd):
    """libsndfile only estimates an MP3's length, so a cut MP3 is restored as far as it goes (libmpg123's
    warnings about it are kept off the terminal)."""
    sf.write(tmp_path / "whole.mp3", make_signal(48_000 * 3, 1), 48_000, format="MP3")
    data = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    decoded = sf.read(tmp_path / "cut.mp3", dtype="float32", always_2d=True)[0]
    capfd.readouterr()
    assert restore(tmp_path / "cut.mp3", tmp_path / "out.wav", passthrough_config) == 0
    assert capfd.readouterr().err == ""
    assert sf.info(tmp_path / "out.wav").frames == len(decoded)


def test_44100_hz_input_keeps_its_rate_length_and_alignment(tmp_path, write_audio, passthrough_config):
    x = write_audio(tmp_path / "in.wav", 44_100 * 2 + 11, 2, rate=44_100, subtype="FLOAT")
    assert restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config) == 0
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 44_100 and y.shape == x.shape
    # Resampling to 48 kHz and back is not exact (band limit); the best alignment must be lag 0.
    inner = slice(2000, -2000)
    errors = {lag: np.mean((np.roll(y, lag, axis=0)[inner] - x[inner]) ** 2) for lag in range(-3, 4)}
    assert min(errors, key=errors.get) == 0
    assert errors[0] < 0.01 * np.mean(x**2)


def test_integer_output_clips_and_float_output_keeps_overs(tmp_path, passthrough_config):
    x = np.zeros((48_000, 1), np.float32)
    x[10_000:10_100] = 1.5
    x[20_000:20_100] = -1.5
    sf.write(tmp_path / "in.wav", x, 48_000, subtype="FLOAT")
    for name in ("out.flac", "out.wav"):
        assert restore(tmp_path / "in.wav", tmp_path / name, passthrough_config) == 0
    clipped = sf.read(tmp_path / "out.flac", dtype="float64")[0]
    assert clipped[10_050] == pytest.approx(1.0, abs=1e-6) and clipped[20_050] == -1.0  # clipped, not wrapped
    kept = sf.read(tmp_path / "out.wav", dtype="float64")[0]
    assert kept[10_050] == pytest.approx(1.5, abs=1e-5) and kept[20_050] == pytest.approx(-1.5, abs=1e-5)


def test_output_subtype_choice():
    assert output_subtype("PCM_16", "WAV") == "PCM_16"
    assert output_subtype("PCM_24", "FLAC") == "PCM_24"
    assert output_subtype("FLOAT", "FLAC") == "PCM_24"
    assert output_subtype("MPEG_LAYER_III", "WAV") == "FLOAT"
    assert output_subtype("VORBIS", "FLAC") == "PCM_24"
    assert output_subtype("PCM_U8", "WAV") == "FLOAT"


def test_existing_output_needs_force(tmp_path, write_audio, passthrough_config, capfd):
    write_audio(tmp_path / "in.wav", 10_000, 1)
    (tmp_path / "out.wav").write_bytes(b"precious")
    assert restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config) == 2
    assert "exists; use --force" in capfd.readouterr().err
    assert (tmp_path / "out.wav").read_bytes() == b"precious"
    assert restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config, "--force") == 0
    assert sf.info(tmp_path / "out.wav").frames == 10_000
    assert leftovers(tmp_path) == []


def test_read_error_midway_leaves_no_file(tmp_path, write_audio, passthrough_config, capfd):
    write_audio(tmp_path / "whole.flac", 48_000 * 5, 2, subtype="PCM_16")
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    assert restore(tmp_path / "cut.flac", tmp_path / "out.wav", passthrough_config) == 2
    err = capfd.readouterr().err
    assert err.startswith("gapfill: cannot read ") and "truncated at 00:00:0" in err and err.count("\n") == 1
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


STALL_AFTER_FIRST_BLOCK = """
import time
import realtime.frontends.audiofile as audiofile
_read_blocks = audiofile.read_blocks
def read_blocks(*args, **kwargs):
    blocks = _read_blocks(*args, **kwargs)
    yield next(blocks)
    while True:            # a reader that never delivers the second block: the restore is mid-file for good
        time.sleep(1)
audiofile.read_blocks = read_blocks
"""


def test_ctrl_c_removes_the_partial_file(tmp_path, write_audio, passthrough_config, popen_gapfill):
    write_audio(tmp_path / "long.wav", 48_000 * 60, 1, subtype="PCM_16")
    process = popen_gapfill(
        "restore", str(tmp_path / "long.wav"), str(tmp_path / "out.wav"), "--config", passthrough_config,
        prelude=STALL_AFTER_FIRST_BLOCK,
    )
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert leftovers(tmp_path), "no partial file seen while restoring"
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert b"Traceback" not in process.stderr.read()
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


def test_progress_on_a_terminal(tmp_path, write_audio, passthrough_config, popen_gapfill):
    write_audio(tmp_path / "in.wav", 48_000 * 3, 1)
    leader, follower = pty.openpty()
    process = popen_gapfill(
        "restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--config", passthrough_config,
        stderr=follower,
    )
    os.close(follower)
    shown = read_until_closed(leader)
    assert process.wait(timeout=60) == 0
    assert b"\r" in shown and b"%" in shown and b"restoring" in shown


# -- full-band output, stats, the gate's verdict --------------------------------------------------------
def tone_file(path: Path, rate: int, seconds: float = 1.5, hz: float = 1000.0) -> int:
    """A float WAV of a 0.4-peak sine at `rate`; returns its frames."""
    frames = int(rate * seconds) + 13
    sf.write(path, (0.4 * np.sin(2 * np.pi * hz * np.arange(frames) / rate)).astype(np.float32), rate,
             subtype="FLOAT")
    return frames


@pytest.mark.parametrize(("in_rate", "option", "out_rate"), [
    (22_050, [], 48_000), (16_000, [], 48_000), (44_100, [], 44_100), (22_050, ["--rate", "keep"], 22_050),
    (16_000, ["--rate", "32000"], 32_000), (48_000, ["--rate", "24000"], 24_000),
])
def test_output_rate_is_full_band_by_default_and_aligned(in_rate, option, out_rate, tmp_path, passthrough_config):
    frames = tone_file(tmp_path / "in.wav", in_rate)
    assert restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config, *option) == 0
    y, rate = sf.read(tmp_path / "out.wav", dtype="float64")
    assert rate == out_rate and len(y) == (2 * frames * out_rate + in_rate) // (2 * in_rate)  # rounded half up
    # the same tone at the output rate, in time with the input (resampling delay compensated)
    expected = 0.4 * np.sin(2 * np.pi * 1000.0 * np.arange(len(y)) / out_rate)
    inner = slice(out_rate // 10, -out_rate // 10)
    assert np.abs(y[inner] - expected[inner]).max() < 2e-3


def test_unsupported_output_rate_is_a_one_line_error(tmp_path, passthrough_config, capfd):
    tone_file(tmp_path / "in.wav", 22_050)
    assert restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config, "--rate", "12345") == 2
    err = capfd.readouterr().err
    assert "sample rate 12345 Hz is not supported" in err and err.count("\n") == 1
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


def test_stats_json_records_rates_frames_latency_and_the_gate(tmp_path):
    frames = tone_file(tmp_path / "in.wav", 22_050)
    stats = tmp_path / "stats.json"
    assert main(["restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--stats-json", str(stats)]) == 0
    record = json.loads(stats.read_text())
    assert record["input"] == str(tmp_path / "in.wav") and record["output"] == str(tmp_path / "out.wav")
    assert (record["rates"]["input_hz"], record["rates"]["output_hz"]) == (22_050, 48_000)
    assert "Nyquist" in record["rates"]["why"]
    assert record["frames"] == {"input": frames, "output": (2 * frames * 48_000 + 22_050) // (2 * 22_050)}
    engine = Restorer()                                  # the shipped engine, at the 48 kHz it runs at here
    engine.prepare(48_000, 1, 4096)
    assert record["latency"]["samples"] == engine.latency_samples and record["latency"]["compensated"] is True
    assert record["codec_report"]["gate_enabled"] is True and record["codec_report"]["engaged"] is False
    assert record["nonfinite_samples"] == 0 and record["clipped_samples"] == 0 and record["wall_s"] > 0


def test_stats_json_in_a_missing_folder_is_refused_before_any_work(tmp_path, passthrough_config, capfd):
    tone_file(tmp_path / "in.wav", 48_000)
    with pytest.raises(SystemExit):
        restore(tmp_path / "in.wav", tmp_path / "out.wav", passthrough_config, "--stats-json",
                str(tmp_path / "no" / "s.json"))
    assert "directory" in capfd.readouterr().err and not (tmp_path / "out.wav").exists()


def test_the_gate_verdict_is_one_line_on_a_terminal(tmp_path, popen_gapfill):
    tone_file(tmp_path / "in.wav", 48_000)
    leader, follower = pty.openpty()
    process = popen_gapfill("restore", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), stderr=follower)
    os.close(follower)
    shown = read_until_closed(leader)
    assert process.wait(timeout=120) == 0
    assert shown.decode().endswith("\r\x1b[Kgapfill: no codec damage detected: passed through unchanged\r\n")


@pytest.mark.parametrize(("subtype", "clipped"), [("PCM_16", 3), ("PCM_24", 3), ("FLOAT", 0)])
def test_samples_an_integer_output_clips_are_counted(tmp_path, subtype, clipped):
    """Restored treble over a full-scale mix can exceed full scale: an integer output clips it (never
    wraps) and says how many samples; FLOAT keeps them."""
    from realtime.frontends.audiofile import _open_output

    block = np.array([[1.5, -1.25, 1.0, -1.0, 0.5], [0.25, 2.0, -0.25, 0.0, -0.5]], np.float32)
    path = tmp_path / "out.wav"
    with _open_output(str(path), str(path), 48_000, 2, "WAV", subtype) as sink:
        sink.write(block)
        sink.write(block[:, :0])
    assert sink.clipped == clipped
    written, _ = sf.read(path, dtype="float32")
    assert np.all(np.abs(written) <= (1.0 if subtype != "FLOAT" else 2.0))
