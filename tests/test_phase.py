"""Tests of realtime.engine.phase on signals with known answers.

Quality is the spectral convergence SC = ||S - |STFT(ISTFT(S e^{j phi}))||| / ||S|| in dB (lower is better)
of magnitudes S given a phase phi, with the engine's own STFT (realtime.engine.stft).
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from numba import njit

from benchmarks.phase import SR, Framing, finish, spectral_convergence_db
from realtime.engine.phase import PhaseStage, _process_frame
from realtime.engine.stft import istft_offline, stft_offline

HANN = Framing(1024, 256, "hann")
"""The framing these tests hold RTPGHI and completion to (model v1's); the band above the cutoff is tested at
the asymmetric framing (hop 128) below."""
N, H = HANN.fft_size, HANN.hop
F = N // 2 + 1
SPEECH_CLIP = Path(__file__).parent / "data" / "hedgewars-default-speech-48k.flac"


def phase_settings(method: str, lookahead: int) -> dict:
    return {"method": method, "lookahead_frames": lookahead, "tolerance_db": 50.0, "keep_db": 1.0,
            "above_cutoff": "translate", "patch_delay_samples": 0}


def tone() -> np.ndarray:
    t = np.arange(SR) / SR
    return finish(0.5 * np.sin(2 * np.pi * 1234.5 * t), HANN)


def chirp() -> np.ndarray:
    """Linear chirp 200 Hz -> 8 kHz in 1 s."""
    t = np.arange(SR) / SR
    return finish(0.5 * np.sin(2 * np.pi * (200.0 * t + 3900.0 * t**2)), HANN)


def speech() -> np.ndarray:
    """Four lines of the hedgewars 'Default' voice at 48 kHz, about 4 s (tests/data, see its README)."""
    x, rate = soundfile.read(SPEECH_CLIP)
    assert rate == SR
    return finish(x, HANN)


SIGNALS = {"tone": tone, "chirp": chirp, "speech": speech}
REQUIRED_GAIN_DB = {"tone": 15.0, "chirp": 15.0, "speech": 10.0}  # SC gain over random phase


@pytest.fixture(scope="module", params=list(SIGNALS))
def signal(request) -> tuple[str, np.ndarray]:
    """(name, (frames, F) complex64 STFT) of one test signal."""
    return request.param, stft_offline(SIGNALS[request.param](), N, H)


def reconstruct(settings: dict, mag: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Run a PhaseStage frame by frame over (frames, C, F) inputs; output aligned to the input frames."""
    stage = PhaseStage(settings, N, H)
    stage.prepare(mag.shape[1])
    delay = stage.lookahead_frames
    mag = np.concatenate([mag, np.zeros((delay,) + mag.shape[1:], np.float32)])
    decoded = np.concatenate([decoded, np.zeros((delay,) + decoded.shape[1:], np.complex64)])
    result = np.zeros(decoded.shape, np.complex64)
    out = np.zeros(decoded.shape[1:], np.complex64)
    for k in range(len(mag)):
        stage.process(mag[k], decoded[k], out)
        if k >= delay:
            result[k - delay] = out
    return result[: len(result) - delay]


def estimate(method: str, lookahead: int, mag: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Mono wrapper of `reconstruct`: (frames, F) in, (frames, F) out."""
    return reconstruct(phase_settings(method, lookahead), mag[:, None], decoded[:, None])[:, 0]


def random_phase_db(mag: np.ndarray) -> float:
    phase = np.random.default_rng(7).uniform(-np.pi, np.pi, mag.shape)
    return spectral_convergence_db(mag, mag * np.exp(1j * phase), HANN)


def band_holes(frames: int, known: float) -> np.ndarray:
    """(frames, F) bool: True where the codec lost the bin; 16-bin bands drop out at random per frame."""
    bands = np.random.default_rng(3).random((frames, -(-F // 16))) >= known
    return np.repeat(bands, 16, axis=1)[:, :F]


@pytest.mark.parametrize("lookahead", [0, 1])
def test_rtpghi_beats_random_phase(signal: tuple[str, np.ndarray], lookahead: int) -> None:
    """Tone and chirp: at least 15 dB better SC than random phase; the real speech clip: 10 dB."""
    name, spectrum = signal
    mag = np.abs(spectrum)
    got = spectral_convergence_db(mag, estimate("rtpghi", lookahead, mag, spectrum), HANN)
    assert got <= random_phase_db(mag) - REQUIRED_GAIN_DB[name]


@pytest.mark.parametrize("lookahead", [0, 1])
def test_completion_from_70_percent_known_beats_rtpghi(lookahead: int) -> None:
    spectra = {"tone": stft_offline(tone(), N, H), "speech": stft_offline(speech(), N, H)}
    for name, spectrum in spectra.items():
        mag = np.abs(spectrum)
        decoded = np.where(band_holes(len(mag), known=0.7), 0, spectrum).astype(np.complex64)
        completed = spectral_convergence_db(mag, estimate("completion", lookahead, mag, decoded), HANN)
        alone = spectral_convergence_db(mag, estimate("rtpghi", lookahead, mag, spectrum), HANN)
        assert completed <= alone - 1.0, name


@pytest.mark.parametrize("lookahead", [0, 1])
def test_completion_continues_the_true_phase_across_the_border(lookahead: int) -> None:
    """A tone centred on bin 100.5, decoded phase known up to bin 100: bins above carry on the true phase."""
    t = np.arange(SR // 2) / SR
    spectrum = stft_offline(finish(0.5 * np.cos(2 * np.pi * 100.5 * SR / N * t), HANN), N, H)
    mag = np.abs(spectrum)
    decoded = spectrum.copy()
    decoded[:, 101:] = 0
    lobe = slice(101, 103)  # the filled bins of the main lobe (-1.4 and -15 dB)
    steady = slice(20, len(mag) - 20)

    def lobe_error(estimated: np.ndarray) -> float:
        diff = np.angle(estimated[steady, lobe] * np.conj(spectrum[steady, lobe]))
        return float(np.abs(diff).max())

    assert lobe_error(estimate("completion", lookahead, mag, decoded)) < 0.1
    assert lobe_error(estimate("rtpghi", lookahead, mag, spectrum)) > 0.5  # no true phase to follow


@pytest.mark.parametrize("lookahead", [0, 1])
def test_decoded_keeps_the_decoded_phase_delayed_by_the_lookahead(lookahead: int) -> None:
    rng = np.random.default_rng(0)
    frames = 12
    mag = rng.random((frames, 2, F)).astype(np.float32)
    decoded = (rng.standard_normal((frames, 2, F)) + 1j * rng.standard_normal((frames, 2, F))).astype(np.complex64)
    decoded[:, :, 400:] = 0  # no decoded phase above a cutoff
    stage = PhaseStage(phase_settings("decoded", lookahead), N, H)
    stage.prepare(2)
    out = np.zeros((2, F), np.complex64)
    for k in range(frames):
        stage.process(mag[k], decoded[k], out)
        source = k - lookahead
        if source < 0:
            assert not out.any()
            continue
        expected = mag[source] * np.exp(1j * np.angle(decoded[source]))
        np.testing.assert_allclose(out[:, :400], expected[:, :400], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.abs(out[:, 400:]), mag[source, :, 400:], rtol=1e-5)
    assert stage.latency_samples == lookahead * H


@pytest.mark.parametrize("method", ["rtpghi", "completion"])
def test_reset_restores_the_initial_state_and_channels_are_independent(method: str) -> None:
    a = stft_offline(chirp(), N, H)
    b = stft_offline(tone(), N, H)
    decoded = np.stack([a, b], axis=1)
    decoded[:, :, 300:] = 0
    mag = np.abs(np.stack([a, b], axis=1))
    settings = phase_settings(method, 1)
    stage = PhaseStage(settings, N, H)
    stage.prepare(2)
    out = np.zeros((2, F), np.complex64)
    runs = []
    for _ in range(2):
        result = np.zeros_like(decoded)
        for k in range(len(mag)):
            stage.process(mag[k], decoded[k], out)
            result[k] = out
        runs.append(result)
        stage.reset()
    np.testing.assert_array_equal(runs[0], runs[1])
    for c in range(2):
        mono = reconstruct(settings, mag[:, c : c + 1], decoded[:, c : c + 1])[:, 0]
        np.testing.assert_array_equal(runs[0][1:, c], mono[:-1])


@pytest.mark.parametrize("method", ["decoded", "rtpghi", "completion"])
@pytest.mark.parametrize("lookahead", [0, 1])
def test_process_allocates_nothing(method: str, lookahead: int) -> None:
    """No Python allocation survives a call, the transient peak (Numba's argument descriptors) does not
    grow with the number of frames and is below one frame buffer."""
    spectrum = stft_offline(chirp(), N, H)[:, None].repeat(2, axis=1)
    mag = np.abs(spectrum)
    stage = PhaseStage(phase_settings(method, lookahead), N, H)
    stage.prepare(2)
    out = np.zeros((2, F), np.complex64)
    for k in range(3):
        stage.process(mag[k], spectrum[k], out)
    peaks = []
    tracemalloc.start()
    try:
        for frames in (1, 150):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for k in range(frames):
                stage.process(mag[k], spectrum[k], out)
            current, peak = tracemalloc.get_traced_memory()
            assert current == before
            peaks.append(peak - before)
    finally:
        tracemalloc.stop()
    assert peaks[1] == peaks[0]
    assert peaks[1] < F * 4  # one (F,) float32 buffer


def test_the_kernel_allocates_no_arrays() -> None:
    """The compiled per-frame kernel calls no Numba allocator (the cached build cannot be inspected)."""
    stage = PhaseStage(phase_settings("completion", 1), N, H)
    stage.prepare(1)
    stage.process(np.ones((1, F), np.float32), np.ones((1, F), np.complex64), np.zeros((1, F), np.complex64))
    fresh = njit(_process_frame.py_func)
    signature = _process_frame.signatures[0]
    fresh.compile(signature)
    runtime_calls = set(re.findall(r"@(NRT_\w+)", fresh.inspect_llvm(signature)))
    assert not {call for call in runtime_calls if "alloc" in call.lower() or call == "NRT_MemInfo_new"}


def test_invalid_settings_and_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="method"):
        PhaseStage(phase_settings("magic", 0), N, H)
    with pytest.raises(ValueError, match="lookahead"):
        PhaseStage(phase_settings("rtpghi", 2), N, H)
    stage = PhaseStage(phase_settings("rtpghi", 1), N, H)
    stage.prepare(1)
    with pytest.raises(ValueError, match="as prepared"):
        stage.process(np.ones((2, F), np.float32), np.ones((2, F), np.complex64), np.zeros((2, F), np.complex64))


def noise() -> np.ndarray:
    """1 s of white noise at -20 dB RMS."""
    return finish(0.1 * np.random.default_rng(1).standard_normal(SR), HANN)


@pytest.mark.parametrize("name", ["tone", "chirp", "speech", "noise"])
def test_phases_at_the_asymmetric_framing_keep_the_level(name: str) -> None:
    """The asymmetric framing's synthesis window covers only the frame's last 2 hops: phases centred there
    keep what is synthesised. RTPGHI from magnitudes alone: energy within 4 dB of the signal's (centred on
    the frame's middle, as for Hann: -7.5 to -12.9 dB); completion filling everything above bin 250 of
    noise (no tonal phase to follow): within 1 dB (centred on the middle: -2.4 dB)."""
    hop, window = 128, "asymmetric"
    x = {"tone": tone, "chirp": chirp, "speech": speech, "noise": noise}[name]()
    spectrum = stft_offline(x, N, hop, window)
    reference = np.sum(istft_offline(spectrum, N, hop, window) ** 2)

    def level_db(method: str, decoded: np.ndarray) -> float:
        stage = PhaseStage(phase_settings(method, 1), N, hop, window)
        stage.prepare(1)
        mag = np.concatenate([np.abs(spectrum), np.zeros((1, F), np.float32)])[:, None]
        decoded = np.concatenate([decoded, np.zeros((1, F), np.complex64)])[:, None]
        out = np.zeros((1, F), np.complex64)
        frames = []
        for k in range(len(mag)):
            stage.process(mag[k], decoded[k], out)
            frames.append(out[0].copy())
        estimated = istft_offline(np.array(frames[1:]), N, hop, window)
        return float(10 * np.log10(np.sum(estimated**2) / reference))

    assert abs(level_db("rtpghi", spectrum)) < 4.0
    if name == "noise":
        decoded = spectrum.copy()
        decoded[:, 250:] = 0
        assert abs(level_db("completion", decoded)) < 1.0


CUTOFF_BIN = 179                             # 8.4 kHz at 48 kHz, N = 1024: LAME 32 kbit/s mono


def _fill_above_cutoff(x: np.ndarray, above_cutoff: str, band_above: int | None,
                       patch_delay_hops: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Completion at the asymmetric framing (hop 128) of `x` low-passed at CUTOFF_BIN (decoded bins above it
    exactly 0), with the band above at the rms magnitude of the octave under the cutoff per frame (equal
    magnitudes, as the model fills it); returns (decoded spectra (T, F), output spectra (T, F))."""
    hop, window = 128, "asymmetric"
    spectrum = stft_offline(x, N, hop, window)
    decoded = spectrum.copy()
    decoded[:, CUTOFF_BIN:] = 0
    octave = np.abs(spectrum[:, CUTOFF_BIN // 2: CUTOFF_BIN])
    mag = np.abs(spectrum).astype(np.float32)
    mag[:, CUTOFF_BIN:] = np.sqrt(np.mean(octave**2, axis=1, keepdims=True))
    settings = {**phase_settings("completion", 1), "above_cutoff": above_cutoff,
                "patch_delay_samples": patch_delay_hops * hop}
    stage = PhaseStage(settings, N, hop, window)
    stage.prepare(1)
    band = None if band_above is None else np.array([band_above], np.int64)
    out = np.zeros((1, F), np.complex64)
    frames = []
    for k in range(len(mag) + 1):
        m = mag[k] if k < len(mag) else np.zeros(F, np.float32)
        d = decoded[k] if k < len(mag) else np.zeros(F, np.complex64)
        stage.process(m[None], d[None], out, band)
        frames.append(out[0].copy())
    return decoded, np.array(frames[1:])


@pytest.mark.parametrize("name,patch_delay_hops", [("noise", 0), ("speech", 0), ("noise", 1), ("speech", 2)])
def test_the_band_above_the_cutoff_takes_the_phase_of_the_octave_under_it(name: str, patch_delay_hops: int) -> None:
    """translate: every bin from band_above up has the decoded phase of the bin S, 2 S, ... under it, S the
    largest multiple of fft_size / hop (8) up to half the cutoff bin, in patch p = (m - cutoff) // S as it
    was p * patch_delay_hops frames earlier; the bins under it keep the decoded phase."""
    x = {"noise": noise, "speech": speech}[name]()
    decoded, out = _fill_above_cutoff(x, "translate", CUTOFF_BIN, patch_delay_hops)
    shift = (CUTOFF_BIN // 2) // 8 * 8
    for patch in range((F - CUTOFF_BIN + shift - 1) // shift):
        above = np.arange(CUTOFF_BIN + patch * shift, min(F, CUTOFF_BIN + (patch + 1) * shift))
        source = CUTOFF_BIN - shift + (above - CUTOFF_BIN) % shift
        delay = patch * patch_delay_hops
        then = decoded[: len(decoded) - delay, source]
        audible = np.abs(then) > 1e-3 * np.abs(decoded).max()
        difference = np.angle(out[delay:, above] * np.conj(then))
        assert np.max(np.abs(difference[audible])) < 1e-3
    kept = np.abs(decoded[:, :CUTOFF_BIN]) > 1e-3 * np.abs(decoded).max()
    assert np.max(np.abs(np.angle(out[:, :CUTOFF_BIN] * np.conj(decoded[:, :CUTOFF_BIN])))[kept]) < 1e-3


@pytest.mark.parametrize("name", ["noise", "speech"])
def test_the_translated_band_keeps_the_time_structure_the_integrated_one_makes_pulses(name: str) -> None:
    """Equal magnitudes above the cutoff: integrated, the same linear phase every frame synthesises a pulse
    per hop; translated, the band follows the signal under the cutoff. The band's crest factor (peak over
    rms, dB) is at least 3 dB lower translated (noise 17 against 24 dB, speech 28 against 32)."""
    x = {"noise": noise, "speech": speech}[name]()

    def crest_db(above_cutoff: str) -> float:
        _, out = _fill_above_cutoff(x, above_cutoff, CUTOFF_BIN)
        filled = np.zeros_like(out)
        filled[:, CUTOFF_BIN:] = out[:, CUTOFF_BIN:]
        y = istft_offline(filled, N, 128, "asymmetric")
        return float(20 * np.log10(np.max(np.abs(y)) / np.sqrt(np.mean(y**2))))

    assert crest_db("translate") < crest_db("integrate") - 3.0


@pytest.mark.parametrize("name", ["noise", "speech"])
def test_delayed_patches_do_not_add_up_in_step(name: str) -> None:
    """The four patches above the cutoff are copies of one signal: in step their envelopes line up (peak 4 x
    one patch's, rms 2 x: the band's crest factor 6 dB over a patch's); a patch delay of one hop decorrelates
    them (a sum of independent noises: about one patch's crest factor). The band's crest factor falls by at
    least half of those 6 dB (measured: noise 17.1 -> 13.5 dB, speech 28.0 -> 23.3 dB)."""
    x = {"noise": noise, "speech": speech}[name]()

    def crest_db(patch_delay_hops: int) -> float:
        _, out = _fill_above_cutoff(x, "translate", CUTOFF_BIN, patch_delay_hops)
        filled = np.zeros_like(out)
        filled[:, CUTOFF_BIN:] = out[:, CUTOFF_BIN:]
        y = istft_offline(filled, N, 128, "asymmetric")[N:]
        return float(20 * np.log10(np.max(np.abs(y)) / np.sqrt(np.mean(y**2))))

    assert crest_db(1) < crest_db(0) - 3.0


def test_without_a_band_above_translate_is_integrate() -> None:
    """No band above a cutoff (band_above F or None): both settings give the same spectra, bit for bit."""
    x = speech()
    _, integrated = _fill_above_cutoff(x, "integrate", CUTOFF_BIN)
    for band_above in (None, F):
        _, translated = _fill_above_cutoff(x, "translate", band_above)
        np.testing.assert_array_equal(translated, integrated)


def test_the_patch_delay_is_counted_in_whole_hops() -> None:
    """patch_delay_samples, rounded down to whole hops of the framing: 128 samples is 1 hop at hop 128, none
    at hop 256 (model v1's framing keeps its patches in step); negative values are rejected."""
    def hops(samples: int, hop: int) -> int:
        return PhaseStage({**phase_settings("completion", 1), "patch_delay_samples": samples}, N, hop).patch_delay_hops

    assert (hops(128, 128), hops(255, 128), hops(256, 128), hops(128, 256), hops(0, 128)) == (1, 1, 2, 0, 0)
    with pytest.raises(ValueError, match="patch_delay_samples"):
        hops(-1, 128)
