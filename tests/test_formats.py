"""Files libsndfile cannot read, made by FFmpeg's own encoders here, restored through PyAV: the samples and
duration `ffmpeg -i IN OUT.wav` gives, aligned (to the source where the container trims the encoder's
priming), lossless sample formats kept; truncated or unusable files are one line, exit 2, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.cli.main import main

RATE = 44_100
SECONDS = 1.3
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                reason="ffmpeg is not installed (apt-get install ffmpeg)")

# suffix -> ffmpeg encoder options; whether the container trims the encoder's priming (output aligned
# with the source, not only with FFmpeg's decode)
FORMATS = {
    ".m4a": (["-c:a", "aac", "-b:a", "96k"], True),
    ".mp4": (["-c:a", "aac", "-b:a", "96k", "-f", "mp4"], True),
    ".aac": (["-c:a", "aac", "-b:a", "96k"], False),  # ADTS: no priming information
    ".wma": (["-c:a", "wmav2", "-b:a", "96k"], False),
    ".webm": (["-c:a", "libopus", "-b:a", "64k"], True),  # Opus pre-skip; 48 kHz
    ".mka": (["-c:a", "ac3", "-b:a", "128k"], False),
}


def source_signal(rate: int = RATE, channels: int = 2, seconds: float = SECONDS) -> np.ndarray:
    """(frames, channels) float32: a tone per channel, noise, and a click every 0.25 s (for alignment)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(rate * seconds)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 330.0 * (c + 1) * t) for c in range(channels)], axis=1)
    x += 0.05 * rng.standard_normal(x.shape)
    x[rate // 8 :: rate // 4] += 0.5
    return x.astype(np.float32)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def encode(source: Path, target: Path, options: list[str]) -> Path:
    """`target` encoded from the WAV `source` by ffmpeg with `options`; returns target."""
    ffmpeg("-i", str(source), *options, str(target))
    return target


def ffmpeg_decode(path: Path) -> tuple[np.ndarray, int]:
    """What `ffmpeg -i path out.wav` gives (as float32, no quantisation): (frames, channels), rate in Hz."""
    wav = path.with_name(path.name + ".ffmpeg.wav")
    ffmpeg("-i", str(path), "-c:a", "pcm_f32le", str(wav))
    samples, rate = sf.read(wav, dtype="float32", always_2d=True)
    wav.unlink()
    return samples, rate


def lag(y: np.ndarray, x: np.ndarray, span: int = 3000) -> int:
    """Samples by which y (frames, C) trails x (frames, C), from the cross-correlation of their mono mixes."""
    a, b = y.mean(axis=1), x.mean(axis=1)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    candidates = np.r_[xcorr[: span + 1], xcorr[n - span :]]
    best = int(np.argmax(candidates))
    return best if best <= span else best - (2 * span + 1)


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("source") / "source.wav"
    sf.write(path, source_signal(), RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def encoded(source_wav) -> dict[str, Path]:
    """suffix -> a file of that format encoded from source_wav."""
    return {suffix: encode(source_wav, source_wav.with_name(f"clip{suffix}"), options)
            for suffix, (options, _) in FORMATS.items()}


def restore(source: Path, out: Path, config: str) -> int:
    return main(["restore", str(source), str(out), "--config", config])


def files_below(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_restores_with_ffmpegs_duration_and_alignment(suffix, encoded, source_wav, passthrough_config, tmp_path):
    out = tmp_path / "out.wav"
    assert restore(encoded[suffix], out, passthrough_config) == 0
    y, rate = sf.read(out, dtype="float32", always_2d=True)
    decoded, decoded_rate = ffmpeg_decode(encoded[suffix])
    assert rate == decoded_rate and y.shape == decoded.shape  # FFmpeg's rate, duration and channels
    assert lag(y, decoded) == 0
    inner = slice(rate // 10, -rate // 10)
    assert np.abs(y[inner] - decoded[inner]).max() < 5e-3  # the pass-through engine returns what FFmpeg decoded
    _, trims_priming = FORMATS[suffix]
    if trims_priming:
        x = sf.read(source_wav, dtype="float32", always_2d=True)[0]
        if rate != RATE:  # Opus decodes at 48 kHz
            assert abs(len(y) - round(len(x) * rate / RATE)) < 0.01 * rate
        else:
            assert 0 <= len(y) - len(x) < 1024  # at most one codec frame of padding after the end
            assert lag(y, x) == 0


def test_low_rate_aac_is_restored_full_band_with_its_duration(tmp_path, passthrough_config):
    source = tmp_path / "talk.wav"
    sf.write(source, source_signal(22_050, 1), 22_050, subtype="PCM_16")
    m4a = encode(source, tmp_path / "talk.m4a", ["-c:a", "aac", "-b:a", "32k"])
    assert restore(m4a, tmp_path / "out.flac", passthrough_config) == 0
    frames = len(ffmpeg_decode(m4a)[0])
    info = sf.info(tmp_path / "out.flac")
    assert info.samplerate == 48_000 and info.channels == 1
    assert info.frames == (2 * frames * 48_000 + 22_050) // (2 * 22_050)  # n * 48000 / 22050, half up


def test_lossless_alac_keeps_its_samples_and_sample_format(tmp_path, passthrough_config):
    x = source_signal(48_000, 2)
    sf.write(tmp_path / "master.wav", x, 48_000, subtype="PCM_16")
    alac = encode(tmp_path / "master.wav", tmp_path / "master.m4a", ["-c:a", "alac"])
    assert restore(alac, tmp_path / "out.wav", passthrough_config) == 0
    assert sf.info(tmp_path / "out.wav").subtype == "PCM_16"
    restored = sf.read(tmp_path / "out.wav", dtype="int16")[0]
    original = sf.read(tmp_path / "master.wav", dtype="int16")[0]
    assert restored.shape == original.shape
    assert np.abs(restored.astype(np.int32) - original).max() <= 1


@pytest.mark.parametrize("cut", ["moov at the end", "faststart"])
def test_truncated_m4a_is_one_line_exit_2_and_nothing_written(cut, source_wav, tmp_path, passthrough_config):
    options = ["-c:a", "aac", "-b:a", "96k"] + (["-movflags", "+faststart"] if cut == "faststart" else [])
    whole = encode(source_wav, tmp_path / "whole.m4a", options).read_bytes()
    (tmp_path / "whole.m4a").unlink()
    (tmp_path / "cut.m4a").write_bytes(whole[: len(whole) * 6 // 10])
    before = files_below(tmp_path)
    done = subprocess.run([sys.executable, "-m", "realtime", "restore", str(tmp_path / "cut.m4a"),
                           str(tmp_path / "out.wav"), "--config", passthrough_config], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"gapfill: cannot read '{tmp_path / 'cut.m4a'}': ") and done.stderr.count("\n") == 1
    assert "truncated" in done.stderr
    assert files_below(tmp_path) == before


def test_truncated_webm_is_caught_by_the_length_its_container_announces(encoded, tmp_path, passthrough_config, capfd):
    data = encoded[".webm"].read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 6 // 10])
    before = files_below(tmp_path)
    assert restore(tmp_path / "cut.webm", tmp_path / "out.wav", passthrough_config) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "truncated at 00:00:00." in err and "the container announces 00:00:01.3" in err
    assert files_below(tmp_path) == before


def test_a_stream_whose_rate_changes_midway_is_refused(encoded, tmp_path, passthrough_config, capfd):
    sf.write(tmp_path / "low.wav", source_signal(22_050, 1, 0.5), 22_050)
    low = encode(tmp_path / "low.wav", tmp_path / "low.aac", ["-c:a", "aac", "-b:a", "32k"])
    (tmp_path / "joined.aac").write_bytes(encoded[".aac"].read_bytes() + low.read_bytes())  # ADTS frames concatenate
    before = files_below(tmp_path)
    assert restore(tmp_path / "joined.aac", tmp_path / "out.wav", passthrough_config) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "the sample rate changes (44100 -> 22050 Hz) at 00:00:01.3" in err
    assert files_below(tmp_path) == before


def test_a_video_without_sound_contains_no_audio(tmp_path, passthrough_config, capfd):
    ffmpeg("-f", "lavfi", "-i", "testsrc=d=0.5:s=64x48:r=10", "-c:v", "mpeg4", str(tmp_path / "silent.mp4"))
    assert restore(tmp_path / "silent.mp4", tmp_path / "out.wav", passthrough_config) == 2
    assert capfd.readouterr().err == f"gapfill: cannot read '{tmp_path / 'silent.mp4'}': it contains no audio\n"


def test_without_pyav_the_error_says_how_to_get_it(encoded, tmp_path, passthrough_config, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    before = files_below(tmp_path)
    assert restore(encoded[".m4a"], tmp_path / "out.wav", passthrough_config) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "not an audio file libsndfile can read" in err and "pip install av" in err
    assert files_below(tmp_path) == before
