"""Phase stage: give the magnitudes of the engine's frames a phase, one hop at a time.

Methods (config `phase.method`):
- `decoded`: the decoded (codec) phase; bins where the decoded spectrum is exactly zero take a phase from
  a random table.
- `rtpghi`: Real-Time Phase Gradient Heap Integration (Průša & Holighaus; phaseret's `rtpghi`). The phase
  gradients of a Gaussian window of the same time-frequency spread (gamma = 0.25645 * N**2 for a Hann
  window of N samples; for another analysis window, 4 pi times the variance of its squared shape, which
  gives 0.2514 * N**2 for Hann) come from the log-magnitude: along time, a centred difference across frequency;
  along frequency, a difference across time (centred with one frame of look-ahead, second-order backward
  without). The phase is integrated with the trapezoidal rule from the previous frame and across bins,
  always spreading from the strongest bin done so far (a max-heap on log-magnitude). Bins more than
  `tolerance_db` below the largest bin of the current and previous frame take a random phase.
- `completion`: like `rtpghi`, but the target frame's reliable bins keep the decoded phase and seed the
  heap, so filled bins (holes, the band above the codec cutoff) grow out of the true phase around them. A
  bin is reliable when |decoded| > 0 and the output magnitude is within `keep_db` of |decoded| (the
  model/gate kept it), however quiet: input the gate leaves alone comes out with its own phase.

The band above a codec cutoff (`above_cutoff`, rtpghi and completion): where the gate restores a band above a
codec cutoff (`HopBuffers.band_above`, bin c: a detected cutoff, or the last credible cliff while the
codec-made share alone engaged it), `translate` (the default) gives each bin m >= c the model did not keep the
phase of bin c - S + (m - c) mod S, S the largest multiple of fft_size / hop bins up to c / 2: the octave
under the cutoff, repeated upward, as spectral band replication patches it (those bins stay out of the
heap integration, whose work so shrinks to the bins under the cutoff). With S a multiple of fft_size /
hop the translation is the STFT of the decoded signal shifted up by S bins, exactly, frame after frame, so the
fill keeps the fine time structure (onsets, voiced pulses) and the crest factor of the band under the cutoff.
The patches of one octave are copies of one signal: summed, their envelopes line up, and the band's peaks grow
with their number (a dense mix at libmp3lame 48k: the band alone peaking at 1.26 x full scale).
`patch_delay_samples` gives patch p (p = (m - c) // S) the phase its source bin had p * d hops earlier, d =
patch_delay_samples // hop (whole hops): still exactly the STFT of the decoded signal, shifted and delayed,
and the patches no longer add up in step (d = 0: every patch in step with the octave; at 128 samples, 1 hop of
model v2's framing and 0 of v1's, whose 5.3 ms hop measured a little worse delayed: README, Results, The band
above the cutoff). `integrate` gives those bins the integrated phase as everywhere else: a band of equal
magnitudes then integrates to the same linear phase every frame, a pulse at the synthesis centre each hop: on
LAME 32k clips the band's crest factor came out 4-11 dB over the clean band's (its own peaks up to 1.9 x full
scale), and ViSQOL 0.06 lower than with `translate` (README, Results).

Phase convention: a frame's spectrum is the rfft of the windowed frame with the window starting at index 0
(docs/CONTRACTS.md). Estimated phases are centred on `windows.synthesis_centre`, the middle of the synthesis
window's support, c (N / 2 for Hann, N - hop for the asymmetric framing): the frequency-direction gradient
carries -2 pi c / N per bin (-pi for Hann), the time-direction gradient 2 pi hop bin / N. Centred on the
asymmetric window's centre of mass instead (c about 0.6 N), what the phase stage fills lands mostly where
the short synthesis window is zero: on LAME 32k validation clips through model v2 the band above the
cutoff came out 4.4 dB too quiet and ViSQOL fell from 3.12 to 2.75 (README, Results, Phase centre).

All buffers are made in `prepare`; `process` runs one Numba kernel, compiled for a fixed signature at
import, that allocates nothing.
"""

from __future__ import annotations

import math

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers
from realtime.engine.windows import stft_windows, synthesis_centre

HANN_GAMMA = 0.25645
"""gamma / N**2 of a Hann window of N samples: the Gaussian exp(-pi t**2 / gamma) matching its spread."""

METHODS = ("decoded", "rtpghi", "completion")
ABOVE_CUTOFF = ("translate", "integrate")
RANDOM_SEED = 20240611
RANDOM_TABLE_FRAMES = 10  # random table length in frames of bins

_DECODED, _RTPGHI, _COMPLETION = 0, 1, 2
_METHOD_CODES = {"decoded": _DECODED, "rtpghi": _RTPGHI, "completion": _COMPLETION}
_UNKNOWN, _DONE, _SMALL, _KEPT, _TRANSLATED = 0, 1, 2, 3, 4  # state of a bin of the target frame
_MAG_FLOOR = 1e-9  # added to magnitudes before the log, far below any audible bin


def gaussian_gamma(window: np.ndarray) -> float:
    """gamma (samples^2) of the Gaussian exp(-pi t^2 / gamma) with the time spread of `window`: its
    squared shape, exp(-2 pi t^2 / gamma), has variance gamma / (4 pi)."""
    energy = window**2 / np.sum(window**2)
    t = np.arange(window.size)
    mean = float(np.sum(energy * t))
    return 4.0 * math.pi * float(np.sum(energy * (t - mean) ** 2))


class PhaseStage:
    """Streaming phase estimator for (channels, F) frames; F = fft_size // 2 + 1.

    settings: the `phase:` config section: `method`, `lookahead_frames` (0 or 1), `tolerance_db`,
    `keep_db`, `above_cutoff`, `patch_delay_samples`. `process` is called once per hop and, given frame k,
    writes frame k - lookahead_frames.
    """

    name = "phase"

    def __init__(self, settings: dict, fft_size: int, hop: int, window: str = "hann") -> None:
        method = settings["method"]
        if method not in METHODS:
            raise ValueError(f"phase method must be one of {METHODS}, got {method!r}")
        lookahead = int(settings["lookahead_frames"])
        if lookahead not in (0, 1):
            raise ValueError(f"phase lookahead_frames must be 0 or 1, got {lookahead}")
        above_cutoff = settings["above_cutoff"]
        if above_cutoff not in ABOVE_CUTOFF:
            raise ValueError(f"phase above_cutoff must be one of {ABOVE_CUTOFF}, got {above_cutoff!r}")
        if fft_size % hop:
            raise ValueError(f"phase stage: fft_size {fft_size} is not a multiple of hop {hop}")
        self.method = method
        self._method_code = _METHOD_CODES[method]
        self.above_cutoff = above_cutoff
        self._translate_step = fft_size // hop if above_cutoff == "translate" else 0
        delay = int(settings["patch_delay_samples"])
        if delay < 0:
            raise ValueError(f"phase patch_delay_samples must be 0 or more, got {delay}")
        self.patch_delay_hops = delay // hop
        """How many hops each patch of the translated band lags the one under it."""
        self.lookahead_frames = lookahead
        self.fft_size = fft_size
        self.hop = hop
        self.bins = fft_size // 2 + 1
        self.tolerance_db = float(settings["tolerance_db"])
        self.keep_db = float(settings["keep_db"])
        gamma = HANN_GAMMA * fft_size**2 if window == "hann" else gaussian_gamma(stft_windows(fft_size, hop, window)[0])
        # Gradients in radians per hop (time) and per bin (frequency), from log-magnitude differences.
        self._time_scale = hop * fft_size / (2.0 * gamma)  # times a two-bin difference
        self._time_advance = 2.0 * math.pi * hop / fft_size  # per bin index
        self._freq_scale = -gamma / (2.0 * hop * fft_size)  # times a two-frame difference
        self._freq_offset = -2.0 * math.pi * synthesis_centre(fft_size, hop, window) / fft_size  # per bin
        self._log_tolerance = self.tolerance_db * math.log(10.0) / 20.0
        self._log_keep = self.keep_db * math.log(10.0) / 20.0

    @property
    def latency_samples(self) -> int:
        """Delay this stage adds, in samples at the model rate."""
        return self.lookahead_frames * self.hop

    def prepare(self, channels: int) -> None:
        """Allocate every buffer for `channels` streams, the random phase table included (fixed seed)."""
        f = self.bins
        rng = np.random.default_rng(RANDOM_SEED)
        self._random = rng.uniform(-math.pi, math.pi, RANDOM_TABLE_FRAMES * f)  # shared by channels
        self._random_pos = np.zeros(channels, dtype=np.int64)
        self._log_mag = np.empty((channels, 3, f))  # frames k-2, k-1, k
        self._time_grad = np.empty((channels, 2, f))  # frames target - 1 and target, radians per hop
        self._phase = np.empty((channels, f))  # phase of the previous target frame, radians
        self._mag_delay = np.empty((channels, f), dtype=np.float32)  # frame k-1 (look-ahead only)
        self._decoded_delay = np.empty((channels, f), dtype=np.complex64)
        self._freq_grad = np.empty(f)  # scratch, shared by channels
        self._target_phase = np.empty(f)
        self._state = np.empty(f, dtype=np.int8)  # _UNKNOWN, _DONE, _SMALL or _KEPT per target bin
        self._heap_keys = np.empty(2 * f)  # log-magnitudes; items: bin (previous frame) or F + bin
        self._heap_items = np.empty(2 * f, dtype=np.int64)
        self._no_band_above = np.full(channels, f, dtype=np.int64)
        # Phases of the last frames, for patches delayed by up to (F // step) * patch_delay_hops hops (patch p
        # starts at (p + 2) * S >= (p + 2) * step, so p <= F // step).
        delayed = self._translate_step > 0 and self.patch_delay_hops > 0
        slots = (f // self._translate_step) * self.patch_delay_hops + 1 if delayed else 1
        self._history = np.empty((channels, slots, f))  # ring of target phases, radians
        self._history_pos = np.zeros(channels, dtype=np.int64)  # the slot the next target frame goes to
        self.reset()

    def reset(self) -> None:
        """Forget the stream: silence before the next frame, random table from its start."""
        self._log_mag[:] = math.log(_MAG_FLOOR)
        self._time_grad[:] = 0.0
        self._phase[:] = 0.0
        self._mag_delay[:] = 0.0
        self._decoded_delay[:] = 0.0
        self._random_pos[:] = 0
        self._history[:] = 0.0
        self._history_pos[:] = 0

    def process(self, mag: np.ndarray, decoded: np.ndarray, out: np.ndarray,
                band_above: np.ndarray | None = None) -> None:
        """Write the spectrum of frame k - lookahead_frames into out.

        mag (C, F) float32: magnitudes to synthesise for frame k; decoded (C, F) complex64: STFT of the
        decoded input for frame k; out (C, F) complex64; band_above (C,) int64: where the band above a
        codec cutoff begins, per channel (F or None: nowhere); C as prepared. Allocates no buffers.
        """
        _process_frame(
            self._method_code, self.lookahead_frames, mag, decoded, out,
            self._no_band_above if band_above is None else band_above, self._translate_step,
            self.patch_delay_hops, self._history, self._history_pos,
            self._time_scale, self._time_advance, self._freq_scale, self._freq_offset, self._log_tolerance,
            self._log_keep, self._log_mag, self._time_grad, self._phase, self._mag_delay,
            self._decoded_delay, self._random, self._random_pos, self._freq_grad,
            self._target_phase, self._state, self._heap_keys, self._heap_items,
        )

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.phased <- the spectrum of frame k - lookahead_frames for the gated magnitudes of frame k,
        given the aligned decoded spectra and the band above the cutoff the gate restores."""
        self.process(buffers.gated, buffers.aligned_spectra, buffers.phased, buffers.band_above)


@njit(cache=True, nogil=True, inline="always")
def _sift_up(heap_keys, heap_items, pos, key, item):
    """Place item with key at the hole `pos`, moving smaller parents down into it."""
    while pos > 0:
        parent = (pos - 1) >> 1
        if heap_keys[parent] >= key:
            break
        heap_keys[pos] = heap_keys[parent]
        heap_items[pos] = heap_items[parent]
        pos = parent
    heap_keys[pos] = key
    heap_items[pos] = item


@njit(cache=True, nogil=True, inline="always")
def _heap_push(heap_keys, heap_items, size, key, item):
    """Insert item with key into the max-heap of the first `size` entries; return the new size."""
    _sift_up(heap_keys, heap_items, size, key, item)
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _heap_pop(heap_keys, heap_items, size):
    """Remove the item with the largest key; return (item, new size). Floyd's bottom-up sift."""
    top = heap_items[0]
    size -= 1
    key = heap_keys[size]
    item = heap_items[size]
    pos = 0
    child = 1
    while child < size:  # move the hole down along the larger children to a leaf
        if child + 1 < size and heap_keys[child + 1] > heap_keys[child]:
            child += 1
        heap_keys[pos] = heap_keys[child]
        heap_items[pos] = heap_items[child]
        pos = child
        child = 2 * pos + 1
    _sift_up(heap_keys, heap_items, pos, key, item)  # then sift the former last entry up into it
    return top, size


# One fixed signature, compiled at import (nothing compiles later); mag, decoded and out may be any views.
_FRAME_SIGNATURE = (
    "void(int64, int64, float32[:, :], complex64[:, :], complex64[:, :], int64[::1], int64, "
    "int64, float64[:, :, ::1], int64[::1], "
    "float64, float64, float64, float64, float64, "
    "float64, float64[:, :, ::1], float64[:, :, ::1], float64[:, ::1], float32[:, ::1], complex64[:, ::1], "
    "float64[::1], int64[::1], float64[::1], float64[::1], int8[::1], float64[::1], int64[::1])"
)


@njit(_FRAME_SIGNATURE, cache=True, nogil=True)
def _process_frame(method, lookahead, mag, decoded, out, band_above, translate_step, patch_delay, history,
                   history_pos, time_scale, time_advance,
                   freq_scale, freq_offset, log_tolerance, log_keep, log_mag, time_grad, phase, mag_delay,
                   decoded_delay, random, random_pos, freq_grad, target_phase, state, heap_keys,
                   heap_items) -> None:
    channels, f = phase.shape
    if mag.shape != phase.shape or decoded.shape != phase.shape or out.shape != phase.shape:
        raise ValueError("phase stage: mag, decoded and out must be (channels, F) as prepared")
    if band_above.shape[0] != channels:
        raise ValueError("phase stage: band_above must be (channels,) as prepared")
    target = 2 - lookahead  # row of log_mag holding the target frame, target - 1 the frame before
    keep_high = math.exp(log_keep)
    keep_low = 1.0 / keep_high
    for c in range(channels):
        target_mag = mag_delay[c] if lookahead == 1 else mag[c]
        target_dec = decoded_delay[c] if lookahead == 1 else decoded[c]

        if method == _DECODED:
            for m in range(f):
                d = target_dec[m]
                amp = abs(d)
                if amp > 0.0:
                    out[c, m] = d * (target_mag[m] / amp)
                else:
                    p = random[random_pos[c]]
                    random_pos[c] = (random_pos[c] + 1) % random.shape[0]
                    out[c, m] = complex(target_mag[m] * math.cos(p), target_mag[m] * math.sin(p))
        else:
            # Log-magnitude history and the target frame's time-direction gradient (radians per hop).
            for m in range(f):
                log_mag[c, 0, m] = log_mag[c, 1, m]
                log_mag[c, 1, m] = log_mag[c, 2, m]
                log_mag[c, 2, m] = math.log(mag[c, m] + _MAG_FLOOR)
                time_grad[c, 0, m] = time_grad[c, 1, m]
            for m in range(f):
                below = m - 1 if m > 0 else 1  # the spectrum is even around DC and Nyquist
                above = m + 1 if m < f - 1 else f - 2
                time_grad[c, 1, m] = (time_scale * (log_mag[c, target, above] - log_mag[c, target, below])
                                      + time_advance * m)
            # Frequency-direction gradient (radians per bin), with the -pi per bin of our framing:
            # centred difference with look-ahead, second-order backward difference without.
            for m in range(f):
                if lookahead == 1:
                    diff = log_mag[c, 2, m] - log_mag[c, 0, m]
                else:
                    diff = 3.0 * log_mag[c, 2, m] - 4.0 * log_mag[c, 1, m] + log_mag[c, 0, m]
                freq_grad[m] = freq_scale * diff + freq_offset

            top = log_mag[c, target, 0]
            for m in range(f):
                top = max(top, log_mag[c, target, m], log_mag[c, target - 1, m])
            threshold = top - log_tolerance
            for m in range(f):
                state[m] = _SMALL if log_mag[c, target, m] <= threshold else _UNKNOWN

            size = 0
            if method == _COMPLETION:  # reliable decoded bins keep their phase and seed the heap
                for m in range(f):       # within log_keep of the decoded magnitude, compared as a ratio
                    amp = abs(target_dec[m])
                    ratio = (target_mag[m] + _MAG_FLOOR) / (amp + _MAG_FLOOR)
                    if amp > 0.0 and keep_low <= ratio <= keep_high:
                        target_phase[m] = math.atan2(target_dec[m].imag, target_dec[m].real)
                        state[m] = _KEPT
            # The band above the cutoff takes the translated phase (below): it is not integrated, and no
            # integration passes through it (the heap's work shrinks by the band's share of the bins).
            first = band_above[c]
            shift = (first // 2) // translate_step * translate_step if translate_step > 0 else 0
            if shift > 0:
                for m in range(first, f):
                    if state[m] != _KEPT:
                        state[m] = _TRANSLATED
            if method == _COMPLETION:
                for m in range(f):
                    if state[m] == _KEPT and ((m > 0 and state[m - 1] == _UNKNOWN)
                                              or (m < f - 1 and state[m + 1] == _UNKNOWN)):
                        size = _heap_push(heap_keys, heap_items, size, log_mag[c, target, m], f + m)
            for m in range(f):  # the previous frame seeds every bin still unknown
                if state[m] == _UNKNOWN and log_mag[c, target - 1, m] > threshold:
                    size = _heap_push(heap_keys, heap_items, size, log_mag[c, target - 1, m], m)

            while True:
                while size > 0:
                    item, size = _heap_pop(heap_keys, heap_items, size)
                    if item < f:  # a bin of the previous frame: integrate along time
                        m = item
                        if state[m] == _UNKNOWN:
                            target_phase[m] = phase[c, m] + 0.5 * (time_grad[c, 0, m] + time_grad[c, 1, m])
                            state[m] = _DONE
                            size = _heap_push(heap_keys, heap_items, size, log_mag[c, target, m], f + m)
                    else:  # a bin of the target frame: integrate along frequency
                        m = item - f
                        if m + 1 < f and state[m + 1] == _UNKNOWN:
                            target_phase[m + 1] = target_phase[m] + 0.5 * (freq_grad[m] + freq_grad[m + 1])
                            state[m + 1] = _DONE
                            size = _heap_push(heap_keys, heap_items, size, log_mag[c, target, m + 1], item + 1)
                        if m > 0 and state[m - 1] == _UNKNOWN:
                            target_phase[m - 1] = target_phase[m] - 0.5 * (freq_grad[m] + freq_grad[m - 1])
                            state[m - 1] = _DONE
                            size = _heap_push(heap_keys, heap_items, size, log_mag[c, target, m - 1], item - 1)
                # Bins not reachable from a seed (an onset after quiet bins): start at the largest.
                start = -1
                for m in range(f):
                    if state[m] == _UNKNOWN and (start < 0 or log_mag[c, target, m] > log_mag[c, target, start]):
                        start = m
                if start < 0:
                    break
                target_phase[start] = phase[c, start] + 0.5 * (time_grad[c, 0, start] + time_grad[c, 1, start])
                state[start] = _DONE
                size = _heap_push(heap_keys, heap_items, size, log_mag[c, target, start], f + start)

            for m in range(f):
                if state[m] == _SMALL:
                    target_phase[m] = random[random_pos[c]]
                    random_pos[c] = (random_pos[c] + 1) % random.shape[0]
            # The band above the cutoff: the octave under it, translated up by a multiple of fft_size / hop,
            # patch p from p * patch_delay hops earlier.
            slots = history.shape[1]
            if shift > 0:
                for start in range(first, f, shift):  # patch (start - first) // shift
                    delay = (start - first) // shift * patch_delay
                    row = (history_pos[c] + slots - delay) % slots
                    for m in range(start, min(start + shift, f)):
                        if state[m] == _TRANSLATED:
                            source = first - shift + (m - start)
                            target_phase[m] = target_phase[source] if delay == 0 else history[c, row, source]
            for m in range(f):
                p = target_phase[m] - 2.0 * math.pi * math.floor(target_phase[m] / (2.0 * math.pi) + 0.5)
                phase[c, m] = p
                if slots > 1:
                    history[c, history_pos[c], m] = p
                p32 = np.float32(p)
                out[c, m] = complex(target_mag[m] * math.cos(p32), target_mag[m] * math.sin(p32))
            history_pos[c] = (history_pos[c] + 1) % slots

        if lookahead == 1:
            for m in range(f):
                mag_delay[c, m] = mag[c, m]
                decoded_delay[c, m] = decoded[c, m]
