"""Phase stage benchmark: spectral convergence of each phase method and the cost per frame.

    python -m benchmarks.phase [--json PATH]

Spectral convergence SC = ||S - |STFT(ISTFT(S e^{j phi}))||| / ||S|| in dB (lower is better) with the engine's
STFT (the shipped defaults' framing: fft size, hop and window), for: random phase, RTPGHI causal and with
one frame of look-ahead, completion from 70 % known decoded bins (16-bin bands dropped at random, the rest
exact), and offline Griffin-Lim (32 iterations from random phase). Signals: a 1234.5 Hz tone, a 200 Hz ->
8 kHz linear chirp, a real speech clip and a real music clip (hedgewars game audio, 44.1 kHz Vorbis
resampled to 48 kHz; skipped when not installed).
Cost: microseconds per `PhaseStage.process` call for one channel of 513 bins, over the speech clip (the
chirp without it), against a budget of a tenth of the hop duration.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile

from realtime.engine.config import MODEL_RATE_HZ, load_config
from realtime.engine.phase import PhaseStage
from realtime.engine.stft import istft_offline, stft_offline
from realtime.engine.windows import synthesis_span


class Framing(NamedTuple):
    """An STFT framing: fft_size and hop in samples at the model rate, window as `stft.window`."""

    fft_size: int
    hop: int
    window: str


_DEFAULTS = load_config()
DEFAULT_FRAMING = Framing(_DEFAULTS.fft_size, _DEFAULTS.hop, _DEFAULTS.window)
"""The shipped defaults' framing, which the benchmark measures."""
SR, (N, H, WINDOW) = MODEL_RATE_HZ, DEFAULT_FRAMING
F = N // 2 + 1
HEDGEWARS = Path("/usr/share/games/hedgewars/Data")
SPEECH_LINES = ("Hello", "Amazing", "Brilliant", "Excellent")  # Sounds/voices/Default, as in the tests
MUSIC = ("Music/main_theme.ogg", 10.0, 3.0)  # file, start s, duration s
KNOWN_FRACTION = 0.7
GRIFFIN_LIM_ITERATIONS = 32
SETTINGS = {"tolerance_db": 50.0, "keep_db": 1.0, "above_cutoff": "translate", "patch_delay_samples": 0}


def finish(x: np.ndarray, framing: Framing = DEFAULT_FRAMING) -> np.ndarray:
    """Whole hops, 20 ms fades and fft_size trailing zeros, so the STFT holds the whole signal."""
    ramp = int(0.02 * SR)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    x = x[: len(x) // framing.hop * framing.hop].copy()
    x[:ramp] *= fade
    x[-ramp:] *= fade[::-1]
    return np.concatenate([x, np.zeros(framing.fft_size)])


def read_48k(path: Path, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Mono mix of an audio file resampled (FFT) to 48 kHz, (samples,) float64."""
    rate = soundfile.info(path).samplerate
    frames = -1 if seconds is None else int(seconds * rate)
    x, rate = soundfile.read(path, start=int(start_s * rate), frames=frames, always_2d=True)
    x = x.mean(axis=1)
    n = round(len(x) * SR / rate)
    return np.fft.irfft(np.fft.rfft(x), n) * n / len(x)


def signals() -> dict[str, np.ndarray]:
    """Name -> signal (samples,) at 48 kHz; real clips only when their files exist."""
    t = np.arange(SR) / SR
    out = {
        "tone": finish(0.5 * np.sin(2 * np.pi * 1234.5 * t)),
        "chirp": finish(0.5 * np.sin(2 * np.pi * (200.0 * t + 3900.0 * t**2))),
    }
    lines = [HEDGEWARS / "Sounds/voices/Default" / f"{name}.ogg" for name in SPEECH_LINES]
    if all(p.is_file() for p in lines):
        out["speech"] = finish(np.concatenate([read_48k(p) for p in lines]))
    music, start_s, seconds = MUSIC
    if (HEDGEWARS / music).is_file():
        out["music"] = finish(read_48k(HEDGEWARS / music, start_s, seconds))
    return out


def resynthesise(spectra: np.ndarray, framing: Framing = DEFAULT_FRAMING) -> np.ndarray:
    """ISTFT of (frames, F) spectra aligned back to the analysed signal: (frames * hop,) samples."""
    n, hop, window = framing
    frames = len(spectra)
    padded = np.concatenate([spectra, np.zeros((n // hop, n // 2 + 1), spectra.dtype)])
    delay = synthesis_span(n, hop, window) - 1
    return istft_offline(padded, n, hop, window)[delay : delay + frames * hop]


def spectral_convergence_db(mag: np.ndarray, spectra: np.ndarray, framing: Framing = DEFAULT_FRAMING) -> float:
    """SC (dB) of `spectra` (frames, F) resynthesised and analysed again at `framing`, against `mag`."""
    rebuilt = np.abs(stft_offline(resynthesise(spectra, framing), *framing))
    return float(20 * np.log10(np.linalg.norm(mag - rebuilt) / np.linalg.norm(mag)))


def estimate(method: str, lookahead: int, mag: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Run a mono PhaseStage frame by frame over (frames, F); output aligned to the input frames."""
    stage = PhaseStage({"method": method, "lookahead_frames": lookahead, **SETTINGS}, N, H, WINDOW)
    stage.prepare(1)
    out = np.zeros((1, F), np.complex64)
    result = np.zeros(mag.shape, np.complex64)
    silence = (np.zeros((1, F), np.float32), np.zeros((1, F), np.complex64))
    for k in range(len(mag) + lookahead):
        inputs = (mag[k : k + 1], decoded[k : k + 1]) if k < len(mag) else silence
        stage.process(*inputs, out)
        if k >= lookahead:
            result[k - lookahead] = out[0]
    return result


def griffin_lim(mag: np.ndarray, iterations: int, seed: int = 0) -> np.ndarray:
    """Offline Griffin-Lim from random phase: (frames, F) magnitudes -> spectra."""
    spectra = mag * np.exp(1j * np.random.default_rng(seed).uniform(-np.pi, np.pi, mag.shape))
    for _ in range(iterations):
        spectra = mag * np.exp(1j * np.angle(stft_offline(resynthesise(spectra), N, H, WINDOW)))
    return spectra


def quality(signal: np.ndarray) -> dict[str, float]:
    """Method -> spectral convergence in dB for one signal."""
    spectrum = stft_offline(signal, N, H, WINDOW)
    mag = np.abs(spectrum)
    holes = np.random.default_rng(3).random((len(mag), -(-F // 16))) >= KNOWN_FRACTION
    decoded = np.where(np.repeat(holes, 16, axis=1)[:, :F], 0, spectrum).astype(np.complex64)
    random_phase = np.random.default_rng(7).uniform(-np.pi, np.pi, mag.shape)
    return {
        "random": spectral_convergence_db(mag, mag * np.exp(1j * random_phase)),
        "rtpghi_causal": spectral_convergence_db(mag, estimate("rtpghi", 0, mag, spectrum)),
        "rtpghi_lookahead": spectral_convergence_db(mag, estimate("rtpghi", 1, mag, spectrum)),
        "completion_causal": spectral_convergence_db(mag, estimate("completion", 0, mag, decoded)),
        "completion_lookahead": spectral_convergence_db(mag, estimate("completion", 1, mag, decoded)),
        f"griffin_lim_{GRIFFIN_LIM_ITERATIONS}": spectral_convergence_db(mag, griffin_lim(mag, GRIFFIN_LIM_ITERATIONS)),
    }


def cost_us(signal: np.ndarray, passes: int = 5) -> dict[str, dict[str, float]]:
    """'method/lookahead' -> median and p99 microseconds per process call (one channel, F bins)."""
    spectrum = stft_offline(signal, N, H, WINDOW)[:, None]
    mag = np.abs(spectrum)
    decoded = spectrum.copy()
    decoded[:, :, 372:] = 0  # a 17.4 kHz codec cutoff for completion
    out = np.zeros((1, F), np.complex64)
    result = {}
    for method in ("decoded", "rtpghi", "completion"):
        for lookahead in (0, 1):
            stage = PhaseStage({"method": method, "lookahead_frames": lookahead, **SETTINGS}, N, H, WINDOW)
            stage.prepare(1)
            stage.process(mag[0], decoded[0], out)  # compile or load the kernel
            times = np.empty(passes * len(mag))
            for p in range(passes):
                stage.reset()
                for k in range(len(mag)):
                    start = time.perf_counter_ns()
                    stage.process(mag[k], decoded[k], out)
                    times[p * len(mag) + k] = time.perf_counter_ns() - start
            times /= 1000.0
            result[f"{method}/{lookahead}"] = {
                "median": float(np.median(times)), "p99": float(np.percentile(times, 99)),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phase", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    clips = signals()
    table = {name: quality(x) for name, x in clips.items()}
    timed_on = "speech" if "speech" in clips else "chirp"
    costs = cost_us(clips[timed_on])
    budget_us = H / SR / 10 * 1e6

    methods = list(next(iter(table.values())))
    print(f"spectral convergence, dB (lower is better); completion from {KNOWN_FRACTION:.0%} known bins")
    print(f"{'signal':<8}" + "".join(f"{m:>22}" for m in methods))
    for name, row in table.items():
        print(f"{name:<8}" + "".join(f"{row[m]:>22.2f}" for m in methods))
    missing = sorted({"speech", "music"} - set(clips))
    if missing:
        print(f"skipped {', '.join(missing)}: hedgewars audio not installed under {HEDGEWARS}")
    print(f"\nus per frame, one channel of {F} bins, on the {timed_on} clip (budget {budget_us:.0f} us):")
    print(f"{'method/lookahead':<18}{'median':>10}{'p99':>10}")
    for key, value in costs.items():
        print(f"{key:<18}{value['median']:>10.1f}{value['p99']:>10.1f}")

    if args.json:
        report = {
            "settings": {"sample_rate": SR, "fft_size": N, "hop": H, **SETTINGS,
                         "known_fraction": KNOWN_FRACTION, "griffin_lim_iterations": GRIFFIN_LIM_ITERATIONS},
            "spectral_convergence_db": table,
            "us_per_frame": {"signal": timed_on, "budget_us": budget_us, "machine": platform.processor()
                             or platform.machine(), **costs},
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
