"""A conditional critic of band envelopes over time, for the adversarial and feature-matching terms.

Why: the band term scores each band-frame alone, so where the decoded input says little about how a band
above the cutoff rises and falls from frame to frame, its minimum is a smooth median course (at libmp3lame
32 kbit/s joint stereo the output's course correlates 0.45 with the clean one and has 0.75 of its spread:
training/v2/campaign/README.md). A critic that sees the envelope and the decoded input's envelope over
about half a second asks for a course that belongs with that input (the literature's answer to a band the
low band barely predicts: the card's "Where next").

Input per crop, per frame and band (32 bands, (B, T, bands) each): the candidate's band level (the clean
crop's, or the network's estimate's) and the decoded input's, both as ln mean power relative to the decoded
frame's mean power over bands, divided by LEVEL_SCALE (floored at FLOOR_DB re a full-scale sine): the
critic judges shape and course, never absolute level. Network: a 1-D convolution over frames with the two
envelopes as 2 * bands channels (kernel KERNEL, WIDTH channels), then STRIDED_LAYERS convolutions of stride
2 (receptive field 125 frames, 0.33 s at hop 128), then a kernel-3 convolution to one score per position;
leaky ReLUs (slope LEAK) between. Its hidden activations are the features that the feature-matching term
compares.

Terms (least squares, as HiFi-GAN's): critic  mean (D(clean) - 1)^2 + mean D(estimate)^2 (the estimate
detached); adversarial  mean (D(estimate) - 1)^2; feature matching  mean over hidden layers of the mean
|feature(estimate) - feature(clean)| (the clean features detached): the paired term, which asks for this
crop's clean course, not only a plausible one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as fn
from torch import nn

from evaluation.metrics import FLOOR_DB

WIDTH = 48
KERNEL = 5
STRIDED_LAYERS = 3
LEAK = 0.2
LEVEL_SCALE = 20 * math.log(10) / 10          # nepers of power per 20 dB: the network's own input scale
CRITIC_LR = 1e-4
CRITIC_BETAS = (0.8, 0.99)


def relative_levels(power: torch.Tensor, decoded_power: torch.Tensor) -> torch.Tensor:
    """Mean band powers (B, T, bands), full-scale units, as ln power relative to the decoded frame's mean
    power over bands, over LEVEL_SCALE (module doc); (B, T, bands)."""
    floor = 10 ** (FLOOR_DB / 10)
    reference = torch.log(decoded_power.mean(-1, keepdim=True) + floor)
    return (torch.log(power + floor) - reference) / LEVEL_SCALE


class CourseCritic(nn.Module):
    """The critic (module doc) of `bands` band envelopes."""

    def __init__(self, bands: int = 32, width: int = WIDTH):
        super().__init__()
        layers = [nn.Conv1d(2 * bands, width, KERNEL, padding=KERNEL // 2)]
        layers += [nn.Conv1d(width, width, KERNEL, stride=2, padding=KERNEL // 2) for _ in range(STRIDED_LAYERS)]
        self.hidden = nn.ModuleList(layers)
        self.score = nn.Conv1d(width, 1, 3, padding=1)

    def forward(self, power: torch.Tensor, decoded_power: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Scores (B, T') of a candidate's and the decoded input's mean band powers (B, T, bands), full-scale
        units, T' = ceil(T / 2^STRIDED_LAYERS); and the hidden activations [(B, WIDTH, T_i)]."""
        x = torch.cat([relative_levels(power, decoded_power), relative_levels(decoded_power, decoded_power)], -1)
        x = x.transpose(1, 2)
        features = []
        for layer in self.hidden:
            x = fn.leaky_relu(layer(x), LEAK)
            features.append(x)
        return self.score(x)[:, 0], features


def critic_loss(critic: CourseCritic, est_power: torch.Tensor, clean_power: torch.Tensor,
                decoded_power: torch.Tensor) -> torch.Tensor:
    """The critic's least-squares loss (module doc) on estimated, clean and decoded band powers (B, T, bands);
    the estimate is detached here."""
    real, _ = critic(clean_power, decoded_power)
    fake, _ = critic(est_power.detach(), decoded_power)
    return (real - 1.0).pow(2).mean() + fake.pow(2).mean()


def generator_terms(critic: CourseCritic, est_power: torch.Tensor, clean_power: torch.Tensor,
                    decoded_power: torch.Tensor) -> dict[str, torch.Tensor]:
    """The network's adversarial and feature-matching terms (module doc) from the critic, whose gradient
    reaches the estimate (B, T, bands) only through them: {"adversarial", "features"}."""
    fake, fake_features = critic(est_power, decoded_power)
    with torch.no_grad():
        _, real_features = critic(clean_power, decoded_power)
    matching = sum((f - r).abs().mean() for f, r in zip(fake_features, real_features)) / len(fake_features)
    return {"adversarial": (fake - 1.0).pow(2).mean(), "features": matching}
