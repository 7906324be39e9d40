"""Bad input of every kind: one line `gapfill: ...` on stderr, status 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path
import numpy as np
import pytest
import soundfile as sf

from realtime.cli.main import main

def _wav(path: Path, frames: int = 4800, rate: int = 48_000, channels: int = 1) -> Path:
    sf.write(path, np.zeros((frames, channels), np.float32), rate, subtype="PCM_16")
    return path


def _restore(source: Path, config: str, out: str = "out.wav") -> list[str]:
    return ["restore", str(source), str(source.parent / out), "--config", config]


def _truncated_wav_data(tmp: Path, config: str) -> list[str]:
    data = _wav(tmp / "whole.wav", 48_000).read_bytes()
    (tmp / "whole.wav").unlink()
    (tmp / "cut.wav").write_bytes(data[: len(data) // 2])
    return _restore(tmp / "cut.wav", config)


def _mp3_head(tmp: Path, config: str) -> list[str]:
    """The first 100 bytes of a real MP3 (libmpg123 prints a warning on fd 2 for it)."""
    sf.write(tmp / "whole.mp3", np.zeros(48_000, np.float32), 48_000, format="MP3")
    (tmp / "head.mp3").write_bytes((tmp / "whole.mp3").read_bytes()[:100])
    (tmp / "whole.mp3").unlink()
    return _restore(tmp / "head.mp3", config)


def _mp3_corrupt_middle(tmp: Path, config: str) -> list[str]:
    """A real MP3 with 3000 random bytes in the middle: libmpg123 gives up resyncing (noisily, on fd 2)."""
    noise = np.random.default_rng(0).standard_normal(48_000 * 3).astype(np.float32) * 0.1
    sf.write(tmp / "bad.mp3", noise, 48_000, format="MP3")
    data = bytearray((tmp / "bad.mp3").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes()
    (tmp / "bad.mp3").write_bytes(data)
    return _restore(tmp / "bad.mp3", config)


def _config_file(tmp: Path, text: str) -> str:
    (tmp / "bad.yaml").write_text(text)
    return str(tmp / "bad.yaml")


def _garbage(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    return path


def _in_wav(tmp: Path) -> Path:
    return _wav(tmp / "in.wav")


def _with_config(tmp: Path, text: str) -> list[str]:
    return _restore(_in_wav(tmp), _config_file(tmp, text))


def _stream(*options: str) -> list[str]:
    return ["stream", *options]


def _header_only_wav(tmp: Path, config: str) -> list[str]:
    (tmp / "h.wav").write_bytes(_wav(tmp / "h.wav").read_bytes()[:30])
    return _restore(tmp / "h.wav", config)


# name: (setup(tmp_path, passthrough config) -> argv, a phrase the message must contain)
CASES = {
    "missing input": (lambda tmp, cfg: _restore(tmp / "nope.wav", cfg), "no such file"),
    "directory input": (lambda tmp, cfg: (tmp / "d").mkdir() or _restore(tmp / "d", cfg), "is a directory"),
    "empty file": (lambda tmp, cfg: (tmp / "e.wav").touch() or _restore(tmp / "e.wav", cfg), "cannot read"),
    "truncated wav header": (_header_only_wav, "cannot read"),
    "truncated wav data": (_truncated_wav_data, "truncated (the header announces 96000 bytes"),
    "garbage named .mp3": (lambda tmp, cfg: _restore(_garbage(tmp / "x.mp3"), cfg), "cannot read"),
    "garbage named .m4a": (lambda tmp, cfg: _restore(_garbage(tmp / "x.m4a"), cfg), "libsndfile or FFmpeg"),
    "mp3 cut after 100 bytes": (_mp3_head, "cannot read"),
    "mp3 corrupt in the middle": (_mp3_corrupt_middle, "corrupt or truncated at 00:00:01."),
    "no audio frames": (lambda tmp, cfg: _restore(_wav(tmp / "z.wav", 0), cfg), "no audio"),
    "unsupported rate": (lambda tmp, cfg: _restore(_wav(tmp / "r.wav", rate=37_800), cfg), "37800 Hz"),
    "unsupported channels": (lambda tmp, cfg: _restore(_wav(tmp / "c.wav", channels=9), cfg), "9 channels"),
    "unsupported output format": (lambda tmp, cfg: _restore(_in_wav(tmp), cfg, "out.mp3"), ".wav or .flac"),
    "missing output folder": (lambda tmp, cfg: _restore(_in_wav(tmp), cfg, "no/out.wav"), "cannot write"),
    "malformed config": (lambda tmp, cfg: _with_config(tmp, "model: [unclosed\n"), "malformed YAML"),
    "unknown config key": (lambda tmp, cfg: _with_config(tmp, "stft: {hopp: 256}\n"), "unknown key"),
    "missing config": (lambda tmp, cfg: _restore(_in_wav(tmp), str(tmp / "none.yaml")), "cannot read config"),
    "missing model": (
        lambda tmp, cfg: _with_config(tmp, f"model: {{path: {tmp / 'm.onnx'}}}"),
        "cannot load model",
    ),
    "corrupt model": (
        lambda tmp, cfg: _with_config(tmp, f"model: {{path: {_garbage(tmp / 'm.onnx')}}}"),
        "cannot load model",
    ),
    "stream: unsupported rate": (lambda tmp, cfg: _stream("--rate", "12345", "--channels", "1"), "12345 Hz"),
    "stream: unsupported channels": (
        lambda tmp, cfg: _stream("--rate", "48000", "--channels", "9"),
        "9 channels",
    ),
    "stream: unknown format": (
        lambda tmp, cfg: _stream("--rate", "48000", "--channels", "1", "--format", "s32le"),
        "invalid choice",
    ),
    "stream: rate not a number": (
        lambda tmp, cfg: _stream("--rate", "fast", "--channels", "1"),
        "positive integer",
    ),
    "stream: missing rate": (lambda tmp, cfg: _stream("--channels", "1"), "--rate"),
    "info: unknown config section": (
        lambda tmp, cfg: ["info", "--config", _config_file(tmp, "modle: {}\n")],
        "unknown section",
    ),
}


def _exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_status_2(name, tmp_path, passthrough_config, capfd):
    setup, phrase = CASES[name]
    argv = setup(tmp_path, passthrough_config)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    capfd.readouterr()
    status = _exit_status(argv)
    out, err = capfd.readouterr()
    assert status == 2, err
    assert "Traceback" not in err and out == ""
    assert err.startswith("gapfill: ") and err.count("\n") == 1, err
    assert phrase in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing left


def test_bad_input_through_the_real_entry_point(tmp_path, passthrough_config, run_gapfill):
    done = run_gapfill(*_restore(_garbage(tmp_path / "x.mp3"), passthrough_config))
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"gapfill: cannot read '{tmp_path / 'x.mp3'}': ")
    assert done.stderr.count(b"\n") == 1 and done.stdout == b""


def test_unexpected_errors_are_one_line_with_a_hint(monkeypatch, capfd):
    def broken(args):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("realtime.cli.info.info_command", broken)
    monkeypatch.delenv("GAPFILL_DEBUG", raising=False)
    assert main(["info"]) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: oops" in err
    assert "GAPFILL_DEBUG=1" in err
    monkeypatch.setenv("GAPFILL_DEBUG", "1")
    assert main(["info"]) == 1
    assert "Traceback" in capfd.readouterr().err
