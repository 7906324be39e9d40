"""A file's lossy coding, as its header tells (realtime/frontends/coding.py), and what it tells the codec gate:
a low-rate lossy file's cliff is the codec's without codec damage under it, a high-rate one's the source's
own (`gate.coded_input: auto`); `--coded` says so for a stream; a clean source's own cliff otherwise passes
unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.cli.main import main
from realtime.engine.restorer import Restorer
from realtime.frontends.audiofile import open_audio
from realtime.frontends.coding import (HIGH_RATE_CODECS, HIGH_RATE_KBPS, LOW_RATE_CODECS, LOW_RATE_KBPS, Coding,
                                       file_coding, id3v2_size)

RATE = 48_000
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def band_limited_music(seconds: float = 4.0, cutoff_hz: float = 10_000.0, seed: int = 0) -> np.ndarray:
    """(samples,) float32 at 48 kHz: notes that come and go over a falling noise spectrum, with nothing above
    `cutoff_hz` (a clean source whose own band ends in a cliff, as a 22.05 kHz file's does)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum *= (f < cutoff_hz) / (1 + f / 500.0)
    x = np.fft.irfft(spectrum, n)
    envelope = np.repeat(rng.uniform(0.2, 1.0, int(seconds * 4)), RATE // 4)[:n]
    return (0.3 * x * envelope / np.abs(x).max()).astype(np.float32)


def ffmpeg_encode(source: Path, target: Path, *options: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *options, str(target)],
                   check=True)
    return target


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("coding") / "source.wav"
    sf.write(path, np.stack([band_limited_music(3.0)] * 2, axis=1), RATE, subtype="PCM_16")
    return path


def test_an_id3v2_tag_is_measured_from_its_synchsafe_size() -> None:
    assert id3v2_size(b"ID3\x04\x00\x00\x00\x00\x02\x01") == 10 + 257
    assert id3v2_size(b"ID3\x04\x00\x10\x00\x00\x00\x05") == 10 + 5 + 10      # with a footer
    assert id3v2_size(b"\xff\xfb\x90\x64" + bytes(6)) == 0                       # an MPEG frame: no tag
    assert id3v2_size(b"ID3\x04\x00\x00\x80\x00\x00\x00") == 0                   # not synchsafe: no tag


@needs_ffmpeg
@pytest.mark.parametrize("suffix, options, codec, low_rate, high_rate", [
    (".mp3", ("-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k"), "mp3", True, False),
    (".mp3", ("-ac", "2", "-c:a", "libmp3lame", "-b:a", "32k"), "mp3", True, False),
    (".mp3", ("-ac", "2", "-c:a", "libmp3lame", "-b:a", "48k"), "mp3", False, False),
    (".mp3", ("-ac", "2", "-c:a", "libmp3lame", "-b:a", "80k"), "mp3", False, False),
    (".mp3", ("-ac", "2", "-c:a", "libmp3lame", "-b:a", "96k"), "mp3", False, True),
    (".mp3", ("-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"), "mp3", False, True),
    (".m4a", ("-ac", "1", "-c:a", "aac", "-b:a", "32k"), "aac", False, False),
    (".m4a", ("-ac", "2", "-c:a", "aac", "-b:a", "128k"), "aac", False, False),
    (".mp2", ("-ac", "2", "-c:a", "mp2", "-b:a", "192k"), "mp2", False, False),
])
def test_a_lossy_file_s_codec_and_bit_rate_are_read(source_wav, tmp_path, suffix, options, codec, low_rate,
                                                    high_rate) -> None:
    path = ffmpeg_encode(source_wav, tmp_path / f"coded{suffix}", *options)
    nominal = int(options[-1].rstrip("k"))
    with open_audio(str(path)) as source:
        coding = file_coding(str(path), source)
    assert coding is not None and coding.codec == codec
    assert (coding.low_rate, coding.high_rate) == (low_rate, high_rate)
    assert coding.kbps == pytest.approx(nominal, rel=0.1)                  # frame headers and padding
    assert (codec in LOW_RATE_CODECS and nominal <= LOW_RATE_KBPS) is low_rate
    assert (codec in HIGH_RATE_CODECS and nominal >= HIGH_RATE_KBPS) is high_rate


def test_a_size_estimate_keeps_each_mp3_rate_on_its_side() -> None:
    """A bit rate from the file's size runs a few per cent over the nominal one: 80 kbit/s stays under the
    high rates and 96 over them, 32 in the low rates and 40 out of them."""
    assert not Coding("mp3", 80 * 1.1, 2).high_rate and Coding("mp3", 96.0, 2).high_rate
    assert Coding("mp3", 32 * 1.1, 1).low_rate and not Coding("mp3", 40.0, 1).low_rate


@needs_ffmpeg
@pytest.mark.parametrize("suffix, options", [(".flac", ()), (".wav", ("-c:a", "pcm_s24le"))])
def test_lossless_and_pcm_files_have_no_lossy_coding(source_wav, tmp_path, suffix, options) -> None:
    path = ffmpeg_encode(source_wav, tmp_path / f"clean{suffix}", *options)
    with open_audio(str(path)) as source:
        assert file_coding(str(path), source) is None


def test_a_clean_source_s_own_cliff_passes_unchanged_unless_the_stream_is_known_coded() -> None:
    """The shipped model and gate: a source band-limited at 10 kHz carries no codec damage under its cliff and
    comes out bit for bit; told that the stream is a low-rate codec's, the gate fills above the cliff."""
    audio = band_limited_music()[None, :]
    restorer = Restorer()
    assert not restorer.coded_input
    np.testing.assert_array_equal(restorer.restore(audio, RATE), audio)
    assert not restorer.codec_report()["engaged"]
    restorer.set_coded_input(True)
    restored = restorer.restore(audio, RATE)
    report = restorer.codec_report()
    assert report["coded_input"] and report["engaged"] and 9_000 <= report["cutoff_hz"] <= 11_000
    above = np.abs(np.fft.rfft(restored[0]))[np.fft.rfftfreq(audio.shape[1], 1 / RATE) > 11_000]
    assert np.sqrt(np.mean(above**2)) > 0
    coded = Restorer.from_config(None, {"gate": {"coded_input": True}})
    assert coded.coded_input


@needs_ffmpeg
def test_restore_tells_the_gate_what_the_file_says_and_records_it(source_wav, tmp_path, passthrough_config) -> None:
    stats = tmp_path / "stats.json"
    low = ffmpeg_encode(source_wav, tmp_path / "low.mp3", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k")
    high = ffmpeg_encode(source_wav, tmp_path / "high.mp3", "-c:a", "libmp3lame", "-b:a", "128k")
    for path, coded in ((low, True), (high, False)):
        assert main(["restore", str(path), str(tmp_path / f"{path.stem}.wav"), "--config", passthrough_config,
                     "--stats-json", str(stats)]) == 0
        record = json.loads(stats.read_text())
        assert record["coding"]["codec"] == "mp3" and record["coding"]["low_rate"] is coded
        assert record["coding"]["high_rate"] is not coded
        assert record["codec_report"]["coded_input"] is coded
        assert record["codec_report"]["high_rate_input"] is not coded
    assert main(["restore", str(source_wav), str(tmp_path / "clean.wav"), "--config", passthrough_config,
                 "--stats-json", str(stats)]) == 0
    record = json.loads(stats.read_text())
    assert record["coding"] is None and record["codec_report"]["coded_input"] is False
    assert record["codec_report"]["high_rate_input"] is False
    assert main(["restore", str(source_wav), str(tmp_path / "told.wav"), "--config", passthrough_config, "--coded",
                 "--stats-json", str(stats)]) == 0
    assert json.loads(stats.read_text())["codec_report"]["coded_input"] is True


@needs_ffmpeg
def test_a_high_rate_mp3_comes_out_as_decoded_sample_for_sample(tmp_path) -> None:
    """The shipped model: an MP3 at 128 kbit/s of a source band-limited at 10 kHz, read as high-rate (its cliff
    the source's own), is written out as its decoder gives it."""
    source = tmp_path / "source.wav"
    sf.write(source, band_limited_music(6.0, seed=3)[:, None], RATE, subtype="PCM_16")
    high = ffmpeg_encode(source, tmp_path / "high.mp3", "-c:a", "libmp3lame", "-b:a", "128k")
    out, stats = tmp_path / "out.wav", tmp_path / "stats.json"
    assert main(["restore", str(high), str(out), "--stats-json", str(stats)]) == 0
    assert json.loads(stats.read_text())["codec_report"]["high_rate_input"] is True
    with open_audio(str(high)) as decoded:
        expected = np.concatenate([block.copy() for block in decoded.blocks()], axis=1).T   # (frames, channels)
    restored, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == RATE
    np.testing.assert_array_equal(restored, expected)


def test_an_unknown_coded_input_setting_is_refused() -> None:
    from realtime.errors import GapfillError
    with pytest.raises(GapfillError, match="coded_input"):
        Restorer.from_config(None, {"gate": {"coded_input": "yes"}})


def test_the_codec_summary_says_when_the_input_was_taken_as_coded() -> None:
    from realtime.cli.messages import codec_summary
    report = {"gate_enabled": True, "engaged": True, "cutoff_hz": 8400.0, "engaged_after_s": 0.0,
              "restored_share": 0.97, "coded_input": False}
    assert codec_summary(report) == "codec cutoff 8.4 kHz detected after 0.00 s, restored 97 % of frames"
    assert codec_summary({**report, "coded_input": True}) == (
        "codec cutoff 8.4 kHz of a coded input detected after 0.00 s, restored 97 % of frames")

