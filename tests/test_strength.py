"""Strength (issue 24): 0 is the input itself, delayed (so the pass-through's output), and 1 the default
output, bit for bit; in between each bin's magnitude moves linearly from the decoded toward the restored
one; it changes while running without allocating or compiling; `--strength` on `restore` and `stream`; the
benchmark's structure."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from conftest import run_benchmark
from realtime import restore
from realtime.cli.main import main
from realtime.engine.restorer import Restorer
from realtime.engine.stage import HopBuffers
from realtime.engine.strength import StrengthStage
from realtime.errors import GapfillError
from test_restorer import compiled_signatures

RATE = 48_000
PASSTHROUGH = {"model": {"path": "passthrough"}, "phase": {"method": "decoded"}}


def band_limited(channels: int, seconds: float, rate: int = RATE, cutoff_hz: float = 6_000.0) -> np.ndarray:
    """(channels, n) float32 noise with nothing above `cutoff_hz`: the gate finds a codec cutoff in it (below
    gate.damage_from_hz, where a cliff counts without codec damage under it)."""
    n = int(seconds * rate)
    x = np.random.default_rng(3).standard_normal((channels, n))
    spectrum = np.fft.rfft(x, axis=1)
    spectrum[:, np.fft.rfftfreq(n, 1 / rate) > cutoff_hz] = 0
    return (0.1 * np.fft.irfft(spectrum, n, axis=1)).astype(np.float32)


@pytest.mark.parametrize("rate", [48_000, 44_100, 16_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_strength_0_is_the_input_and_1_the_default_bit_for_bit(rate, channels):
    x = band_limited(channels, 1.5, rate)
    default = restore(x, rate)
    assert not np.array_equal(default, restore(x, rate, PASSTHROUGH))   # the model restored something
    np.testing.assert_array_equal(restore(x, rate, strength=0.0).view(np.uint32), x.view(np.uint32))
    np.testing.assert_array_equal(restore(x, rate, PASSTHROUGH).view(np.uint32), x.view(np.uint32))
    np.testing.assert_array_equal(restore(x, rate, strength=1.0).view(np.uint32), default.view(np.uint32))
    np.testing.assert_array_equal(restore(x, rate, {"model": {"strength": 0.0}}), restore(x, rate, strength=0.0))


def test_strength_0_is_the_input_without_phase_lookahead():
    x = band_limited(2, 1.0)
    no_lookahead = {"phase": {"lookahead_frames": 0}}
    passthrough = {"model": PASSTHROUGH["model"], "phase": {"method": "decoded", "lookahead_frames": 0}}
    np.testing.assert_array_equal(restore(x, RATE, no_lookahead, strength=0.0), x)
    np.testing.assert_array_equal(restore(x, RATE, passthrough), x)


@pytest.mark.parametrize("lookahead", [0, 1])
def test_each_bin_moves_linearly_from_decoded_to_restored_with_the_restored_phase(lookahead):
    stage = StrengthStage(0.25, 1024, lookahead)
    buffers = HopBuffers(2, 1024, 256, 0)
    stage.prepare(2)
    rng = np.random.default_rng(1)

    def spectrum() -> np.ndarray:
        return (rng.standard_normal((2, 513)) + 1j * rng.standard_normal((2, 513))).astype(np.complex64)

    decoded = [spectrum() for _ in range(3)]
    decoded[0][0, :10] = 0                                  # zeros in the decoded frame: restored phase
    for k, frame in enumerate(decoded):
        buffers.spectra[0] = frame
        restored = spectrum()
        restored[1, :5] = 0                                 # zeros in the restored frame: decoded phase
        buffers.phased[...] = restored
        stage.process_hop(buffers)
        target = decoded[k - lookahead] if k >= lookahead else np.zeros_like(frame)
        magnitude = 0.75 * np.abs(target) + 0.25 * np.abs(restored)
        np.testing.assert_allclose(np.abs(buffers.phased), magnitude, rtol=1e-5, atol=1e-6)
        phase_from = np.where(np.abs(restored) > 0, restored, target)
        moved = np.abs(buffers.phased) > 0
        np.testing.assert_allclose(np.angle(buffers.phased[moved] * np.conj(phase_from[moved])), 0, atol=1e-5)


def test_strength_is_checked_wherever_it_is_set():
    with pytest.raises(GapfillError, match=r"^config 'model.strength': must be a number between 0 and 1, got 1.5$"):
        Restorer.from_config(None, {"model": {"strength": 1.5}})
    restorer = Restorer.from_config(None)
    for value in (-0.1, 1.01, float("nan")):
        with pytest.raises(GapfillError, match=r"^strength must be a number between 0 and 1, got "):
            restorer.set_strength(value)
    assert restorer.strength == 1.0 and restorer.describe()["strength"] == 1.0


def test_strength_changed_while_running_takes_effect_without_allocating_or_compiling():
    """Set between blocks (as the live worker sees it): from one frame after the change to 0 on, the
    output is the input delayed by the restorer's latency, bit for bit; nothing is compiled or allocated."""
    block = 256
    x = band_limited(2, 2.0)
    restorer = Restorer.from_config(None)
    restorer.prepare(RATE, 2, block)
    out = np.zeros_like(x)
    blocks = x.shape[1] // block
    switch = blocks // 2
    compiled = compiled_signatures()
    for b in range(blocks):
        piece = slice(b * block, (b + 1) * block)
        if b == switch - 8:
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
        restorer.set_strength(0.5 if b < switch else 0.0)
        restorer.process(x[:, piece], out=out[:, piece])
        if b == switch + 8:
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
    assert compiled_signatures() == compiled
    grown = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    assert sum(s.size_diff for s in grown) < 1024, grown[:5]
    settled = switch * block + restorer.fft_size + restorer.hop
    latency = restorer.latency_samples
    np.testing.assert_array_equal(out[:, settled:], x[:, settled - latency : x.shape[1] - latency])
    before = slice(latency, switch * block)
    assert not np.array_equal(out[:, before], x[:, before.start - latency : before.stop - latency])


def test_restore_command_strength_0_writes_the_input(tmp_path):
    x = band_limited(2, 1.0)
    source = tmp_path / "in.wav"
    sf.write(source, x.T, RATE, subtype="FLOAT")
    passthrough = tmp_path / "passthrough.yaml"
    passthrough.write_text("model: {path: passthrough}\nphase: {method: decoded}\n")
    assert main(["restore", str(source), str(tmp_path / "zero.wav"), "--strength", "0"]) == 0
    assert main(["restore", str(source), str(tmp_path / "pass.wav"), "--config", str(passthrough)]) == 0
    assert main(["restore", str(source), str(tmp_path / "half.wav"), "--strength", "0.5"]) == 0
    zero, pass_, half = (sf.read(tmp_path / name, dtype="float32")[0] for name in ("zero.wav", "pass.wav", "half.wav"))
    np.testing.assert_array_equal(zero, pass_)
    np.testing.assert_array_equal(zero, x.T)
    assert not np.array_equal(half, zero)


@pytest.mark.parametrize("args, message", [
    (["--strength", "1.5"], "gapfill: strength must be a number between 0 and 1, got 1.5\n"),
    (["-o", "OUTDIR", "--strength", "-0.5"], "gapfill: config 'model.strength': must be a number between 0 and 1, got -0.5\n"),
])
def test_restore_command_refuses_a_bad_strength_in_one_line(tmp_path, capfd, args, message):
    source = tmp_path / "in.wav"
    sf.write(source, band_limited(1, 0.2).T, RATE)
    assert main(["restore", str(source), str(tmp_path / "out.wav"), *args]) == 2
    assert capfd.readouterr().err == message
    assert not (tmp_path / "out.wav").exists()


def test_batch_restore_takes_the_strength_and_a_new_strength_restores_again(tmp_path, capfd):
    """`restore IN -o OUTDIR --strength 0` writes the input (the pass-through's output); the strength is part of the
    engine's fingerprint, so a rerun with another strength restores the file again instead of skipping it."""
    library = tmp_path / "library"
    library.mkdir()
    sf.write(library / "a.wav", band_limited(1, 0.5).T, RATE, subtype="FLOAT")
    passthrough = tmp_path / "passthrough.yaml"
    passthrough.write_text("model: {path: passthrough}\nphase: {method: decoded}\n")
    assert main(["restore", str(library), "-o", str(tmp_path / "zero"), "--strength", "0", "--jobs", "1", "--recursive",
                 "--format", "wav"]) == 0
    assert main(["restore", str(library / "a.wav"), str(tmp_path / "pass.wav"), "--config", str(passthrough)]) == 0
    zero, pass_ = (sf.read(path, dtype="float32")[0] for path in (tmp_path / "zero" / "a.wav", tmp_path / "pass.wav"))
    np.testing.assert_array_equal(zero, pass_)
    np.testing.assert_array_equal(zero, band_limited(1, 0.5)[0])
    capfd.readouterr()
    assert main(["restore", str(library), "-o", str(tmp_path / "zero"), "--strength", "0.5", "--jobs", "1", "--recursive",
                 "--format", "wav"]) == 0
    assert "1 restored" in capfd.readouterr().err
    assert not np.array_equal(sf.read(tmp_path / "zero" / "a.wav", dtype="float32")[0], pass_)


def test_stream_command_strength_0_is_the_input(run_gapfill):
    x = band_limited(2, 0.6)
    raw = np.ascontiguousarray(x.T).tobytes()
    zero = run_gapfill("stream", "--rate", "48000", "--channels", "2", "--strength", "0", stdin=raw)
    assert zero.returncode == 0, zero.stderr
    streamed = np.frombuffer(zero.stdout, np.float32).reshape(-1, 2).T
    np.testing.assert_array_equal(streamed, restore(x, RATE, PASSTHROUGH))
    np.testing.assert_array_equal(streamed, x)


def test_strength_benchmark_quick_run(tmp_path):
    out = tmp_path / "strength.json"
    done = run_benchmark("benchmarks.strength", "--quick", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["benchmark"] == "strength" and result["quick"] is True
    assert result["strengths"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert result["all_exact"] is True and "Strength curve" in done.stdout
    assert result["monotonic"]["clips"] == len(result["per_clip"]) and isinstance(result["monotonic"]["means"], bool)
    assert len(result["per_clip"]) == len(result["clips"]) * len(result["chains"])
    for row in result["per_clip"]:
        assert len(row["lsd_full"]) == 5 and row["strength0_is_passthrough"] and row["strength1_is_default"]
        assert row["visqol"] is None or len(row["visqol"]) == 5
    for chain in result["chains"]:
        assert set(result["curve"][chain]) == {"speech", "music", "all"}
        assert result["table"][chain].startswith("| strength |")
