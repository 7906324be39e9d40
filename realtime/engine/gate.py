"""Codec gate: find codec damage relative to the signal, keep what the codec kept, fill only what it dropped.

Per channel and hop (all in place, no allocation in `process`; levels in dB re the magnitude of a
full-scale sine, `full_scale_magnitude`: N/4 for the Hann framing):

1. Long-term band statistics. Each active frame (peak above `active_db`) is summed into bands of
   BAND_BINS bins (188 Hz at 48 kHz, N = 1024); per band the mean and the spread (standard deviation
   over time) of its level in dB are tracked (plain averages over the first frames, then exponential
   with time constant `spectrum_time_s`). A codec floor - zeros, 16-bit quantisation or dither, a
   resampler's leakage, a sound card's hiss - is low and steady; audio, however quiet, comes and goes.
2. Band-limit detection. A codec's low-pass is a cliff at a frequency that stays put. The cliff score at
   a band edge is the drop in mean level from the `below_hz` under it to the `above_hz` that starts
   `gap_hz` above it, plus how much steadier the bands above are than those below (spread below minus
   spread above, when positive), plus `floor_bonus_db` when the bands above are as steady as a noise
   floor (mean spread at most `floor_spread_db`; steady noise itself spreads by about 2.8 dB in a 4-bin
   band): a quiet signal (-30 dB, a 16-bit file's dither or a sound card's hiss close under it) reaches
   that floor only sometimes, so its mean drop is smaller, but nothing that is music or speech is that
   steady. The cutoff is the edge with the highest score between `min_cutoff_hz` and `max_cutoff_hz`; it
   counts as a codec band limit from a score of `cliff_db` on, until the score falls `release_db` below
   that. Nothing here is an absolute level: the same cliff is found at any gain and over any floor. Clean
   full-band audio has no such cliff below `max_cutoff_hz`, and a source whose own band ends above it
   counts as full band. Decisions start after DECIDE_FRAMES active frames and each needs HOLD_FRAMES
   active frames in a row that argue for it (for a band limit: scores of at least `cliff_db` at edges
   within EDGE_TOLERANCE_BANDS of each other); a detected cutoff then moves at most
   `cutoff_slew_hz_per_s`.
   Codec damage under the cliff. A clean source whose own band ends in a steep cliff (a 22.05 or 24 kHz
   file, an old recording, a soundfont) has the same steady cliff as a codec's low-pass, so from
   `damage_from_hz` up a cliff counts as a band limit only while the model finds codec damage under it:
   the share of bins it is at least `confidence_from` sure are codec-made, from 0 Hz to
   `damage_margin_hz` under the cutoff (the bins nearest it are left out: a source's own filter slope,
   which the model fills), averaged over `damage_time_s` of active audio (plainly until then), is at
   least `damage_share` (a band limit found is let go when it falls below half of that); in the first
   `damage_wait_s` of active audio proportionally more, as many codec-made bins as `damage_share` of
   that time (the model flags bins of clean audio in short bursts). A stream's channels share one codec,
   so the evidence is the least over the channels that show a cliff (a score of at least `cliff_db` -
   `release_db`): the side of a joint-stereo stream, which even 96-128 kbit/s codecs damage, does not
   decide for the mid. Below `damage_from_hz` a cliff counts without it; from `lenient_from_hz` to
   `lenient_to_hz`, where no common sample rate's band ends (16 kHz audio ends under 8 kHz, 22.05 kHz audio
   from about 10 kHz up) and LAME puts its 32 kbit/s mono low-pass, it needs `lenient_damage_fraction` of
   `damage_share`. In a stream known to be decoded from a lossy codec at a low bit rate (`set_coded_input`:
   a file's header said so, or `gate.coded_input`) a cliff counts without it at any frequency: there the
   cliff is the codec's whatever lies under it. In one known to be decoded from a codec at a high bit rate
   (`set_high_rate_input`: a file's header said so), whose own low-pass lies above `max_cutoff_hz`, no cliff
   counts as a band limit: any cliff found is the source's own (it still bounds where the codec-made share
   is measured, and still blocks that share where it lacks codec damage, as in 3.).
3. Codec-made bins. A model with a confidence head says per bin how sure it is (0..1) that the decoded
   bin is codec-made (noise filling, folded or intensity-coded bands, holes, the band above a cutoff).
   The long-term share of bins it is at least `confidence_from` sure of (per band, same averaging as
   1), below the cliff where the channel shows one (the empty band above a cliff is codec-made to the
   model whoever emptied it) and from 0 Hz to `codec_share_top_hz` otherwise (the whole spectrum from the
   Nyquist frequency on; a model whose confidence flags the top octave of clean full-band audio, where
   96-128 kbit/s encoders' own low-pass lies, sets it lower), is the second detector: codecs that
   leave no cliff (their encoders fill what they drop) count as codec damage from a share of
   `codec_share` on, until it falls below half of that, with the same DECIDE_FRAMES and HOLD_FRAMES
   rules; not while the stream's cliff lacks the codec damage above (a clean source's own band edge,
   whose side a 96-128 kbit/s joint-stereo codec left codec-made). A model without the head reports 0 everywhere: only the
   cliff counts, and only below `damage_from_hz` (or with `damage_share` 0).
4. Activity. While either detector says codec damage the gate fades in, otherwise out, by
   1 / ATTACK_FRAMES per active hop; quiet frames change neither the statistics nor the activity.
5. Per bin, in the log domain, out = decoded^(1 - w) * predicted^w with w = activity * max(
   above-cutoff weight (0 -> 1 over `crossfade_hz` ending at the cutoff, while a band limit is
   detected), hole weight (0 where the prediction exceeds the decoded by <= hole_db - 6 dB, 1 from
   hole_db on), confidence weight (0 at `confidence_from`, 1 from `confidence_full` on)): holes are bins
   the model finds far below what the signal around them implies, whatever floor fills them.
   Where w = 0 the output is the decoded magnitude bit for bit; with activity 0, everywhere.

6. The band above the cutoff (`HopBuffers.band_above`, for the phase stage): while the gate restores, the
   first bin above a detected cutoff, or, engaged by the codec-made share alone, the edge of the last cliff
   that scored at least `cliff_db` - `release_db` (held within EDGE_TOLERANCE_BANDS); F otherwise.

`report()` says what was detected since the last reset (for the front ends' messages and statistics).
`statistics()` and `start_from()` let a stream start with what its head showed (`Restorer.decide_ahead`):
the statistics, decisions and activity carry over, so restoration starts at the first sample where the gate
would otherwise have decided after up to a few seconds; the report counts from the start again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.stage import HopBuffers
from realtime.engine.windows import full_scale_magnitude

HOLE_RAMP_DB = 6.0
ATTACK_FRAMES = 8
DECIDE_FRAMES = 48
HOLD_FRAMES = 32                  # a decision (band limit or none) must hold this many active frames in a row
EDGE_TOLERANCE_BANDS = 2          # ... at a cutoff that stays within this many bands
BAND_BINS = 4
FLOOR_DB = -160.0                 # band levels are clamped here (exact zeros)
# rows of the per-channel band statistics
_LEVEL_DB, _MEAN_DB, _MEAN_SQUARE_DB, _MADE_SHARE, _DAMAGE_SHARE, _BAND_ROWS = range(6)
# per-channel state columns
(_ACTIVE_FRAMES, _FRAMES, _CUTOFF, _ACTIVITY, _DETECTED, _SCORE, _RESTORED_FRAMES, _FIRST_RESTORED,
 _RUN, _RUN_EDGE, _SHARE, _MADE, _MADE_RUN, _EDGE, _DAMAGE, _ACTIVE_NOW, _HEAD_FRAMES, _HEAD_ACTIVE_FRAMES,
 _FILL_EDGE, _STATE_SIZE) = range(20)
# parameter vector entries
(_P_ACTIVE, _P_ALPHA, _P_MIN_EDGE, _P_MAX_EDGE, _P_BELOW, _P_GAP, _P_ABOVE, _P_CLIFF, _P_RELEASE, _P_SLEW,
 _P_XFADE, _P_HOLE_LO, _P_HOLE_HI, _P_ATTACK, _P_FULL_SCALE, _P_CONF_LO, _P_CONF_HI, _P_SHARE_ON,
 _P_FLOOR_SPREAD, _P_FLOOR_BONUS, _P_DAMAGE_ON, _P_DAMAGE_MARGIN, _P_DAMAGE_FROM, _P_DAMAGE_ALPHA, _P_DAMAGE_WAIT,
 _P_SHARE_TOP, _P_LENIENT_FROM, _P_LENIENT_TO, _P_LENIENT_ON, _P_SIZE) = range(30)


class CodecGate:
    """The gate stage: `process(decoded_mag, predicted_mag, confidence, out_mag)`, all (C, F) f32, per
    hop; see the module doc."""

    name = "gate"
    latency_samples = 0

    def __init__(self, settings: dict[str, Any], sample_rate: int, fft_size: int, hop: int,
                 enabled: bool = True, window: str = "hann") -> None:
        """settings: the validated `gate:` section of the config (see default.yaml for each key);
        enabled False: the stage hands the model's estimate on everywhere (nothing is detected)."""
        s = settings
        self.settings = s
        self.enabled = enabled
        self.sample_rate, self.fft_size, self.hop = int(sample_rate), int(fft_size), int(hop)
        self.bands = (self.fft_size // 2) // BAND_BINS
        bands_per_hz = self.fft_size / self.sample_rate / BAND_BINS
        frames_per_s = self.sample_rate / self.hop
        p = np.zeros(_P_SIZE, np.float64)
        p[_P_ACTIVE] = s["active_db"]
        p[_P_ALPHA] = 1.0 / max(1.0, s["spectrum_time_s"] * frames_per_s)
        p[_P_MIN_EDGE] = round(s["min_cutoff_hz"] * bands_per_hz)      # edge e: between bands e - 1 and e
        p[_P_MAX_EDGE] = round(s["max_cutoff_hz"] * bands_per_hz)
        p[_P_BELOW] = max(1, round(s["below_hz"] * bands_per_hz))
        p[_P_GAP] = max(0, round(s["gap_hz"] * bands_per_hz))
        p[_P_ABOVE] = max(1, round(s["above_hz"] * bands_per_hz))
        p[_P_RELEASE] = s["cliff_db"] - s["release_db"]
        p[_P_SLEW] = s["cutoff_slew_hz_per_s"] * self.fft_size / self.sample_rate / frames_per_s   # bins/hop
        p[_P_XFADE] = max(1.0, s["crossfade_hz"] * self.fft_size / self.sample_rate)
        p[_P_HOLE_HI] = s["hole_db"] / 20 * np.log(10)          # nepers (natural log of magnitude)
        p[_P_HOLE_LO] = (s["hole_db"] - HOLE_RAMP_DB) / 20 * np.log(10)
        p[_P_ATTACK] = 1.0 / ATTACK_FRAMES
        p[_P_FULL_SCALE] = full_scale_magnitude(self.fft_size, window, self.hop)
        p[_P_CONF_LO] = s["confidence_from"]
        p[_P_CONF_HI] = max(s["confidence_full"], s["confidence_from"] + 1e-6)
        p[_P_SHARE_ON] = s["codec_share"]
        p[_P_SHARE_TOP] = min(self.bands, max(1, round(s["codec_share_top_hz"] * bands_per_hz)))
        p[_P_FLOOR_SPREAD] = s["floor_spread_db"]
        p[_P_FLOOR_BONUS] = s["floor_bonus_db"]
        p[_P_DAMAGE_MARGIN] = round(s["damage_margin_hz"] * bands_per_hz)
        p[_P_DAMAGE_FROM] = round(s["damage_from_hz"] * bands_per_hz)                # edges below: no evidence
        p[_P_LENIENT_FROM] = math.ceil(s["lenient_from_hz"] * bands_per_hz)          # edges in [from, to)
        p[_P_LENIENT_TO] = math.ceil(s["lenient_to_hz"] * bands_per_hz)
        p[_P_DAMAGE_ALPHA] = 1.0 / max(1.0, s["damage_time_s"] * frames_per_s)
        p[_P_DAMAGE_WAIT] = max(DECIDE_FRAMES, round(s["damage_wait_s"] * frames_per_s))   # active frames
        if p[_P_MAX_EDGE] + p[_P_GAP] + p[_P_ABOVE] > self.bands or p[_P_MIN_EDGE] < p[_P_BELOW]:
            raise ValueError("gate: the cutoff search range and its windows do not fit in the spectrum")
        self._params = p
        self.set_coded_input(s["coded_input"] is True)
        self.set_high_rate_input(False)
        self.prepare(1)

    def prepare(self, channels: int) -> None:
        """Allocate per-channel state for `channels` streams."""
        # [this frame's dB, mean dB, mean dB^2, share of the band's bins the model finds codec-made: its mean
        #  over spectrum_time_s and over damage_time_s]
        self._bands = np.zeros((channels, _BAND_ROWS, self.bands), np.float64)
        self._state = np.zeros((channels, _STATE_SIZE), np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the statistics, the detection and the counts (pass-through until a band limit is found)."""
        self._bands[:] = 0.0
        self._state[:] = 0.0
        self._state[:, _CUTOFF] = -1.0                                  # undecided
        self._state[:, _FILL_EDGE] = -1.0                               # no credible cliff yet
        self._state[:, _FIRST_RESTORED] = -1.0

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of the band statistics and the per-channel state (decisions, activity) so far."""
        return self._bands.copy(), self._state.copy()

    def start_from(self, statistics: tuple[np.ndarray, np.ndarray]) -> None:
        """Continue from `statistics()` taken at the end of the stream's head, as if the stream began now:
        the statistics, decisions and activity as they were, the report's counts from zero."""
        bands, state = statistics
        self._bands[:] = bands
        self._state[:] = state
        self._state[:, _HEAD_FRAMES] = self._state[:, _FRAMES]
        self._state[:, _HEAD_ACTIVE_FRAMES] = self._state[:, _ACTIVE_FRAMES]
        self._state[:, _RESTORED_FRAMES] = 0.0
        self._state[:, _FIRST_RESTORED] = -1.0

    @property
    def activity(self) -> np.ndarray:
        """(C,) 0 = passing the decoded magnitudes through, 1 = fully gated."""
        return self._state[:, _ACTIVITY]

    @property
    def cutoff_hz(self) -> np.ndarray:
        """(C,) the detected codec cutoff in Hz, NaN while none has been detected."""
        cut = self._state[:, _CUTOFF]
        return np.where(cut >= 0, cut * self.sample_rate / self.fft_size, np.nan)

    @property
    def cliff_db(self) -> np.ndarray:
        """(C,) the best cliff score at the last active frame (dB)."""
        return self._state[:, _SCORE].copy()

    def set_coded_input(self, coded: bool) -> None:
        """Whether the stream is known to be decoded from a lossy codec at a low bit rate (module doc, 2.):
        True, a cliff counts as the codec's band limit without codec damage under it; False, as configured.
        For the stream to come (between streams, not while one is processed)."""
        self.coded_input = bool(coded)
        share = 0.0 if coded else self.settings["damage_share"]
        self._params[_P_DAMAGE_ON] = share
        self._params[_P_LENIENT_ON] = self.settings["lenient_damage_fraction"] * share

    def set_high_rate_input(self, high: bool) -> None:
        """Whether the stream is known to be decoded from a lossy codec at a high bit rate (module doc, 2.):
        True, no cliff counts as a band limit (the codec-made share still does); False, as configured. For
        the stream to come (between streams, not while one is processed)."""
        self.high_rate_input = bool(high)
        self._params[_P_CLIFF] = math.inf if high else self.settings["cliff_db"]

    @property
    def damage_share(self) -> np.ndarray:
        """(C,) the long-term share of bins under the best cliff (up to `damage_margin_hz` from it) that the
        model finds codec-made, at the last active frame (0..1)."""
        return self._state[:, _DAMAGE].copy()

    def report(self) -> dict[str, Any]:
        """What was detected since the last reset, over all channels.

        engaged: whether any frame was restored; engaged_now: whether the gate is open now;
        cutoff_hz: the detected cutoff (mean over the channels that have one, Hz) or None;
        band_limit_now / codec_made_now: which detector says codec damage now (any channel);
        codec_made_share: the long-term share of bins the model finds codec-made, below the cliff where a
        channel shows one, else below `codec_share_top_hz` (mean over channels); damage_share: the same under
        the cliff, up to `damage_margin_hz` from it (mean over channels), the evidence a band limit needs;
        engaged_after_s: time from the stream start to the first restored frame (s) or None;
        restored_share: restored active frames / active frames (0..1); coded_input: whether the stream is
        taken as decoded from a low-rate lossy codec (`set_coded_input`); high_rate_input: from a high-rate
        one, whose cliffs do not count (`set_high_rate_input`).
        """
        st = self._state
        cut = self.cutoff_hz
        first = np.where(st[:, _FIRST_RESTORED] >= 0, st[:, _FIRST_RESTORED] - st[:, _HEAD_FRAMES], -1.0)
        active = float((st[:, _ACTIVE_FRAMES] - st[:, _HEAD_ACTIVE_FRAMES]).sum())
        seconds_per_frame = self.hop / self.sample_rate
        return {
            "engaged": bool(np.any(first >= 0)),
            "engaged_now": bool(np.any(st[:, _ACTIVITY] > 0)),
            "cutoff_hz": round(float(np.nanmean(cut)), 1) if np.any(np.isfinite(cut)) else None,
            "engaged_after_s": (round(float(first[first >= 0].min() + 1) * seconds_per_frame, 3)
                                if np.any(first >= 0) else None),
            "restored_share": round(float(st[:, _RESTORED_FRAMES].sum()) / active, 4) if active else 0.0,
            "band_limit_now": bool(np.any(st[:, _DETECTED] > 0)),
            "codec_made_now": bool(np.any(st[:, _MADE] > 0)),
            "codec_made_share": round(float(st[:, _SHARE].mean()), 4),
            "damage_share": round(float(st[:, _DAMAGE].mean()), 4),
            "coded_input": self.coded_input,
            "high_rate_input": self.high_rate_input,
        }

    def process(self, decoded_mag: np.ndarray, predicted_mag: np.ndarray, confidence: np.ndarray,
                out_mag: np.ndarray) -> None:
        """out_mag (C, F) f32 <- gated mix of decoded_mag and predicted_mag (C, F) f32, given the model's
        confidence (C, F) f32 (0..1) that each decoded bin is codec-made."""
        _gate(decoded_mag, predicted_mag, confidence, out_mag, self._bands, self._state, self._params)

    def process_hop(self, buffers: HopBuffers) -> None:
        """buffers.gated <- the gated mix of the aligned decoded magnitudes and the estimate (enabled), or
        a copy of the estimate (disabled); buffers.band_above <- where the band above a detected cutoff
        that the gate restores begins (F: none)."""
        if self.enabled:
            self.process(buffers.aligned_magnitudes, buffers.estimate, buffers.confidence, buffers.gated)
            _band_above(self._state, self._params, buffers.gated.shape[1], buffers.band_above)
        else:
            np.copyto(buffers.gated, buffers.estimate)
            buffers.band_above[:] = buffers.gated.shape[1]


@njit("void(float64[:, ::1], float64[::1], int64, int64[::1])", cache=True, nogil=True)
def _band_above(state, p, bins, band_above):
    """band_above[c] <- while the gate restores channel c, where the band above its codec cutoff begins: the
    first bin above a detected cutoff (its above-cutoff weight is 1 from there on), or, engaged by the
    codec-made share alone, the edge of the last cliff that scored at least `cliff_db` - `release_db` (the
    codec's band edge the detector has not confirmed: the model fills above it; held until a credible cliff
    lies more than EDGE_TOLERANCE_BANDS away); else `bins`."""
    for c in range(state.shape[0]):
        st = state[c]
        if st[_ACTIVE_NOW] > 0.0 and st[_SCORE] >= p[_P_RELEASE]:
            edge = st[_EDGE] * BAND_BINS
            if st[_FILL_EDGE] < 0.0 or abs(edge - st[_FILL_EDGE]) > EDGE_TOLERANCE_BANDS * BAND_BINS:
                st[_FILL_EDGE] = edge
        band_above[c] = bins
        if st[_ACTIVITY] <= 0.0:
            continue
        if st[_DETECTED] > 0.0 and st[_CUTOFF] >= 0.0:
            band_above[c] = min(bins, int(np.ceil(st[_CUTOFF])))
        elif st[_MADE] > 0.0 and st[_FILL_EDGE] >= 0.0:
            band_above[c] = min(bins, int(st[_FILL_EDGE]))


@njit("float64(float64[:, ::1], int64, int64)", cache=True, nogil=True)
def _spread_sum(bands, lo, hi):
    """Sum over bands lo..hi-1 of the standard deviation of the level (dB), from mean and mean square."""
    total = 0.0
    for j in range(lo, hi):
        total += np.sqrt(max(0.0, bands[_MEAN_SQUARE_DB, j] - bands[_MEAN_DB, j] * bands[_MEAN_DB, j]))
    return total


@njit(cache=True, nogil=True, inline="always")
def _made_share(bands, row, lo, hi):
    """Mean over bands lo..hi-1 of a long-term share of bins the model finds codec-made (row of bands)."""
    total = 0.0
    for j in range(lo, hi):
        total += bands[row, j]
    return total / max(1, hi - lo)


@njit(cache=True, nogil=True, inline="always")
def _damage_needed(edge, p):
    """The long-term codec damage share a cliff at band edge `edge` needs under it (module doc, 2.)."""
    if edge < p[_P_DAMAGE_FROM]:
        return 0.0
    return p[_P_LENIENT_ON] if p[_P_LENIENT_FROM] <= edge < p[_P_LENIENT_TO] else p[_P_DAMAGE_ON]


@njit("void(float32[:, ::1], float32[:, ::1], float32[:, ::1], float32[:, ::1], float64[:, :, ::1], "
      "float64[:, ::1], float64[::1])", cache=True, nogil=True)
def _gate(dec, pred, conf, out, bands, state, p):
    channels, bins = dec.shape
    n_bands = bands.shape[2]
    tiny = 1e-12
    full_scale = p[_P_FULL_SCALE]
    active = full_scale * 10.0 ** (p[_P_ACTIVE] / 20.0)
    floor_power = (full_scale * 10.0 ** (FLOOR_DB / 20.0)) ** 2 * BAND_BINS
    lo, hi = int(p[_P_MIN_EDGE]), int(p[_P_MAX_EDGE])
    below, gap, above = int(p[_P_BELOW]), int(p[_P_GAP]), int(p[_P_ABOVE])
    margin = int(p[_P_DAMAGE_MARGIN])
    share_top = int(p[_P_SHARE_TOP])
    # 1.-3. per channel: statistics, the best cliff and the evidence under it
    for c in range(channels):
        st = state[c]
        b = bands[c]
        st[_FRAMES] += 1.0
        peak = 0.0
        for k in range(bins):
            if dec[c, k] > peak:
                peak = dec[c, k]
        st[_ACTIVE_NOW] = 1.0 if peak > active else 0.0
        if st[_ACTIVE_NOW] == 0.0:            # quiet frames change neither statistics nor activity
            continue
        st[_ACTIVE_FRAMES] += 1.0
        # 1. band levels (dB), their running mean and mean square; the share of codec-made bins per band
        alpha = max(p[_P_ALPHA], 1.0 / st[_ACTIVE_FRAMES])
        damage_alpha = max(p[_P_DAMAGE_ALPHA], 1.0 / st[_ACTIVE_FRAMES])
        for j in range(n_bands):
            power = 0.0
            made = 0.0
            for k in range(j * BAND_BINS, (j + 1) * BAND_BINS):
                power += dec[c, k] * dec[c, k]
                if conf[c, k] >= p[_P_CONF_LO]:
                    made += 1.0
            db = 10.0 * np.log10(max(power, floor_power) / (full_scale * full_scale * BAND_BINS))
            b[_LEVEL_DB, j] = db
            b[_MEAN_DB, j] += alpha * (db - b[_MEAN_DB, j])
            b[_MEAN_SQUARE_DB, j] += alpha * (db * db - b[_MEAN_SQUARE_DB, j])
            b[_MADE_SHARE, j] += alpha * (made / BAND_BINS - b[_MADE_SHARE, j])
            b[_DAMAGE_SHARE, j] += damage_alpha * (made / BAND_BINS - b[_DAMAGE_SHARE, j])
        if st[_ACTIVE_FRAMES] < DECIDE_FRAMES:
            continue
        # 2. the highest cliff score over the edges lo..hi
        best, best_edge = -1e9, lo
        for e in range(lo, hi + 1):
            mean_below = 0.0
            for j in range(e - below, e):
                mean_below += b[_MEAN_DB, j]
            mean_above = 0.0
            for j in range(e + gap, e + gap + above):
                mean_above += b[_MEAN_DB, j]
            spread_above = _spread_sum(b, e + gap, e + gap + above) / above
            steadier = _spread_sum(b, e - below, e) / below - spread_above
            score = mean_below / below - mean_above / above + max(0.0, steadier)
            if spread_above <= p[_P_FLOOR_SPREAD]:
                score += p[_P_FLOOR_BONUS]
            if score >= best:
                best, best_edge = score, e
        st[_SCORE], st[_EDGE] = best, best_edge
        # the codec damage under it, and the share of codec-made bins (below a cliff, else up to codec_share_top_hz)
        st[_DAMAGE] = _made_share(b, _DAMAGE_SHARE, 0, max(1, best_edge - margin))
        st[_SHARE] = _made_share(b, _MADE_SHARE, 0, best_edge if best >= p[_P_RELEASE] else share_top)
    # one codec per stream: the least evidence over the channels that show a cliff, and the most one of those
    # cliffs needs
    damage, stream_need = 1.0, 0.0
    for c in range(channels):
        if state[c, _ACTIVE_FRAMES] >= DECIDE_FRAMES and state[c, _SCORE] >= p[_P_RELEASE]:
            damage = min(damage, state[c, _DAMAGE])
            stream_need = max(stream_need, _damage_needed(state[c, _EDGE], p))
    for c in range(channels):
        st = state[c]
        b = bands[c]
        if st[_ACTIVE_NOW] > 0.0:
            if st[_ACTIVE_FRAMES] >= DECIDE_FRAMES:
                # a decision needs HOLD_FRAMES frames in a row that argue for it, a band limit at one edge
                # with the codec damage under it that its edge needs (_damage_needed)
                best, best_edge = st[_SCORE], st[_EDGE]
                # as many codec-made bins as damage_share of damage_wait_s: a higher share before that
                wait = max(1.0, p[_P_DAMAGE_WAIT] / st[_ACTIVE_FRAMES])
                need = _damage_needed(best_edge, p)
                unproven = damage < need * wait
                lost = damage < 0.5 * need
                detected = st[_DETECTED] > 0.0
                if not detected and best >= p[_P_CLIFF] and not unproven:
                    if st[_RUN] > 0.0 and abs(best_edge - st[_RUN_EDGE]) <= EDGE_TOLERANCE_BANDS:
                        st[_RUN] += 1.0
                    else:
                        st[_RUN], st[_RUN_EDGE] = 1.0, best_edge
                elif detected and (best < p[_P_RELEASE] or lost):
                    st[_RUN] += 1.0
                else:
                    st[_RUN] = 0.0
                if st[_RUN] >= HOLD_FRAMES:
                    st[_DETECTED] = 0.0 if detected else 1.0
                    st[_RUN] = 0.0
                if st[_DETECTED] > 0.0:
                    edge_bin = best_edge * BAND_BINS
                    if st[_CUTOFF] < 0.0:
                        st[_CUTOFF] = edge_bin
                    else:
                        st[_CUTOFF] += min(p[_P_SLEW], max(-p[_P_SLEW], edge_bin - st[_CUTOFF]))
                # 3. the share of codec-made bins decides too, unless the stream's cliff is a clean source's
                # own (the side of a 96-128 kbit/s joint-stereo stream is codec-made, the source is not)
                clean_cliff = damage < stream_need * wait
                if st[_MADE] > 0.0:
                    let_go = st[_SHARE] < 0.5 * p[_P_SHARE_ON] or damage < 0.5 * stream_need
                    st[_MADE_RUN] = st[_MADE_RUN] + 1.0 if let_go else 0.0
                else:
                    st[_MADE_RUN] = st[_MADE_RUN] + 1.0 if st[_SHARE] >= p[_P_SHARE_ON] and not clean_cliff else 0.0
                if st[_MADE_RUN] >= HOLD_FRAMES:
                    st[_MADE] = 0.0 if st[_MADE] > 0.0 else 1.0
                    st[_MADE_RUN] = 0.0
            # 4. activity
            a = st[_ACTIVITY]
            if st[_DETECTED] > 0.0 or st[_MADE] > 0.0:
                a = min(1.0, a + p[_P_ATTACK])
            else:
                a = max(0.0, a - p[_P_ATTACK])
            st[_ACTIVITY] = a
            if a > 0.0:
                st[_RESTORED_FRAMES] += 1.0
                if st[_FIRST_RESTORED] < 0.0:
                    st[_FIRST_RESTORED] = st[_FRAMES] - 1.0
        # 5. per-bin mix
        a = st[_ACTIVITY]
        if a <= 0.0:
            for k in range(bins):
                out[c, k] = dec[c, k]
            continue
        kc = st[_CUTOFF] if st[_DETECTED] > 0.0 else float(bins) + p[_P_XFADE]   # no band limit: no band above
        xfade = p[_P_XFADE]
        hole_lo, hole_hi = p[_P_HOLE_LO], p[_P_HOLE_HI]
        conf_lo, conf_hi = p[_P_CONF_LO], p[_P_CONF_HI]
        for k in range(bins):
            d = dec[c, k]
            q = pred[c, k]
            wa = (k + 1.0 - (kc - xfade)) / xfade          # above-cutoff weight: 0 at kc - xfade, 1 at kc
            wa = min(1.0, max(0.0, wa))
            g = np.log(q + tiny) - np.log(d + tiny)        # how far the prediction exceeds the decoded (nepers)
            wh = min(1.0, max(0.0, (g - hole_lo) / (hole_hi - hole_lo)))
            wc = min(1.0, max(0.0, (conf[c, k] - conf_lo) / (conf_hi - conf_lo)))
            w = a * max(wa, max(wh, wc))
            if w <= 0.0:
                out[c, k] = d
            elif w >= 1.0:
                out[c, k] = q
            else:
                out[c, k] = np.exp((1.0 - w) * np.log(d + tiny) + w * np.log(q + tiny))
