"""Causal frequency U-Net: STFT magnitude frames of decoded MP3 in, clean magnitude estimates out.

Shapes: offline `UNet.forward(mag (B, T, F=513)) -> (B, T, F)`, linear magnitudes (|rfft| of audio in
[-1, 1] at 48 kHz, periodic Hann of FFT_SIZE = 1024 samples, hop HOP = 256). Streaming
`StreamingUNet.forward(mag (B, F), *states) -> (mag_out (B, F), [confidence (B, F),] *new_states)` computes
exactly the same function one frame at a time.

With `confidence=True` the output conv has a second channel: a logit per bin that the decoded bin is
codec-made (more than train.LABEL_DB away from the clean signal through the same decode chain);
`forward_with_confidence` returns it, the streaming graph its sigmoid (Nyquist bin: 0). The codec gate
replaces such bins with the prediction and uses their share to find codec damage that has no cliff.

Inside the network:
    z = log(mag + EPS)                        log-compressed input (EPS ~ -128 dB re a full-scale sine)
    x = [(z - Z_MEAN) / Z_SCALE, bin position]  2 channels x 512 bins (bins 0..511; Nyquist passes through)
    encoder: 4 levels, each a strided conv along frequency (/2), kernel 2 frames x 4 bins, causal in time
    bottleneck: the flattened 32-bin x C4 level -> linear -> GRU over time -> linear (global frequency
                context and memory)
    decoder: 4 transposed convs along frequency (x2) with skip connections (concat), 1 frame
    out = exp(z + correction) - EPS         a residual in the log domain: inside spectral holes and above
                                             the cutoff, where z is at the floor, the correction is free
                                             to be large; it is an estimate of magnitudes, not a mask.
Every temporal kernel looks back only (kernel 2 frames = the current and the previous frame), so the
model has no look-ahead (lookahead_frames = 0); its temporal state is the previous input frame of each
2-frame conv and the GRU hidden vector.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as fn

FFT_SIZE, HOP = 1024, 256
"""The STFT framing (samples at 48 kHz) this network is trained on: training's one copy. The export writes it
into the ONNX metadata (gapfill.fft_size, gapfill.hop), against which the engine checks its config's `stft`."""
EPS = 1e-4
Z_MEAN, Z_SCALE = -5.0, 3.0
BINS = FFT_SIZE // 2     # bins through the U-Net (512); the Nyquist bin is passed through
CONFIDENCE_INIT_LOGIT = -4.0   # a new confidence head starts at p = 0.018 everywhere (replaces nothing)


class UNet(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (8, 16, 24, 32, 48), hidden: int = 192,
                 kernel_f: int = 4, in_kernel_f: int = 5, confidence: bool = False):
        super().__init__()
        assert len(channels) == 5, "input level + four U-Net levels"
        self.channels, self.hidden, self.confidence = tuple(channels), hidden, bool(confidence)
        c = channels
        self.kf, self.in_kf = kernel_f, in_kernel_f
        self.register_buffer("position", torch.linspace(-1.0, 1.0, BINS).view(1, 1, 1, BINS), persistent=False)
        # input conv: 2 -> c0, kernel (2 frames, in_kf bins), 512 bins
        self.inp = nn.Conv2d(2, c[0], (2, in_kernel_f), padding=(0, in_kernel_f // 2))
        # encoder: level l: c[l-1] -> c[l], kernel (2, kf), stride (1, 2)
        self.enc = nn.ModuleList(
            nn.Conv2d(c[i], c[i + 1], (2, kernel_f), stride=(1, 2), padding=(0, kernel_f // 2 - 1))
            for i in range(4))
        bott_bins = BINS // 16
        self.bott_features = c[4] * bott_bins
        self.bott_in = nn.Linear(self.bott_features, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.bott_out = nn.Linear(hidden, self.bott_features)
        # decoder: level l (from deepest): concat(up_in, skip) -> c[l-1], x2 along frequency
        self.dec = nn.ModuleList()
        for i in range(4, 0, -1):
            cin = c[i] * 2
            self.dec.append(nn.ConvTranspose2d(cin, c[i - 1], (1, kernel_f), stride=(1, 2),
                                               padding=(0, kernel_f // 2 - 1)))
        self.out = nn.Conv2d(c[0] * 2, 2 if confidence else 1, (1, in_kernel_f), padding=(0, in_kernel_f // 2))
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)   # start as the identity (out = input magnitude)
        if confidence:
            nn.init.constant_(self.out.bias[1:], CONFIDENCE_INIT_LOGIT)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "UNet":
        """The network a checkpoint or weights file holds (its `model_args` and `model` state), in training mode."""
        net = cls(**checkpoint["model_args"])
        net.load_state_dict(checkpoint["model"])
        return net

    @property
    def model_args(self) -> dict:
        """Constructor arguments that rebuild this network (stored in checkpoints)."""
        return {"channels": list(self.channels), "hidden": self.hidden, "confidence": self.confidence}

    def load_warm(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights of the same network with or without a confidence channel; a missing confidence
        channel keeps its initialisation (p = sigmoid(CONFIDENCE_INIT_LOGIT))."""
        own = self.state_dict()
        for key in ("out.weight", "out.bias"):
            if state[key].shape != own[key].shape:
                merged = own[key].clone()
                merged[: state[key].shape[0]] = state[key][: merged.shape[0]]
                state = {**state, key: merged}
        self.load_state_dict(state)

    # --------------------------------------------------------------------------------------------
    def features(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mag (B, T, 513) -> z (B, T, 513) log magnitude, x (B, 2, T, 512) network input."""
        z = torch.log(mag + EPS)
        zn = (z[..., :BINS] - Z_MEAN) / Z_SCALE
        b, t = zn.shape[0], zn.shape[1]
        x = torch.cat([zn.unsqueeze(1), self.position.expand(b, 1, t, BINS)], dim=1)
        return z, x

    def head(self, z: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        """z (B, T, 513), corr (B, T, 512) -> magnitude (B, T, 513)."""
        out_log = torch.cat([z[..., :BINS] + corr, z[..., BINS:]], dim=-1)
        return fn.relu(torch.exp(out_log) - EPS)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """Offline: mag (B, T, 513) linear magnitudes -> (B, T, 513); causal (zero past at t=0)."""
        return self.forward_with_confidence(mag)[0]

    def forward_with_confidence(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Offline: mag (B, T, 513) -> (magnitude (B, T, 513), confidence logit (B, T, 512) or None)."""
        z, x = self.features(mag)
        h = self.act(self.inp(fn.pad(x, (0, 0, 1, 0))))
        skips = [h]
        for conv in self.enc:
            h = self.act(conv(fn.pad(h, (0, 0, 1, 0))))
            skips.append(h)
        b, ch, t, f = h.shape
        g, _ = self.gru(self.act(self.bott_in(h.permute(0, 2, 1, 3).reshape(b, t, ch * f))))
        h = self.act(self.bott_out(g)).view(b, t, ch, f).permute(0, 2, 1, 3)
        for i, conv in enumerate(self.dec):
            h = self.act(conv(torch.cat([h, skips[4 - i]], dim=1)))
        out = self.out(torch.cat([h, skips[0]], dim=1))
        return self.head(z, out[:, 0]), (out[:, 1] if self.confidence else None)

    # --------------------------------------------------------------------------------------------
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-stream state tensors (without the batch dimension), in streaming-argument order."""
        c = self.channels
        shapes = {"inp": (2, 1, BINS)}
        bins = BINS
        for i in range(4):
            shapes[f"enc{i + 1}"] = (c[i], 1, bins)
            bins //= 2
        shapes["gru"] = (1, self.hidden)   # GRU hidden: (layers=1, hidden) per stream
        return shapes

    def count_macs(self) -> int:
        """Multiply-accumulates per frame and stream (convolutions, GRU, linear)."""
        c, macs = self.channels, 0
        macs += BINS * 2 * c[0] * 2 * self.in_kf
        bins = BINS
        for i in range(4):
            bins //= 2
            macs += bins * c[i] * c[i + 1] * 2 * self.kf
        macs += 2 * self.bott_features * self.hidden + 6 * self.hidden * self.hidden
        bins = BINS // 16
        for i in range(4, 0, -1):
            macs += bins * 2 * c[i] * c[i - 1] * self.kf
            bins *= 2
        macs += BINS * 2 * c[0] * self.in_kf * (2 if self.confidence else 1)
        return macs


class StreamingUNet(nn.Module):
    """One frame in, one frame out; every piece of temporal state an explicit input and output.

    forward(mag (B, 513), s_inp (B, 2, 1, 512), s_enc1..s_enc4 (B, C, 1, bins), s_gru (B, 1, H))
        -> (mag_out (B, 513), [confidence (B, 513) in 0..1, with a confidence head,] new states in order)
    Batch B = audio channels (each channel an independent stream).
    """

    def __init__(self, net: UNet):
        super().__init__()
        self.net = net

    def forward(self, mag, s_inp, s_enc1, s_enc2, s_enc3, s_enc4, s_gru):
        n = self.net
        z, x = n.features(mag.unsqueeze(1))              # (B,1,513), (B,2,1,512)
        new = [x]
        h = n.act(n.inp(torch.cat([s_inp, x], dim=2)))
        skips = [h]
        for conv, s in zip(n.enc, (s_enc1, s_enc2, s_enc3, s_enc4)):
            new.append(h)
            h = n.act(conv(torch.cat([s, h], dim=2)))
            skips.append(h)
        b, ch, _, f = h.shape
        gin = h.reshape(b, 1, ch * f)                    # (B, 1, features)
        g, hn = n.gru(n.act(n.bott_in(gin)), s_gru.transpose(0, 1).contiguous())
        h = n.act(n.bott_out(g)).view(b, 1, ch, f).permute(0, 2, 1, 3)
        for i, conv in enumerate(n.dec):
            h = n.act(conv(torch.cat([h, skips[4 - i]], dim=1)))
        head = n.out(torch.cat([h, skips[0]], dim=1))
        out = n.head(z, head[:, 0])[:, 0]
        if not n.confidence:
            return (out, *new, hn.transpose(0, 1))
        confidence = fn.pad(torch.sigmoid(head[:, 1, 0]), (0, 1))   # Nyquist bin: passed through, p = 0
        return (out, confidence, *new, hn.transpose(0, 1))


def count_parameters(net: nn.Module) -> int:
    """Number of trainable and frozen parameters of `net`."""
    return sum(p.numel() for p in net.parameters())
