"""`gapfill stream`: raw PCM stdin -> stdout, end to end in a subprocess, plus the PCM codec in process."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

from conftest import stream_file
from realtime.frontends.pipe import PcmCodec
from realtime.engine.restorer import Restorer

RATE = 48_000
ODD_FRAMES = int(RATE * 1.3) + 17  # a multiple of neither hop, block nor read size
SAMPLE_BYTES = {"f32le": 4, "s16le": 2, "s24le": 3}
TOLERANCE = {"f32le": 1e-5, "s16le": 1.0, "s24le": 1.0}  # f32: full scale; ints: LSB


def to_raw(x: np.ndarray, fmt: str) -> bytes:
    """(frames, channels) float -> interleaved little-endian PCM (independent of realtime.frontends.pipe)."""
    if fmt == "f32le":
        return x.astype("<f4").tobytes()
    bits = 8 * SAMPLE_BYTES[fmt]
    ints = np.clip(np.rint(x * 2.0 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype("<i4")
    if fmt == "s16le":
        return ints.astype("<i2").tobytes()
    return ints.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()


def from_raw(raw: bytes, fmt: str, channels: int) -> np.ndarray:
    """Interleaved PCM -> (frames, channels) float64, in LSB for integer formats."""
    if fmt == "f32le":
        values = np.frombuffer(raw, "<f4").astype(np.float64)
    elif fmt == "s16le":
        values = np.frombuffer(raw, "<i2").astype(np.float64)
    else:
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        values = (triples[:, 0] | triples[:, 1] << 8 | triples[:, 2] << 16).astype(np.float64)
        values[values >= 2**23] -= 2**24
    return values.reshape(-1, channels)


def stream_args(channels: int, fmt: str, config: str) -> list[str]:
    return ["stream", "--rate", str(RATE), "--channels", str(channels), "--format", fmt, "--config", config]


def latency(config: str, channels: int) -> int:
    restorer = Restorer.from_config(config)
    restorer.prepare(RATE, channels, 4096)
    return restorer.latency_samples


def assert_single_gapfill_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1 and text.startswith("gapfill: "), text
    return text


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", ["f32le", "s16le", "s24le"])
def test_compensated_output_has_input_length_and_alignment(
    fmt, channels, make_signal, passthrough_config, run_gapfill
):
    raw_in = to_raw(make_signal(ODD_FRAMES, channels), fmt)
    done = run_gapfill(*stream_args(channels, fmt, passthrough_config), stdin=raw_in)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert len(done.stdout) == len(raw_in)
    error = np.abs(from_raw(done.stdout, fmt, channels) - from_raw(raw_in, fmt, channels)).max()
    assert error <= TOLERANCE[fmt]


@pytest.mark.parametrize(("fmt", "channels"), [("f32le", 2), ("s16le", 1)])
def test_no_compensate_delays_by_latency(fmt, channels, make_signal, passthrough_config, run_gapfill):
    raw_in = to_raw(make_signal(ODD_FRAMES, channels), fmt)
    done = run_gapfill(*stream_args(channels, fmt, passthrough_config), "--no-compensate", stdin=raw_in)
    assert done.returncode == 0, done.stderr.decode()
    assert len(done.stdout) == len(raw_in)
    delay = latency(passthrough_config, channels)
    x, y = from_raw(raw_in, fmt, channels), from_raw(done.stdout, fmt, channels)
    assert np.abs(y[:delay]).max() <= TOLERANCE[fmt]
    assert np.abs(y[delay:] - x[:-delay]).max() <= TOLERANCE[fmt]


def _collect(stream, sink: bytearray, first_output: threading.Event) -> None:
    while chunk := stream.read1(65536):
        sink += chunk
        first_output.set()


def test_output_flows_before_input_ends(make_signal, passthrough_config, popen_gapfill):
    """Irregular, frame-splitting writes with pauses; output must appear while stdin is still open."""
    channels = 2
    raw_in = to_raw(make_signal(ODD_FRAMES, channels), "f32le")
    process = popen_gapfill(*stream_args(2, "f32le", passthrough_config))
    received, first_output = bytearray(), threading.Event()
    reader = threading.Thread(target=_collect, args=(process.stdout, received, first_output))
    reader.start()
    # More than the latency (so output exists), less than one full read (4096 frames), ends mid-frame.
    head = (latency(passthrough_config, channels) + 500) * 8 + 5
    process.stdin.write(raw_in[:head])
    process.stdin.flush()
    assert first_output.wait(timeout=30), "no output while stdin was open"
    rng = np.random.default_rng(1)
    position = head
    while position < len(raw_in):
        size = int(rng.integers(1, 20_000))
        process.stdin.write(raw_in[position : position + size])
        process.stdin.flush()
        position += size
        if rng.random() < 0.1:
            time.sleep(0.01)
    process.stdin.close()
    reader.join(timeout=60)
    assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    assert len(received) == len(raw_in)
    assert np.abs(from_raw(bytes(received), "f32le", 2) - from_raw(raw_in, "f32le", 2)).max() <= 1e-5


def test_partial_final_frame_is_an_error_after_all_whole_frames(make_signal, passthrough_config, run_gapfill):
    raw_in = to_raw(make_signal(10_001, 2), "s16le")
    done = run_gapfill(*stream_args(2, "s16le", passthrough_config), stdin=raw_in + b"\x01\x02\x03")
    assert done.returncode == 2
    assert "3 trailing bytes" in assert_single_gapfill_line(done.stderr)
    assert done.stdout == raw_in  # s16 pass-through is exact


def test_non_finite_samples_are_replaced_and_counted(make_signal, passthrough_config, run_gapfill):
    x = make_signal(20_000, 1)
    x[[100, 5000, 19_999], 0] = [np.nan, np.inf, -np.inf]
    done = run_gapfill(*stream_args(1, "f32le", passthrough_config), stdin=to_raw(x, "f32le"))
    assert done.returncode == 0
    assert done.stderr.decode() == "gapfill: replaced 3 non-finite samples\n"
    y = from_raw(done.stdout, "f32le", 1)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_closed_stdout_exits_quietly(make_signal, passthrough_config, popen_gapfill):
    raw_in = to_raw(make_signal(RATE * 10, 2), "f32le")
    process = popen_gapfill(*stream_args(2, "f32le", passthrough_config))

    def feed() -> None:
        try:
            process.stdin.write(raw_in)
            process.stdin.close()
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    assert len(process.stdout.read(1000)) == 1000
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    writer.join(timeout=60)
    assert process.stderr.read() == b""


def test_sigint_flushes_what_was_read_and_exits_130(make_signal, passthrough_config, popen_gapfill):
    frames, channels = 30_000, 1
    raw_in = to_raw(make_signal(frames, channels), "f32le")
    process = popen_gapfill(*stream_args(1, "f32le", passthrough_config))
    process.stdin.write(raw_in)
    process.stdin.flush()
    before_tail = (frames - latency(passthrough_config, channels)) * 4
    received = bytearray()
    while len(received) < before_tail:
        chunk = process.stdout.read1(65536)
        assert chunk, "stream ended early"
        received += chunk
    process.send_signal(signal.SIGINT)
    received += process.stdout.read()
    assert process.wait(timeout=60) == 130
    assert process.stderr.read() == b""
    assert len(received) == len(raw_in)
    assert np.abs(from_raw(bytes(received), "f32le", 1) - from_raw(raw_in, "f32le", 1)).max() <= 1e-5


# -- in process --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["s16le", "s24le"])
def test_integer_encoding_clips_instead_of_wrapping(fmt):
    codec = PcmCodec(fmt, 2, 8)
    block = np.array([[1.5, -1.5, 1.0, -1.0], [0.25, -0.25, 1e9, -1e9]], np.float32)
    full_scale = 2.0 ** (8 * SAMPLE_BYTES[fmt] - 1)
    expected = np.array([[full_scale - 1, -full_scale, full_scale - 1, -full_scale],
                         [full_scale / 4, -full_scale / 4, full_scale - 1, -full_scale]])
    assert np.array_equal(from_raw(bytes(codec.encode(block)), fmt, 2), expected.T)
    assert codec.clipped == 5                # 1.5, -1.5, 1.0 (one code past the largest), 1e9, -1e9


@pytest.mark.parametrize("fmt", ["f32le", "s16le", "s24le"])
def test_codec_round_trip(fmt, make_signal):
    x = make_signal(1000, 3)
    raw = to_raw(x, fmt)
    codec = PcmCodec(fmt, 3, 1000)
    planar = codec.decode(memoryview(raw))
    assert planar.shape == (3, 1000) and planar.dtype == np.float32
    assert bytes(codec.encode(planar)) == raw
    assert codec.clipped == 0


@pytest.mark.parametrize("frames", [0, 1, 100, 1279, 1280, 5000])
def test_short_inputs_keep_their_length(frames, make_signal, passthrough_config, tmp_path):
    """Input shorter than the latency, or empty, still gives exactly its own length back, aligned."""
    raw_in = to_raw(make_signal(frames, 2), "f32le")
    (tmp_path / "in.raw").write_bytes(raw_in)
    restorer = Restorer.from_config(passthrough_config)
    restorer.prepare(RATE, 2, 4096)
    result = stream_file(restorer, tmp_path / "in.raw", tmp_path / "out.raw", "f32le", 2)
    raw_out = (tmp_path / "out.raw").read_bytes()
    assert result.frames_in == frames and len(raw_out) == len(raw_in)
    if frames:
        assert np.abs(from_raw(raw_out, "f32le", 2) - from_raw(raw_in, "f32le", 2)).max() <= 1e-5


@pytest.mark.parametrize(("in_rate", "out_rate", "channels"), [(22_050, 48_000, 1), (16_000, 48_000, 2),
                                                                (48_000, 44_100, 1)])
def test_output_rate_resamples_first_and_keeps_time(in_rate, out_rate, channels, passthrough_config, run_gapfill):
    frames = int(in_rate * 1.3) + 17
    t = np.arange(frames) / in_rate
    x = np.stack([0.4 * np.sin(2 * np.pi * 700.0 * (c + 1) * t) for c in range(channels)], axis=1)
    done = run_gapfill("stream", "--rate", str(in_rate), "--output-rate", str(out_rate), "--channels",
                       str(channels), "--config", passthrough_config, stdin=to_raw(x.astype(np.float32), "f32le"))
    assert done.returncode == 0, done.stderr.decode()
    y = from_raw(done.stdout, "f32le", channels)
    assert len(y) == (2 * frames * out_rate + in_rate) // (2 * in_rate)  # n * out / in, rounded half up
    t_out = np.arange(len(y)) / out_rate
    expected = np.stack([0.4 * np.sin(2 * np.pi * 700.0 * (c + 1) * t_out) for c in range(channels)], axis=1)
    inner = slice(out_rate // 10, -out_rate // 10)
    assert np.abs(y[inner] - expected[inner]).max() < 2e-3


def test_output_rate_needs_compensation(passthrough_config, run_gapfill):
    done = run_gapfill("stream", "--rate", "22050", "--output-rate", "48000", "--channels", "1", "--no-compensate",
                       "--config", passthrough_config, stdin=b"\0" * 4000)
    assert done.returncode == 2
    assert "--no-compensate works at the input rate only" in assert_single_gapfill_line(done.stderr)
