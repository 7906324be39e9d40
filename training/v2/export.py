"""Export a trained v2 BandNet as the engine's streaming ONNX graph (docs/CONTRACTS.md "Magnitude model").

Graph: input `magnitude` float32 [batch, 513] (linear magnitudes of the asymmetric framing), outputs
`magnitude_out` and `confidence` float32 [batch, 513]; state `state_in.prev` [batch, bands, 3] (the previous
frame's band features) and `state_in.gru` [batch, 1, hidden] -> `state_out.*`, zeros at stream start;
batch = audio channels. The band pooling and expansion are constant matrix products inside the graph.
Metadata: gapfill.sample_rate / fft_size / hop / lookahead_frames / window ("asymmetric") plus the model's
config, size and training facts. Opset 17.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.export import OPSET
from training.unet import count_parameters
from training.v2 import features
from training.v2.model import BandNet, StreamingBandNet, build, config_dict

LOOKAHEAD_FRAMES = 0


def load_checkpoint(path: str | Path) -> tuple[BandNet, dict]:
    """A v2 training checkpoint: its network in eval mode, and the whole checkpoint dict."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = build(ck["config"])
    net.load_state_dict(ck["model"])
    return net.eval(), ck


def export_onnx(net: BandNet, path: str | Path, extra_meta: dict | None = None) -> Path:
    """Write net's streaming graph to path (module doc) with the metadata plus extra_meta; returns path."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    shapes = net.state_shapes()
    batch = 2
    args = (torch.rand(batch, features.BINS),) + tuple(torch.zeros(batch, *shape) for shape in shapes.values())
    in_names = ["magnitude"] + [f"state_in.{name}" for name in shapes]
    out_names = ["magnitude_out", "confidence"] + [f"state_out.{name}" for name in shapes]
    temp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(StreamingBandNet(net).eval(), args, str(temp), input_names=in_names,
                          output_names=out_names, dynamic_axes={n: {0: "batch"} for n in in_names + out_names},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(temp))
    meta = {"gapfill.sample_rate": features.SAMPLE_RATE, "gapfill.fft_size": features.FFT_SIZE,
            "gapfill.hop": features.HOP, "gapfill.lookahead_frames": LOOKAHEAD_FRAMES,
            "gapfill.window": features.WINDOW, "gapfill.parameters": count_parameters(net),
            "gapfill.macs_per_frame": net.count_macs(), "gapfill.model_args": json.dumps(config_dict(net)),
            **(extra_meta or {})}
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    temp.unlink()
    return path


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """Export a training checkpoint, with its steps, CPU hours and audio hours in the metadata."""
    net, ck = load_checkpoint(checkpoint)
    state = ck["state"]
    return export_onnx(net, path, {"gapfill.train_steps": state["step"],
                                   "gapfill.train_cpu_hours": round(state["cpu_s"] / 3600, 2),
                                   "gapfill.train_audio_hours": round(state["audio_s"] / 3600, 1)})
