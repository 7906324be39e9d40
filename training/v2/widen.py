"""Widen a trained BandNet to more bands, hidden units, context or depth, keeping what it learned: a campaign
changes its band resolution or capacity without starting over.

More bands (`widen`): each new band b' takes the old band p(b') that holds its centre bin. The GRU, its hidden
layer and the skip path (shared by all bands) are copied; the GRU's input layer gives each new band its
parent's weights divided by the number of the parent's children, so that children with their parent's features
feed the GRU what the parent did; the output layer gives each new band its parent's rows. On a flat spectrum
each new band so outputs exactly its parent's gain, fill and confidence; on real spectra the widened network
starts near the old one (on data v2's LAME 32k validation crops its estimate lay 3.5 dB LSD from the old
one's, 1 dB further from the clean), and training goes on from there. Only networks without the band
convolution (channels = 0).

More hidden units (`widen_hidden`): the old units keep their weights and see nothing of the new ones (the
GRU's recurrent weights from new units to old ones, and the layers' weights from new units onwards, are zero),
the new units start from PyTorch's default initialisation; the widened network computes exactly the old one's
function; the first step teaches the output layer to read the new units, the next ones the units themselves.

More context (`widen_context`): the GRU's input layer gets columns for the older frames, zero, so that it
computes what it did; more depth (`add_blocks`): residual blocks (model.py `block`) whose last layer is zero,
so that they add nothing until trained. Both keep the old function exactly. Look-ahead (`add_lookahead`, L
frames): the GRU's input layer gets columns for the L newest frames, zero, and its old columns move to the
frames before them, so that the network starts as the old one with its GRU L frames late (near the old
function, not equal: the first update also sees silence); training then teaches it to read the new frames.
Bin levels (`add_bin_input`, model.py `bin_input`): the GRU's input layer gets a zero column per bin, so that
the network computes what it did until training teaches it to read its frame's fine structure.
A new GRU stride (model.py `gru_stride`) changes the function: the GRU then runs on every s-th frame, and
training adapts it.

    python -m training.v2 widen [--bands 64] [--hidden 256] [--context 4] [--block 256] [--lookahead 1]
                                [--bin-input] [--gru-stride 2] [--checkpoint runs/v2/last.pt]
                                [--out runs/v2/last.pt]

The checkpoint keeps its step, CPU seconds, audio seconds, budget and data; the weight average (train.py) is
widened as the weights are (the same new units); Adam keeps the moments of every parameter whose shape did not
change, the others start anew; `state["widened"]` records each change with its step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from realtime.atomic import atomic_write
from training.unet import count_parameters
from training.v2 import features
from training.v2.model import INPUTS, BandNet, BandNetConfig, build, config_dict


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
    for name in ("gru", "hid", "local", "in_block", "head_block"):
        if getattr(net, name) is not None:
            getattr(wide, name).load_state_dict(getattr(net, name).state_dict())
    w_in = net.gru_in.weight.view(old.hidden, old.bands, old.context * INPUTS)
    wide.gru_in.weight.copy_((w_in[:, parents] / children[parents, None]).reshape(old.hidden, -1))
    wide.gru_in.bias.copy_(net.gru_in.bias)
    wide.out.weight.copy_(net.out.weight.view(old.bands, 3, old.hidden)[parents].reshape(-1, old.hidden))
    wide.out.bias.copy_(net.out.bias.view(old.bands, 3)[parents].reshape(-1))
    return wide


@torch.no_grad()
def widen_hidden(net: BandNet, hidden: int) -> BandNet:
    """A BandNet of `hidden` hidden units (more than net's) computing net's function (module doc)."""
    old = net.config
    if hidden <= old.hidden:
        raise ValueError(f"widen: {hidden} hidden units is not more than the network's {old.hidden}")
    if old.block:
        raise ValueError("widen: more hidden units only for networks without residual blocks")
    wide = BandNet(replace(old, hidden=hidden))
    h = old.hidden
    wide.local.load_state_dict(net.local.state_dict())
    if net.conv is not None:
        wide.conv.load_state_dict(net.conv.state_dict())
    for layer in ("gru_in", "hid"):                       # old output rows; new rows keep their initialisation
        w, b = getattr(wide, layer).weight, getattr(wide, layer).bias
        old_w = getattr(net, layer).weight
        w[:h, : old_w.shape[1]] = old_w
        w[:h, old_w.shape[1]:] = 0.0
        b[:h] = getattr(net, layer).bias
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        new, src = getattr(wide.gru, name), getattr(net.gru, name)
        for gate in range(3):                              # PyTorch's GRU stacks reset, update, new gates
            rows, old_rows = slice(gate * hidden, gate * hidden + h), slice(gate * h, (gate + 1) * h)
            if new.dim() == 1:
                new[rows] = src[old_rows]
            else:
                new[rows, : src.shape[1]] = src[old_rows]
                new[rows, src.shape[1]:] = 0.0
    wide.out.weight.zero_()
    wide.out.weight[:, :h] = net.out.weight
    wide.out.bias.copy_(net.out.bias)
    return wide


@torch.no_grad()
def widen_context(net: BandNet, context: int) -> BandNet:
    """A BandNet whose GRU input layer sees `context` frames (more than net's), computing net's function."""
    old = net.config
    if context <= old.context:
        raise ValueError(f"widen: a context of {context} frames is not more than the network's {old.context}")
    return _more_input_frames(net, replace(old, context=context), context - old.context)  # older frames: 0


def _more_input_frames(net: BandNet, config: BandNetConfig, first: int) -> BandNet:
    """A BandNet of `config` (more context frames than net's) with net's weights, its GRU input layer's old
    columns on the frames from `first` on (0: the oldest) and zero on the others."""
    if net.config.channels:
        raise ValueError("widen: only networks without the band convolution (channels = 0)")
    wide = BandNet(config)
    wide.load_state_dict({k: v for k, v in net.state_dict().items() if k != "gru_in.weight"}, strict=False)
    w = wide.gru_in.weight.view(config.hidden, config.bands, config.context, INPUTS)
    w.zero_()
    w[:, :, first: first + net.config.context] = net.gru_in.weight.view(config.hidden, config.bands, -1, INPUTS)
    return wide


@torch.no_grad()
def add_blocks(net: BandNet, width: int) -> BandNet:
    """net with residual blocks of `width` units (module doc; net has none), computing net's function."""
    if net.config.block:
        raise ValueError(f"widen: the network has blocks already ({net.config.block} units)")
    deep = BandNet(replace(net.config, block=width))
    missing, unexpected = deep.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all(k.split(".")[0] in ("in_block", "head_block") for k in missing)
    return deep


@torch.no_grad()
def add_lookahead(net: BandNet, frames: int) -> BandNet:
    """net with a look-ahead of `frames` frames (module doc; net has none)."""
    old = net.config
    if old.lookahead:
        raise ValueError(f"widen: the network looks ahead already ({old.lookahead} frames)")
    return _more_input_frames(net, replace(old, context=old.context + frames, lookahead=frames), 0)


@torch.no_grad()
def add_bin_input(net: BandNet) -> BandNet:
    """net whose GRU input layer also sees its frame's bin levels (module doc; net does not), computing net's
    function."""
    if net.config.bin_input:
        raise ValueError("widen: the network sees bin levels already")
    wide = BandNet(replace(net.config, bin_input=True))
    wide.load_state_dict({k: v for k, v in net.state_dict().items() if k != "gru_in.weight"}, strict=False)
    bands_in = net.gru_in.weight.shape[1]
    wide.gru_in.weight[:, :bands_in] = net.gru_in.weight
    wide.gru_in.weight[:, bands_in:] = 0.0
    return wide


WIDEN_SEED = 0
"""Seeds the new units' initialisation, so that the weights and their average get the same new units."""


def _changed(net: BandNet, bands: int | None, hidden: int | None, context: int | None,
             block: int | None, lookahead: int | None, bin_input: bool = False) -> BandNet:
    torch.manual_seed(WIDEN_SEED)
    wide = net
    if bands is not None:
        wide = widen(wide, bands)
    if hidden is not None:
        wide = widen_hidden(wide, hidden)
    if context is not None:
        wide = widen_context(wide, context)
    if block is not None:
        wide = add_blocks(wide, block)
    if lookahead is not None:
        wide = add_lookahead(wide, lookahead)
    if bin_input:
        wide = add_bin_input(wide)
    return wide


def _kept_adam_state(optim: dict, old: BandNet, wide: BandNet) -> dict:
    """Adam's state for the widened network: the moments of each parameter whose name and shape are unchanged;
    the others start anew (Adam's bias correction then keeps their first steps at the learning rate)."""
    old_index = {name: (i, p.shape) for i, (name, p) in enumerate(old.named_parameters())}
    fresh = torch.optim.Adam(wide.parameters()).state_dict()
    state = {}
    for j, (name, p) in enumerate(wide.named_parameters()):
        i, shape = old_index.get(name, (None, None))
        if shape == p.shape and i in optim["state"]:
            state[j] = optim["state"][i]
    group = {**optim["param_groups"][0], "params": fresh["param_groups"][0]["params"]}
    return {"state": state, "param_groups": [group]}


def widen_checkpoint(checkpoint: str | Path, out: str | Path, bands: int | None = None, hidden: int | None = None,
                     gru_stride: int | None = None, context: int | None = None, block: int | None = None,
                     lookahead: int | None = None, bin_input: bool = False) -> dict:
    """Widen a training checkpoint and/or change its GRU stride (module doc); writes `out` (atomically) and
    returns its state. The weight average (train.py) is widened as the weights are, with the same new units;
    Adam keeps the moments of the parameters whose shape is unchanged."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net = build(ck["config"])
    net.load_state_dict(ck["model"])
    old = net.config
    wide = _changed(net, bands, hidden, context, block, lookahead, bin_input)
    if gru_stride is not None:
        wide.config = replace(wide.config, gru_stride=gru_stride)
    if wide.config == old:
        raise ValueError("widen: nothing to change")
    state = dict(ck["state"])
    keys = ("bands", "hidden", "context", "block", "lookahead", "gru_stride", "bin_input")
    change = {k: [getattr(old, k), getattr(wide.config, k)] for k in keys if getattr(old, k) != getattr(wide.config, k)}
    state["widened"] = state.get("widened", []) + [{**change, "step": state["step"], "cpu_s": state["cpu_s"]}]
    saved = {**ck, "model": wide.state_dict(), "config": config_dict(wide), "state": state,
             "parameters": count_parameters(wide), "macs_per_frame": wide.count_macs()}
    if wide is not net:
        saved["optim"] = _kept_adam_state(ck["optim"], net, wide)
        if "average" in ck:
            averaged = build(ck["config"])
            averaged.load_state_dict(ck["average"])
            widened = _changed(averaged, bands, hidden, context, block, lookahead, bin_input)
            saved["average"] = {k: v.detach() for k, v in widened.named_parameters()}
    with atomic_write(Path(out)) as temp:
        torch.save(saved, temp)
    return state
