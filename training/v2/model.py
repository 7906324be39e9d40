"""Model v2: a small causal recurrent network at band resolution that drives per-bin gains and fills.

Shapes: offline `BandNet.forward(mag (B, T, F=513)) -> BandOutput` (linear magnitudes of the v2 framing,
training/v2/features.py); streaming `StreamingBandNet.forward(mag (B, F), prev (B, bands, 3 P), gru (B, 1, H)
[, phase (B, 1), held (B, bands, 3)][, lag (B, L, F)]) -> (magnitude_out (B, F), confidence (B, F), prev',
gru'[, phase', held'][, lag'])` computes exactly the same function one frame at a time (phase and held only
with gru_stride > 1, lag only with lookahead L > 0; P = max(C - 1, L + 1) frames of features). Batch B =
audio channels when streaming.

Inside, per frame (levels in dB re a full-scale sine, `features.full_scale_magnitude`, floored at FLOOR_DB):
    P_b   mean power of band b (the pooling matrix), G_b mean of its bins' dB, r the frame's mean power
    input per band, 3 values: (P_b - r) / 20 (spectral shape), (P_b - G_b) / 10 (how uneven the band is:
          large where bins are missing), (r - LEVEL_REF_DB) / 20 (absolute level, the same on every band);
          those of the current frame and of the C - 1 before it side by side (`context` C, a causal kernel of
          C frames)
    front end: with `channels` > 0 a convolution over bands (kernel 3, 3 C -> channels); flattened; with
          `bin_input` the 513 bin levels of the GRU's own frame too, (L_k - r) / 20 with L_k the bin's dB
          (the fine structure the bands average away)
    Linear -> hidden, GRU(hidden) over time, Linear -> hidden, Linear -> 3 values per band (the head), plus
          a per-band linear map of the band's own 6 input values of the current and previous frame (a skip
          path: gain and fill follow the band's input); with `block` W > 0 a residual block
          u + Linear(W -> hidden)(act(Linear(hidden -> W)(u))) after the GRU's input layer and after the
          head's hidden layer (depth where it is cheap: on the GRU's frames only, batched over time)
    with gru_stride s > 1 the GRU and the head run on every s-th frame only (frames 0, s, 2s, ... of the
          stream; each sees that frame and the C - 1 before it) and the head's values are held for the s - 1
          frames after it, which still get their own skip path and frame level: s times less recurrent and
          head computation in training, at no added latency
    gain_b = exp(GAIN_LIMIT * tanh(o_gain / GAIN_LIMIT))             (within +-GAIN_LIMIT nepers)
    fill_b = full scale * 10^((r + FILL_SCALE_DB * o_fill) / 20)     (a level relative to the frame's)
    per bin k of band b:  fill="power":      est_k = sqrt((gain_b |X_k|)^2 + fill_b^2)
                          fill="magnitude":  est_k = gain_b |X_k| + fill_b
so a bin the codec kept is scaled, a bin it dropped (|X_k| ~ 0: holes, the band above a cutoff) comes out at
the band's fill level, flat inside the band. The confidence that the decoded bin is codec-made is the
band's sigmoid, repeated over its bins. A new network starts near the identity (gain 1, fill FILL_INIT_DB
below the frame level, confidence sigmoid(CONFIDENCE_INIT_LOGIT)).

Look-ahead (`lookahead` L frames, default 0): the estimate of frame u comes from the GRU's output at frame
u + L (so its input reaches L frames past u) and frame u's own skip path and level; streaming, the output
of call k is the estimate of frame k - L (the engine's `gapfill.lookahead_frames`), and offline the L frames
after the last are silence, as the engine's flush feeds them.

Training never needs the 513 bins of every frame: `bands` gives the band outputs and the input's band
powers, from which `band_power` gets the estimate's band powers exactly (the loss's envelope term), and
`expand` makes the bins of the frames the loss's bin term samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as fn
from torch import nn

from training.v2 import features

FLOOR_DB = -120.0
LEVEL_REF_DB = -40.0
GAIN_LIMIT = 3.0                 # nepers: gains between -26 and +26 dB
FILL_SCALE_DB = 20.0
FILL_INIT_DB = -60.0
CONFIDENCE_INIT_LOGIT = -4.0
FILLS = ("power", "magnitude")
INPUTS = 3                       # values per band and frame
LEAK = 0.1                       # negative slope of the leaky ReLUs


@dataclass(frozen=True)
class BandNetConfig:
    """Constructor arguments of BandNet (stored in checkpoints and ONNX metadata)."""

    bands: int = 32
    channels: int = 0             # 0: no convolution front end
    hidden: int = 256
    fill: str = "power"
    gru_stride: int = 4           # frames per GRU update (module doc)
    context: int = 2              # frames the GRU's input layer sees at each update, its own included (>= 2)
    block: int = 0                # width of the residual blocks (module doc; 0: none)
    lookahead: int = 0            # frames after the estimated one that its estimate sees (module doc)
    bin_input: bool = False       # the GRU's input layer also sees its frame's bin levels (module doc)


LEGACY_CONFIG = {"gru_stride": 1, "context": 2, "block": 0, "lookahead": 0, "bin_input": False}
"""What a stored config without a key meant (checkpoints and exports before that key existed)."""


class BandOutput(NamedTuple):
    magnitude: torch.Tensor           # (..., F) linear estimate
    confidence_logit: torch.Tensor    # (..., bands)
    band_gain: torch.Tensor           # (..., bands) linear
    band_fill: torch.Tensor           # (..., bands) in full-scale units (linear magnitude / full scale)


class Bands(NamedTuple):
    gain: torch.Tensor                # (..., bands) linear
    fill: torch.Tensor                # (..., bands) full-scale units
    confidence_logit: torch.Tensor    # (..., bands)
    power: torch.Tensor               # (..., bands) the input's mean power per band, full-scale units
    mean_magnitude: torch.Tensor | None  # (..., bands) the input's mean magnitude per band (fill="magnitude")


class BandNet(nn.Module):
    def __init__(self, config: BandNetConfig = BandNetConfig()):
        super().__init__()
        if config.fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {config.fill!r}")
        if config.context < 2:
            raise ValueError(f"context must be at least 2 frames (the skip path's), got {config.context}")
        self.config = config
        nb, c, h, w = config.bands, config.channels, config.hidden, config.block
        inputs = INPUTS * config.context
        self.register_buffer("pooling", torch.from_numpy(features.pooling_matrix(nb)), persistent=False)
        self.register_buffer("expansion", torch.from_numpy(features.expansion_matrix(nb)), persistent=False)
        self.full_scale = features.full_scale_magnitude()
        self.conv = nn.Linear(3 * inputs, c) if c else None
        self.gru_in = nn.Linear(nb * (c or inputs) + (features.BINS if config.bin_input else 0), h)
        self.gru = nn.GRU(h, h, batch_first=True)
        self.hid = nn.Linear(h, h)
        self.out = nn.Linear(h, 3 * nb)
        self.local = nn.Linear(2 * INPUTS, 3)
        self.act = nn.LeakyReLU(LEAK)
        self.in_block = nn.Sequential(nn.Linear(h, w), nn.LeakyReLU(LEAK), nn.Linear(w, h)) if w else None
        self.head_block = nn.Sequential(nn.Linear(h, w), nn.LeakyReLU(LEAK), nn.Linear(w, h)) if w else None
        residual_ends = [b[2] for b in (self.in_block, self.head_block) if b is not None]
        for layer in (self.out, self.local, *residual_ends):      # zero: the identity, and blocks add nothing
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.local.bias.copy_(torch.tensor([0.0, FILL_INIT_DB / FILL_SCALE_DB, CONFIDENCE_INIT_LOGIT]))

    # ------------------------------------------------------------------------------------------------
    def band_features(self, mag: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """mag (..., F) -> (features (..., bands, 3), frame level r (..., 1) dB, band power (..., bands) and,
        for fill="magnitude", band mean magnitude (..., bands), both full-scale units)."""
        fs2 = self.full_scale ** 2       # scales applied after pooling: one full-resolution product less each
        floor = 10 ** (FLOOR_DB / 10)
        power = mag * mag
        band_power = self.band_powers(mag, power)
        band_db = features.db(band_power + floor)
        mean_db = features.db(power + floor * fs2) @ self.pooling - features.DB_PER_NEPER / 2 * math.log(fs2)
        frame_db = features.db(band_power @ self.band_widths + floor)
        x = torch.stack([(band_db - frame_db) / 20, (band_db - mean_db) / 10,
                         ((frame_db - LEVEL_REF_DB) / 20).expand_as(band_db)], dim=-1)
        mean_magnitude = (mag @ self.pooling) * (1.0 / self.full_scale) if self.config.fill == "magnitude" else None
        return x, frame_db, band_power, mean_magnitude

    def bin_levels(self, mag: torch.Tensor, frame_db: torch.Tensor) -> torch.Tensor | None:
        """The bin levels the GRU's input layer sees with `bin_input` (module doc) of magnitudes (..., F) and
        their frames' levels (..., 1) dB -> (..., F); None without bin_input."""
        if not self.config.bin_input:
            return None
        return (features.db(mag * mag * (1.0 / self.full_scale ** 2) + 10 ** (FLOOR_DB / 10)) - frame_db) / 20

    def band_powers(self, mag: torch.Tensor, power: torch.Tensor | None = None) -> torch.Tensor:
        """Mean power per band (..., bands), full-scale units, of magnitudes (..., F) (`power`: mag * mag if
        already at hand); the full-scale factor applied after pooling."""
        return ((mag * mag if power is None else power) @ self.pooling) * (1.0 / self.full_scale ** 2)

    @property
    def band_widths(self) -> torch.Tensor:
        """(bands, 1): each band's share of the bins (band powers @ it = the frame's mean power)."""
        return self.expansion.sum(1, keepdim=True) / self.expansion.shape[1]

    def front(self, z: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """Features of the context's frames side by side, oldest first (N, bands, 3 C), and with `bin_input` the
        newest frame's bin levels (N, F) -> the GRU input layer's input (N, bands * (channels or 3 C) [+ F]):
        the band convolution where there is one."""
        if self.conv is not None:
            p = fn.pad(z, (0, 0, 1, 1))
            z = self.act(self.conv(torch.cat([p[:, :-2], p[:, 1:-1], p[:, 2:]], dim=-1)))
        return z.flatten(1) if levels is None else torch.cat([z.flatten(1), levels], dim=-1)

    def encode(self, z: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """Features of the context's frames (N, bands, 3 C) [and bin levels (N, F)] -> GRU input (N, hidden)."""
        e = self.act(self.gru_in(self.front(z, levels)))
        return e if self.in_block is None else e + self.in_block(e)

    def head(self, g: torch.Tensor) -> torch.Tensor:
        """GRU output (N, hidden) -> the network's 3 values per band (N, bands, 3), before the skip path."""
        u = self.act(self.hid(g))
        if self.head_block is not None:
            u = u + self.head_block(u)
        return self.out(u).view(g.shape[0], self.config.bands, 3)

    def decode(self, o: torch.Tensor, z: torch.Tensor, frame_db: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Head values (N, bands, 3), inputs (N, bands, 6), frame level (N, 1) -> gain, fill (full-scale
        units) and confidence logit, each (N, bands)."""
        o = o + self.local(z)
        gain = torch.exp(GAIN_LIMIT * torch.tanh(o[..., 0] / GAIN_LIMIT))
        fill = 10 ** ((frame_db + FILL_SCALE_DB * o[..., 1]) / 20)
        return gain, fill, o[..., 2]

    def bands(self, mag: torch.Tensor) -> Bands:
        """Offline band outputs: mag (B, T, F) -> Bands of (B, T, bands) tensors; causal (zero past at t = 0)."""
        b, t, _ = mag.shape
        nb, s, c, la = self.config.bands, self.config.gru_stride, self.config.context, self.config.lookahead
        x, frame_db, power, mean_magnitude = self.band_features(mag)      # (B, T, nb, 3), (B, T, 1), ...
        mag_run, db_run = mag, frame_db
        if la:                                                             # the frames after the last: silence
            silence = mag.new_zeros(b, la, mag.shape[-1])
            ahead, ahead_db, _, _ = self.band_features(silence)
            x_run = torch.cat([x, ahead], dim=1)
            mag_run, db_run = torch.cat([mag, silence], dim=1), torch.cat([frame_db, ahead_db], dim=1)
        else:
            x_run = x
        tr = t + la                                                        # the frames the GRU runs over
        past = fn.pad(x_run, (0, 0, 0, 0, c - 1, 0))                       # frame t at t + c - 1
        z = torch.cat([past[:, c - 2: c - 2 + t], x], dim=-1)              # (B, T, nb, 6): the skip path's
        zs = torch.cat([past[:, i: i + tr: s] for i in range(c)], dim=-1)  # (B, Ts, nb, 3c): the GRU's frames
        ts = zs.shape[1]
        levels = self.bin_levels(mag_run[:, ::s], db_run[:, ::s])         # (B, Ts, F) or None
        levels = None if levels is None else levels.reshape(b * ts, -1)
        g, _ = self.gru(self.encode(zs.reshape(b * ts, nb, c * INPUTS), levels).view(b, ts, -1))
        o = self.head(g.reshape(b * ts, -1)).view(b, ts, nb, 3)
        if s > 1:
            o = o.repeat_interleave(s, dim=1)[:, :tr]
        o = o[:, la:]                                                      # frame u's from frame u + la's
        gain, fill, logit = self.decode(o.reshape(b * t, nb, 3), z.reshape(b * t, nb, 2 * INPUTS),
                                        frame_db.reshape(b * t, 1))
        return Bands(gain.view(b, t, -1), fill.view(b, t, -1), logit.view(b, t, -1), power, mean_magnitude)

    def expand(self, gain: torch.Tensor, fill: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """Band gains and fills (..., bands) applied to magnitudes (..., F) -> the estimate (..., F)."""
        gain_k, fill_k = gain @ self.expansion, (fill * self.full_scale) @ self.expansion
        if self.config.fill == "power":
            return torch.sqrt((gain_k * mag) ** 2 + fill_k ** 2)
        return gain_k * mag + fill_k

    def band_power(self, out: Bands) -> torch.Tensor:
        """The estimate's mean power per band (..., bands), full-scale units, exactly, from the band outputs."""
        power = out.gain ** 2 * out.power + out.fill ** 2
        if self.config.fill == "magnitude":
            power = power + 2 * out.gain * out.fill * out.mean_magnitude
        return power

    def forward(self, mag: torch.Tensor) -> BandOutput:
        """Offline: mag (B, T, F) -> BandOutput of (B, T, ...) tensors."""
        out = self.bands(mag)
        return BandOutput(self.expand(out.gain, out.fill, mag), out.confidence_logit, out.gain, out.fill)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-stream state tensors (without the batch dimension), in streaming-argument order."""
        shapes = {"prev": (self.config.bands, INPUTS * self.past_frames), "gru": (1, self.config.hidden)}
        if self.config.gru_stride > 1:
            shapes.update(phase=(1,), held=(self.config.bands, 3))
        if self.config.lookahead:
            shapes.update(lag=(self.config.lookahead, features.BINS))
        return shapes

    @property
    def past_frames(self) -> int:
        """Frames of band features the streaming graph keeps: the GRU's context and the skip path's of the
        frame it estimates, L frames back."""
        return max(self.config.context - 1, self.config.lookahead + 1)

    def count_macs(self) -> int:
        """Multiply-accumulates per frame and stream, on average (band matrices, layers; the GRU and head on
        every gru_stride-th frame)."""
        nb, c, h, w = self.config.bands, self.config.channels, self.config.hidden, self.config.block
        inputs = INPUTS * self.config.context
        macs = 2 * features.BINS * nb + 2 * nb * features.BINS      # pooling (2), expansion (gain, fill)
        macs += nb * 3 * inputs * c                                   # band convolution (every frame)
        macs += nb * 2 * INPUTS * 3                                   # skip
        update = nb * (c or inputs) * h + 6 * h * h + h * h + h * 3 * nb + 2 * 2 * h * w   # input, GRU, head, blocks
        update += features.BINS * h * self.config.bin_input                                # bin levels
        return macs + update // self.config.gru_stride


@torch.jit.script
def _gru_cell(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
              b_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step (N, H) in PyTorch's gate order (reset, update, new)."""
    i_r, i_z, i_n = fn.linear(x, w_ih, b_ih).chunk(3, 1)
    h_r, h_z, h_n = fn.linear(h, w_hh, b_hh).chunk(3, 1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    return (1.0 - z) * torch.tanh(i_n + r * h_n) + z * h


@torch.jit.script
def _strided_update(front: torch.Tensor, state: torch.Tensor, phase: torch.Tensor, held: torch.Tensor,
                    w_in: torch.Tensor, b_in: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                    b_ih: torch.Tensor, b_hh: torch.Tensor, w_hid: torch.Tensor, b_hid: torch.Tensor,
                    w_out: torch.Tensor, b_out: torch.Tensor, leak: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRU's input layer, one GRU step and the head where phase is 0, else the held head values
    (B, bands, 3) and the GRU state (B, 1, H) unchanged. Scripted, so that the branch stays a branch in the
    traced export (an ONNX `If`): the frames between updates cost no recurrence."""
    if bool(phase.max() < 0.5):             # the channels of a stream update together
        new = _gru_cell(fn.leaky_relu(fn.linear(front, w_in, b_in), leak), state[:, 0], w_ih, w_hh, b_ih, b_hh)
        o = fn.linear(fn.leaky_relu(fn.linear(new, w_hid, b_hid), leak), w_out, b_out).view(held.shape)
        return o, new.unsqueeze(1)
    return held, state


@torch.jit.script
def _residual(u: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
              leak: float) -> torch.Tensor:
    return u + fn.linear(fn.leaky_relu(fn.linear(u, w1, b1), leak), w2, b2)


@torch.jit.script
def _strided_update_blocks(front: torch.Tensor, state: torch.Tensor, phase: torch.Tensor, held: torch.Tensor,
                           w_in: torch.Tensor, b_in: torch.Tensor, w_i1: torch.Tensor, b_i1: torch.Tensor,
                           w_i2: torch.Tensor, b_i2: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                           b_ih: torch.Tensor, b_hh: torch.Tensor, w_hid: torch.Tensor, b_hid: torch.Tensor,
                           w_h1: torch.Tensor, b_h1: torch.Tensor, w_h2: torch.Tensor, b_h2: torch.Tensor,
                           w_out: torch.Tensor, b_out: torch.Tensor, leak: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`_strided_update` with the residual blocks (BandNetConfig.block) after the input and hidden layers."""
    if bool(phase.max() < 0.5):
        gin = _residual(fn.leaky_relu(fn.linear(front, w_in, b_in), leak), w_i1, b_i1, w_i2, b_i2, leak)
        new = _gru_cell(gin, state[:, 0], w_ih, w_hh, b_ih, b_hh)
        u = _residual(fn.leaky_relu(fn.linear(new, w_hid, b_hid), leak), w_h1, b_h1, w_h2, b_h2, leak)
        return fn.linear(u, w_out, b_out).view(held.shape), new.unsqueeze(1)
    return held, state


class StreamingBandNet(nn.Module):
    """One frame in, one frame out, all temporal state explicit (module doc).

    forward(mag (B, F), prev (B, bands, 3 P), gru (B, 1, H)[, phase (B, 1), held (B, bands, 3)][, lag (B, L, F)])
    -> (magnitude_out (B, F), confidence (B, F) in 0..1, prev', gru'[, phase', held'][, lag']) of frame k - L
    for call k; prev holds the band features of the P = `BandNet.past_frames` frames before this one, oldest
    first, lag the magnitudes of the L frames not yet output. With gru_stride s > 1, phase counts the frames
    since the last GRU update (0 at stream start: the first frame updates) and held is that update's head
    values; the GRU's input layer, the GRU and the head run where phase is 0 only (`_strided_update`).
    """

    def __init__(self, net: BandNet):
        super().__init__()
        self.net = net

    def forward(self, mag, prev, gru, *state):
        n, c, la = self.net, self.net.config.context, self.net.config.lookahead
        x, frame_db, _, _ = n.band_features(mag)
        z = torch.cat([prev, x], dim=-1)                   # (B, bands, 3 (P + 1)), oldest first
        gru_z = z[..., -c * INPUTS:]
        levels = n.bin_levels(mag, frame_db)                # the newest frame's, as the GRU's frame offline
        stride_state = state[:2] if n.config.gru_stride > 1 else ()
        if stride_state:
            phase, held = stride_state
            g = n.gru
            recurrence = (g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0, n.hid.weight, n.hid.bias)
            if n.in_block is None:
                o, h = _strided_update(n.front(gru_z, levels), gru, phase, held, n.gru_in.weight, n.gru_in.bias,
                                       *recurrence, n.out.weight, n.out.bias, LEAK)
            else:
                i1, i2, h1, h2 = n.in_block[0], n.in_block[2], n.head_block[0], n.head_block[2]
                o, h = _strided_update_blocks(n.front(gru_z, levels), gru, phase, held,
                                              n.gru_in.weight, n.gru_in.bias,
                                              i1.weight, i1.bias, i2.weight, i2.bias, *recurrence,
                                              h1.weight, h1.bias, h2.weight, h2.bias, n.out.weight, n.out.bias, LEAK)
            stride_state = (torch.remainder(phase + 1.0, float(n.config.gru_stride)), o)
        else:
            g, h = n.gru(n.encode(gru_z, levels).unsqueeze(1), gru.transpose(0, 1).contiguous())
            h = h.transpose(0, 1)
            o = n.head(g[:, 0])
        if la:                                              # the estimate of frame u = k - L, L frames back
            lag = state[-1]
            u = n.past_frames - la                          # frame u's position in z
            skip, target = z[..., (u - 1) * INPUTS: (u + 1) * INPUTS], lag[:, 0]
            frame_db = 20.0 * z[:, :1, u * INPUTS + 2] + LEVEL_REF_DB     # its level, from its features
            lag_state = (torch.cat([lag[:, 1:], mag.unsqueeze(1)], dim=1),)
        else:
            skip, target, lag_state = z[..., -2 * INPUTS:], mag, ()
        gain, fill, logit = n.decode(o, skip, frame_db)
        return (n.expand(gain, fill, target), torch.sigmoid(logit) @ n.expansion, z[..., INPUTS:], h,
                *stride_state, *lag_state)


def build(config: dict | BandNetConfig | None = None) -> BandNet:
    """A BandNet from a config (a dict as `config_dict` stores it, keys missing from older ones as
    LEGACY_CONFIG says, or a BandNetConfig)."""
    if isinstance(config, dict):
        config = BandNetConfig(**{**LEGACY_CONFIG, **config})
    return BandNet(config or BandNetConfig())


def config_dict(net: BandNet) -> dict:
    return asdict(net.config)
