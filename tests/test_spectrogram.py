"""`gapfill spectrogram` and realtime.frontends.spectrogram: the picture, the options, the one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf

from realtime.errors import GapfillError
from realtime.cli.main import build_parser
from realtime.frontends.spectrogram import spectrogram_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*argv: str) -> int:
    args = build_parser().parse_args(["spectrogram", *argv])
    return args.handler(args)


@pytest.fixture
def wavs(tmp_path):
    """A 48 kHz stereo tone and a 22.05 kHz mono noise file."""
    t = np.arange(48_000) / 48_000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "tone.wav", np.stack([tone, tone], axis=1), 48_000)
    sf.write(tmp_path / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(22_050), 22_050)
    return tmp_path / "tone.wav", tmp_path / "noise.wav"


def test_full_scale_sine_peaks_at_its_frequency_near_0_db():
    rate = 48_000
    t = np.arange(rate) / rate
    times, freqs, power = spectrogram_db(np.sin(2 * np.pi * 3000 * t), rate)
    assert power.shape == (len(freqs), len(times))
    middle = power[:, len(times) // 2]
    assert abs(freqs[int(np.argmax(middle))] - 3000) < freqs[1]
    assert -3.0 < middle.max() < 0.5


def test_command_writes_a_png_side_by_side(tmp_path, wavs):
    pytest.importorskip("matplotlib")
    out = tmp_path / "compare.png"
    assert run(str(wavs[0]), str(wavs[1]), "-o", str(out), "--labels", "tone", "noise") == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_existing_output_needs_force(tmp_path, wavs):
    pytest.importorskip("matplotlib")
    out = tmp_path / "a.png"
    out.write_bytes(b"old")
    with pytest.raises(GapfillError, match="exists"):
        run(str(wavs[0]), "-o", str(out))
    assert run(str(wavs[0]), "-o", str(out), "--force", "--duration", "0.5", "--max-freq", "5") == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{tone}", "{noise}", "-o", "{out}", "--labels", "one"], "1 label for 2 inputs"),
        (["{tone}", "-o", "{dir}/x.jpg"], "must end in .png"),
        (["{dir}/missing.wav", "-o", "{out}"], "cannot read '.*missing.wav'"),
        (["{tone}", "-o", "{dir}/no/such/x.png"], "no such directory"),
        (["{tone}", "-o", "{out}", "--start", "5"], "past its end"),
    ],
)
def test_user_errors_are_one_line(tmp_path, wavs, argv, message):
    pytest.importorskip("matplotlib")
    names = {"tone": wavs[0], "noise": wavs[1], "out": tmp_path / "o.png", "dir": tmp_path}
    with pytest.raises(GapfillError, match=message) as error:
        run(*[a.format(**names) for a in argv])
    assert "\n" not in str(error.value)


def test_missing_matplotlib_is_a_clear_error(tmp_path, wavs, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(GapfillError, match=r"matplotlib.*gapfill\[plot\]"):
        run(str(wavs[0]), "-o", str(tmp_path / "x.png"))


def test_gapfill_command_lists_and_runs_the_subcommand(tmp_path, wavs):
    pytest.importorskip("matplotlib")
    from realtime.cli import main as cli

    assert "spectrogram" in cli.build_parser().format_help()
    assert cli.main(["spectrogram", str(wavs[0]), "-o", str(tmp_path / "c.png")]) == 0
    assert cli.main(["spectrogram", str(wavs[0]), "-o", str(tmp_path / "c.png")]) == 2  # exists, no --force
