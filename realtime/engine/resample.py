"""Streaming polyphase resampler (Kaiser-windowed sinc) between host rates and the model rate.

Time is counted in ticks of 1/R s, R = lcm(in_rate, out_rate) Hz. With up/down = p/q = out_rate/in_rate
reduced, R = p*in_rate = q*out_rate: an input sample lasts p ticks, an output sample q ticks.

- One linear-phase low-pass prototype h of N taps at R Hz (pass to 0.45*min(in_rate, out_rate), stop
  from 0.5*min(in_rate, out_rate)). Output sample j is y[j] = p * sum_i x[i] * h[j*q - i*p]: the input
  zero-stuffed by p, filtered, and taken every q-th tick. It needs inputs up to floor(j*q / p) only and is
  produced by the call that delivers that input. Before the first input the history is zeros.
- Delay: (N - 1)/2 ticks = (N - 1)/(2q) output samples, exact (`delay_in_output_samples`).
- Round trip host -> 48k (A) -> integer delay E + pad at 48k -> host (B): A and B share R = lcm(host, 48000)
  and therefore the same prototype (same N). The chain delays by (N - 1) + q_A*(E + pad) ticks, with
  q_A = R/48000; one host sample is p_A = R/host ticks. As gcd(p_A, q_A) = 1,
  pad = (-(N - 1) * q_A^-1 - E) mod p_A  (0 <= pad < p_A samples at 48k) makes the total an exact
  integer: ((N - 1) + q_A*(E + pad)) / p_A host samples (`round_trip_padding`).
- A whole stream to another rate (`resample_blocks`, the file and pipe front ends' full-band output): the
  first output sample starts at tick D mod q, D = (N - 1) / 2 (N is odd), and the first D // q outputs are
  dropped, so output sample j is the input at time j / out_rate exactly; n input samples give
  n * out_rate / in_rate output samples (rounded half up), the end flushed with silence.

The kernel is compiled for one fixed signature at import and releases the GIL.
"""

from collections.abc import Iterable, Iterator
from fractions import Fraction
from math import ceil, gcd, pi

import numpy as np
from realtime.engine.jit import njit

from realtime.engine.config import MODEL_RATE_HZ
PASSBAND_EDGE = 0.45
"""Passband edge as a fraction of min(in_rate, out_rate)."""
STOPBAND_EDGE = 0.5
"""Stopband edge as a fraction of min(in_rate, out_rate): nothing aliases or images below it."""
STOPBAND_DB = {"high": 96.0, "low": 60.0}
"""Kaiser design attenuation (dB) per quality; the passband ripple is the same fraction of unity."""


def _ratio(in_rate: int, out_rate: int) -> tuple[int, int]:
    """(up, down) = out_rate/in_rate reduced; raises ValueError for rates that need no resampler."""
    if in_rate <= 0 or out_rate <= 0 or in_rate == out_rate:
        raise ValueError(f"gapfill: cannot resample {in_rate} Hz -> {out_rate} Hz (rates must differ and be > 0)")
    g = gcd(in_rate, out_rate)
    return out_rate // g, in_rate // g


def _filter_length(in_rate: int, out_rate: int, quality: str) -> int:
    """Prototype length N (taps at lcm(in_rate, out_rate) Hz) from Kaiser's formula, made odd."""
    if quality not in STOPBAND_DB:
        raise ValueError(f"gapfill: unknown resampler quality {quality!r} (use one of {sorted(STOPBAND_DB)})")
    up, _ = _ratio(in_rate, out_rate)
    rate = up * in_rate
    transition = 2 * pi * (STOPBAND_EDGE - PASSBAND_EDGE) * min(in_rate, out_rate) / rate
    return (ceil((STOPBAND_DB[quality] - 7.95) / (2.285 * transition)) + 1) | 1  # odd: a delay of whole ticks


def prototype_filter(in_rate: int, out_rate: int, quality: str = "high") -> np.ndarray:
    """Low-pass prototype: (N,) float64 taps at lcm(in_rate, out_rate) Hz, unit DC gain, linear phase.

    Symmetric in (in_rate, out_rate), so the two directions of a round trip share it.
    """
    length = _filter_length(in_rate, out_rate, quality)
    up, _ = _ratio(in_rate, out_rate)
    cutoff = 0.5 * (PASSBAND_EDGE + STOPBAND_EDGE) * min(in_rate, out_rate) / (up * in_rate)  # cycles/tick
    beta = 0.1102 * (STOPBAND_DB[quality] - 8.7)  # Kaiser's formula for attenuation > 50 dB
    taps = 2 * cutoff * np.sinc(2 * cutoff * (np.arange(length) - (length - 1) / 2)) * np.kaiser(length, beta)
    return taps / taps.sum()


@njit("int64(float32[:, :], float32[:, ::1], float32[:, ::1], int64[::1], float32[:, ::1], int64, int64)",
      cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _resample_block(block, hist, table, state, out, up, down):
    """Resample one block; returns the number of output samples written to out[:, :m].

    block (C, n) f32; hist (C, K - 1 + max_in) f32 with the last K - 1 inputs in hist[:, :K - 1];
    table (up, K) f32 polyphase taps, each row reversed; state[0] = tick of the next output relative to
    the first sample of `block` (0 <= state[0] < down); out (C, >= m) f32.
    """
    channels, n = block.shape
    taps = table.shape[1]
    keep = taps - 1
    tick0 = state[0]
    m = max(0, (up * n - tick0 + down - 1) // down)
    for c in range(channels):
        for i in range(n):
            hist[c, keep + i] = block[c, i]
        for j in range(m):
            tick = tick0 + j * down
            first = tick // up
            phase = tick - first * up
            acc = np.float32(0.0)
            for k in range(taps):
                acc += hist[c, first + k] * table[phase, k]
            out[c, j] = acc
        for i in range(keep):
            hist[c, i] = hist[c, n + i]
    state[0] = tick0 + m * down - up * n
    return m


class StreamingResampler:
    """Block-streaming rational resampler in_rate -> out_rate (Hz), linear phase, causal.

    Life cycle: `prepare(channels, max_in_block)` allocates, `process(block)` allocates nothing,
    `reset()` returns to a silent history.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "high") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.up, self.down = _ratio(in_rate, out_rate)
        prototype = prototype_filter(in_rate, out_rate, quality)
        self.filter_length = len(prototype)
        """N, prototype taps at lcm(in_rate, out_rate) Hz."""
        self.taps_per_phase = -(-self.filter_length // self.up)
        """K, taps per polyphase branch: the input samples one output sample reads."""
        padded = np.zeros(self.up * self.taps_per_phase)
        padded[: self.filter_length] = self.up * prototype
        self._table = np.ascontiguousarray(padded.reshape(self.taps_per_phase, self.up).T[:, ::-1], np.float32)
        self._state = np.zeros(1, np.int64)
        self.max_in_block = 0
        self._hist = np.zeros((0, 0), np.float32)
        self._out = np.zeros((0, 0), np.float32)

    @property
    def delay_in_output_samples(self) -> Fraction:
        """Group delay (output samples, exact): output sample j holds the input at time (j - delay)/out_rate."""
        return Fraction(self.filter_length - 1, 2 * self.down)

    def max_output(self, n_in: int) -> int:
        """Upper bound on the output samples of one `process` call with n_in input samples."""
        return -(-self.up * n_in // self.down)

    def output_samples(self, n_in: int) -> int:
        """Exact number of output samples the next `process` call with n_in input samples returns."""
        return max(0, -(-(self.up * n_in - int(self._state[0])) // self.down))

    def prepare(self, channels: int, max_in_block: int) -> None:
        """Allocate history (channels, K - 1 + max_in_block) and output (channels, max_output(max_in_block))."""
        self.max_in_block = max_in_block
        self._hist = np.zeros((channels, self.taps_per_phase - 1 + max_in_block), np.float32)
        self._out = np.zeros((channels, self.max_output(max_in_block)), np.float32)
        self._state[0] = 0

    def reset(self, start_tick: int = 0) -> None:
        """Forget the history: the stream restarts as if silent before.

        start_tick (0 <= start_tick < down): the tick of the first output sample after the first input
        sample; `resample_blocks` uses it to cancel the filter delay.
        """
        if not 0 <= start_tick < self.down:
            raise ValueError(f"gapfill: start tick must be in [0, {self.down}), got {start_tick}")
        self._hist[:] = 0.0
        self._state[0] = start_tick

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample block (channels, n) float32, 0 <= n <= max_in_block.

        Returns (channels, output_samples(n)) float32, a view into a preallocated buffer valid until the next call.
        """
        channels, n = block.shape
        if channels != self._hist.shape[0] or n > self.max_in_block or block.dtype != np.float32:
            raise ValueError(
                f"gapfill: resampler prepared for float32 blocks of {self._hist.shape[0]} channels x <= "
                f"{self.max_in_block} samples, got {block.dtype} {block.shape}"
            )
        m = _resample_block(block, self._hist, self._table, self._state, self._out, self.up, self.down)
        return self._out[:, :m]


def round_trip_padding(host_rate: int, engine_delay_48k: int, quality: str = "high") -> tuple[int, int]:
    """(pad, total): extra delay at 48 kHz (samples) and the exact round-trip latency (host samples).

    For host -> 48 kHz -> (engine_delay_48k + pad samples of delay) -> host, both resamplers built with
    `quality`, a band-limited input comes out delayed by exactly `total` host samples.
    0 <= pad < lcm(host_rate, 48000) / host_rate (160 for 44.1 kHz). Math in the module docstring.
    """
    if host_rate == MODEL_RATE_HZ:
        return 0, engine_delay_48k
    ticks_per_host, ticks_per_model = _ratio(host_rate, MODEL_RATE_HZ)
    filter_ticks = _filter_length(host_rate, MODEL_RATE_HZ, quality) - 1  # both directions: 2 * (N - 1)/2
    pad = (-filter_ticks * pow(ticks_per_model, -1, ticks_per_host) - engine_delay_48k) % ticks_per_host
    return pad, (filter_ticks + ticks_per_model * (engine_delay_48k + pad)) // ticks_per_host


def resample_blocks(blocks: Iterable[np.ndarray], channels: int, in_rate: int, out_rate: int,
                    max_block: int) -> Iterator[np.ndarray]:
    """A stream of (channels, n <= max_block) float32 blocks at `in_rate` Hz, resampled to `out_rate` Hz
    and delay compensated: output sample j is the input at j / out_rate s, and n input samples in all
    give n * out_rate / in_rate output samples, rounded half up. Yields (channels, m) float32 views, each valid until the next step."""
    resampler = StreamingResampler(in_rate, out_rate)
    resampler.prepare(channels, max_block)
    delay_ticks = (resampler.filter_length - 1) // 2  # exact: the length is odd
    resampler.reset(delay_ticks % resampler.down)
    skip = delay_ticks // resampler.down  # outputs before the input's first sample
    consumed = produced = 0
    for block in blocks:
        consumed += block.shape[1]
        out = resampler.process(block)
        dropped = min(skip, out.shape[1])
        skip -= dropped
        if out.shape[1] > dropped:
            produced += out.shape[1] - dropped
            yield out[:, dropped:]
    wanted = (2 * consumed * out_rate + in_rate) // (2 * in_rate)  # consumed * out_rate / in_rate, half up
    silence = np.zeros((channels, max_block), np.float32)
    while produced < wanted:
        out = resampler.process(silence)
        dropped = min(skip, out.shape[1])
        skip -= dropped
        take = min(out.shape[1] - dropped, wanted - produced)
        if take > 0:
            produced += take
            yield out[:, dropped : dropped + take]
