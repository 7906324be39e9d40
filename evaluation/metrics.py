"""Spectral metrics of restored audio against a clean reference (numpy only, no torch).

Training's evaluation, the benchmarks and the tests all score with these. Spectra: 48 kHz audio through
`realtime.engine.stft.stft_offline` (periodic Hann of FFT_SIZE samples, hop HOP), power in dB re a
full-scale sine (`realtime.engine.windows.full_scale_magnitude`), floored at FLOOR_DB. FFT_SIZE and HOP
are the metrics' own resolution, kept fixed so that numbers stay comparable across models whatever framing
a model runs at (today's model happens to use the same); arrays of power are (frames, FFT_SIZE // 2 + 1) dB.
`power_db` and `magnitude_db` take another framing of FFT_SIZE samples for spectra that only exist at an
engine's framing (benchmarks/headroom.py scores the engine's own frames).

    active     frames whose reference peak is above ACTIVE_DB.
    LSD        mean over active frames of sqrt(mean over bins of (dB_out - dB_ref)^2); full band = every
               bin, below = bins under the codec cutoff, above = cutoff..TOP_HZ.
    cutoff     1 + the highest bin (< TOP_HZ) the codec kept: its long-term decoded power within KEPT_DB of
               the clean's and at least 10 dB above the floor, as are at least half the bins in the
               CUTOFF_WINDOW_BINS around it. A codec's sparse leftovers over its low-pass (joint stereo at 32
               kbit/s, 48 kHz) and a dithered decode's floor under a quiet clean top are not kept bands: the
               rule before session 23 (the highest bin within 30 dB, alone) put the cutoff elsewhere, by more
               than 2 bins, on 0 to 15 of the models benchmark's 21 clips per coded condition, mostly at 15-20
               kHz over a low-pass at 4-17 kHz.
    holes      share of reference bins below the cutoff (active frames, reference at least HOLE_DB above
               the floor) whose output is HOLE_DB or more quieter than the reference.
    level above  mean signed level error (dB, output minus reference) over active frames, cutoff..TOP_HZ.
    crest above  crest factor (peak over rms, dB) of the signal's band from the cutoff up (a brick-wall FFT
               filter over the whole clip), output minus reference: how much peakier the restored band is.
    peak       the largest absolute sample (1 = full scale).
"""

from __future__ import annotations

import numpy as np

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.stft import stft_offline
from realtime.engine.windows import full_scale_magnitude

FFT_SIZE, HOP = 1024, 256
FLOOR_DB = -100.0
ACTIVE_DB = -60.0
HOLE_DB = 20.0
KEPT_DB = 20.0
CUTOFF_WINDOW_BINS = 21            # about 1 kHz
TOP_HZ = 20_000.0
TOP_BIN = int(TOP_HZ * FFT_SIZE / MODEL_RATE_HZ)
"""First bin at or above TOP_HZ: the end of the band scored above the cutoff."""


def bin_hz(bin_index: int) -> float:
    """Frequency in Hz of a bin of the metrics' spectra."""
    return bin_index * MODEL_RATE_HZ / FFT_SIZE


def magnitude_db(magnitudes: np.ndarray, hop: int = HOP, window: str = "hann") -> np.ndarray:
    """(frames, 513) linear |rfft| magnitudes of FFT_SIZE-sample frames -> power in dB re a full-scale sine
    under the analysis window of `window` (and `hop`: `full_scale_magnitude`), floored at FLOOR_DB."""
    power = np.asarray(magnitudes, np.float64) ** 2 / full_scale_magnitude(FFT_SIZE, window, hop) ** 2
    return 10 * np.log10(np.maximum(power, 10 ** (FLOOR_DB / 10)))


def power_db(x: np.ndarray, hop: int = HOP, window: str = "hann") -> np.ndarray:
    """(samples,) at 48 kHz -> (frames, 513) power in dB re a full-scale sine, floored at FLOOR_DB, of
    FFT_SIZE-sample frames every `hop` samples under `window` (the metrics' own framing by default)."""
    spectra = stft_offline(np.asarray(x, np.float64), FFT_SIZE, hop, window)
    return magnitude_db(np.abs(spectra), hop, window)


def active_frames(reference_db: np.ndarray) -> np.ndarray:
    """(frames,) bool: the frames of (frames, 513) reference power whose peak is above ACTIVE_DB."""
    return reference_db.max(axis=1) > ACTIVE_DB


def codec_cutoff_bin(clean_db: np.ndarray, dec_db: np.ndarray) -> int:
    """The codec cutoff (module doc) of decoded power dec_db against clean power clean_db, both (frames, 513)
    dB: 0 when no bin qualifies."""
    lt_c = 10 * np.log10(np.mean(10 ** (clean_db[:, :TOP_BIN] / 10), axis=0))
    lt_d = 10 * np.log10(np.mean(10 ** (dec_db[:, :TOP_BIN] / 10), axis=0))
    kept = (lt_d >= lt_c - KEPT_DB) & (lt_d > FLOOR_DB + 10.0)
    share = np.convolve(kept.astype(np.float64), np.full(CUTOFF_WINDOW_BINS, 1.0 / CUTOFF_WINDOW_BINS), mode="same")
    ok = np.nonzero(kept & (share >= 0.5))[0]
    return int(ok[-1]) + 1 if len(ok) else 0


def level_error_above(r: np.ndarray, o: np.ndarray, cutoff: int) -> float | None:
    """Mean signed level error (dB, o minus r) above the cutoff (bins cutoff..TOP_HZ, active frames) of
    output power o against reference power r, both (frames, 513) dB; None where that region is empty. LSD
    says how far; this says which way: too loud (> 0) or too quiet."""
    active = active_frames(r)
    if cutoff >= TOP_BIN or not active.any():
        return None
    return float(np.mean(o[active, cutoff:TOP_BIN] - r[active, cutoff:TOP_BIN]))


def crest_excess_above(reference: np.ndarray, output: np.ndarray, cutoff: int) -> float | None:
    """Crest factor (dB) of output's band above the cutoff bin minus the reference's, both (samples,) at 48
    kHz (module doc); None where the reference has nothing there."""
    def band_crest(x: np.ndarray) -> float | None:
        spectrum = np.fft.rfft(np.asarray(x, np.float64))
        spectrum[: int(round(bin_hz(cutoff) * len(x) / MODEL_RATE_HZ))] = 0.0
        band = np.fft.irfft(spectrum, len(x))
        rms = float(np.sqrt(np.mean(band**2)))
        return None if rms <= 10 ** (FLOOR_DB / 20) else 20 * float(np.log10(np.max(np.abs(band)) / rms))

    if cutoff >= TOP_BIN:
        return None
    ref, out = band_crest(reference), band_crest(output)
    return None if ref is None or out is None else out - ref


def hole_bins(reference_db: np.ndarray, output_db: np.ndarray) -> np.ndarray:
    """Bool, the shape of both: the bins of reference power (dB) at least HOLE_DB above the floor whose output
    power (dB) is HOLE_DB or more under it (module doc: holes)."""
    return (reference_db >= FLOOR_DB + HOLE_DB) & (reference_db - output_db >= HOLE_DB)


def spectrum_metrics(r: np.ndarray, o: np.ndarray, cutoff: int) -> dict[str, float]:
    """LSD full / below / above (dB; NaN where a band is empty) and holes (share, module doc) of output power
    o against reference power r, both (frames, 513) dB from `power_db` or `magnitude_db`."""
    active = active_frames(r)
    r, o = r[active], o[active]

    def lsd(lo: int, hi: int) -> float:
        if hi <= lo or len(r) == 0:
            return float("nan")
        return float(np.mean(np.sqrt(np.mean((o[:, lo:hi] - r[:, lo:hi]) ** 2, axis=1))))

    cand = r[:, :cutoff] >= FLOOR_DB + HOLE_DB
    holes = hole_bins(r[:, :cutoff], o[:, :cutoff])
    return {"lsd_full": lsd(0, r.shape[1]), "lsd_below": lsd(0, cutoff), "lsd_above": lsd(cutoff, TOP_BIN),
            "holes": float(holes.sum() / max(1, cand.sum()))}


def clip_metrics(clean: np.ndarray, out: np.ndarray, cutoff: int,
                 ref_db: np.ndarray | None = None) -> dict[str, float]:
    """`spectrum_metrics` of output samples out (samples,) against clean (samples,), both at 48 kHz;
    ref_db: `power_db(clean)` when the caller has it already."""
    return spectrum_metrics(power_db(clean) if ref_db is None else ref_db, power_db(out), cutoff)
