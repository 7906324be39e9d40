"""Widen a trained BandNet to more bands, keeping what it learned: a campaign changes its band resolution
without starting over.

Each new band b' takes the old band p(b') that holds its centre bin. The GRU, its hidden layer and the
skip path (shared by all bands) are copied; the GRU's input layer gives each new band its parent's
weights divided by the number of the parent's children, so that children with their parent's features
feed the GRU what the parent did; the output layer gives each new band its parent's rows. On a flat
spectrum each new band so outputs exactly its parent's gain, fill and confidence; on real spectra the
widened network starts near the old one (on data v2's LAME 32k validation crops its estimate lay 3.5 dB
LSD from the old one's, 1 dB further from the clean), and training goes on from there. Only networks without the band convolution (channels = 0).

    python -m training.v2 widen --bands 64 [--checkpoint runs/v2/last.pt] [--out runs/v2/last.pt]

The checkpoint keeps its step, CPU seconds, audio seconds, budget and data; the Adam state starts anew
(its moments belong to the old shapes), and `state["widened"]` records from how many bands at which step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from realtime.atomic import atomic_write
from training.unet import count_parameters
from training.v2 import features
from training.v2.model import INPUTS, BandNet, build, config_dict


def parent_bands(old_bands: int, new_bands: int) -> np.ndarray:
    """(new_bands,) int: the old band holding each new band's centre bin."""
    old_edges, new_edges = features.band_edges(old_bands), features.band_edges(new_bands)
    centres = (new_edges[:-1] + new_edges[1:] - 1) // 2
    return np.searchsorted(old_edges, centres, side="right") - 1


@torch.no_grad()
def widen(net: BandNet, bands: int) -> BandNet:
    """A BandNet of `bands` bands (more than net's) initialised from net (module doc)."""
    old = net.config
    if old.channels:
        raise ValueError("widen: only networks without the band convolution (channels = 0)")
    if bands <= old.bands:
        raise ValueError(f"widen: {bands} bands is not more than the network's {old.bands}")
    wide = BandNet(replace(old, bands=bands))
    parents = torch.from_numpy(parent_bands(old.bands, bands))
    children = torch.bincount(parents, minlength=old.bands).clamp(min=1).float()
    for name in ("gru", "hid", "local"):
        getattr(wide, name).load_state_dict(getattr(net, name).state_dict())
    w_in = net.gru_in.weight.view(old.hidden, old.bands, 2 * INPUTS)
    wide.gru_in.weight.copy_((w_in[:, parents] / children[parents, None]).reshape(old.hidden, -1))
    wide.gru_in.bias.copy_(net.gru_in.bias)
    wide.out.weight.copy_(net.out.weight.view(old.bands, 3, old.hidden)[parents].reshape(-1, old.hidden))
    wide.out.bias.copy_(net.out.bias.view(old.bands, 3)[parents].reshape(-1))
    return wide


def widen_checkpoint(checkpoint: str | Path, bands: int, out: str | Path) -> dict:
    """Widen a training checkpoint (module doc); writes `out` (atomically) and returns its state."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net = build(ck["config"])
    net.load_state_dict(ck["model"])
    wide = widen(net, bands)
    state = dict(ck["state"])
    state["widened"] = state.get("widened", []) + [{"from_bands": net.config.bands, "to_bands": bands,
                                                    "step": state["step"], "cpu_s": state["cpu_s"]}]
    opt = torch.optim.Adam(wide.parameters())
    with atomic_write(Path(out)) as temp:
        torch.save({**ck, "model": wide.state_dict(), "optim": opt.state_dict(), "config": config_dict(wide),
                    "state": state, "parameters": count_parameters(wide), "macs_per_frame": wide.count_macs()},
                   temp)
    return state
