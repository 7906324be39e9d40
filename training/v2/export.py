"""Export a trained v2 BandNet as the engine's streaming ONNX graph (docs/CONTRACTS.md "Magnitude model").

Graph: input `magnitude` float32 [batch, 513] (linear magnitudes of the asymmetric framing), outputs
`magnitude_out` and `confidence` float32 [batch, 513] (of the frame `lookahead` frames back); state
`state_in.*` -> `state_out.*` as model.py's `state_shapes` (band features of earlier frames, the GRU's, and
with a GRU stride or a look-ahead those of the held head and the frames not yet output), zeros at stream start;
batch = audio channels. The band pooling and expansion are constant matrix products inside the graph.
Metadata: gapfill.sample_rate / fft_size / hop / lookahead_frames / window ("asymmetric") plus the model's
config, size and training facts, and where given the gate calibration chosen for it (`gapfill.gate.<key>`,
realtime/engine/model_files.py GATE_CALIBRATION). Opset 17. A pair (training/v2/pair.py: one network's
magnitude, another's confidence) exports as one such graph, its states `envelope.*` and `detector.*`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from realtime.engine.model_files import GATE_CALIBRATION, gate_metadata_key
from training.export import write_streaming_onnx
from training.unet import count_parameters
from training.v2 import features
from training.v2.model import BandNet, StreamingBandNet, build, config_dict
from training.v2.pair import StreamingPair, state_shapes as pair_state_shapes

OUTPUTS = ["magnitude_out", "confidence"]
"""The graph's outputs besides its states (docs/CONTRACTS.md "Magnitude model")."""

SHIPPED_GATE_CALIBRATION = {"codec_share_top_hz": 16000.0, "damage_share": 0.02, "codec_share": 0.3}
"""The gate calibration of the shipped v2 model (models/gapfill-v2.md, "Gate calibration": chosen with
benchmarks/gate_noharm.py on held-out clips), which `python -m training.v2 all` exports with."""


def load_checkpoint(path: str | Path, averaged: bool = True) -> tuple[BandNet, dict]:
    """A v2 training checkpoint: its network in eval mode (with the weight average of train.py where the
    checkpoint has one and `averaged`, else the last step's weights), and the whole checkpoint dict."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = build(ck["config"])
    net.load_state_dict(ck["average"] if averaged and "average" in ck else ck["model"])
    return net.eval(), ck


def export_onnx(net: BandNet, path: str | Path, extra_meta: dict | None = None) -> Path:
    """Write net's streaming graph to path (module doc) with the metadata plus extra_meta; returns path."""
    net = net.eval()
    meta = {**_graph_metadata(net.config.lookahead, count_parameters(net), net.count_macs(), config_dict(net)),
            **(extra_meta or {})}
    return write_streaming_onnx(StreamingBandNet(net), net.state_shapes(), OUTPUTS, path, meta)


def _graph_metadata(lookahead: int, parameters: int, macs: int, config: dict) -> dict:
    return {"gapfill.sample_rate": features.SAMPLE_RATE, "gapfill.fft_size": features.FFT_SIZE,
            "gapfill.hop": features.HOP, "gapfill.lookahead_frames": lookahead,
            "gapfill.window": features.WINDOW, "gapfill.parameters": parameters,
            "gapfill.macs_per_frame": macs, "gapfill.model_args": json.dumps(config)}


def gate_metadata(calibration: dict[str, float]) -> dict[str, str]:
    """Metadata of a gate calibration (keys of GATE_CALIBRATION; others raise ValueError)."""
    unknown = set(calibration) - set(GATE_CALIBRATION)
    if unknown:
        raise ValueError(f"gate calibration: unknown keys {sorted(unknown)} (known: {', '.join(GATE_CALIBRATION)})")
    return {gate_metadata_key(key): str(float(value)) for key, value in calibration.items()}


def export_checkpoint(checkpoint: str | Path, path: str | Path, gate: dict[str, float] | None = None) -> Path:
    """Export a training checkpoint (its weight average where it has one), with its steps, CPU hours and
    audio hours in the metadata, and the gate calibration `gate` where given."""
    net, ck = load_checkpoint(checkpoint)
    return export_onnx(net, path, {**gate_metadata(gate or {}), **_training_metadata(ck)})


def export_pair(envelope_checkpoint: str | Path, detector_checkpoint: str | Path, path: str | Path,
                gate: dict[str, float] | None = None) -> Path:
    """Export two training checkpoints as a pair (training/v2/pair.py): the magnitude of the first, the
    confidence of the second, each its weight average; the metadata's training facts are the envelope's (and
    the detector's steps and CPU hours), its size both networks'."""
    (envelope, ck), (detector, dk) = load_checkpoint(envelope_checkpoint), load_checkpoint(detector_checkpoint)
    meta = _graph_metadata(envelope.config.lookahead, count_parameters(envelope) + count_parameters(detector),
                           envelope.count_macs() + detector.count_macs(),
                           {"envelope": config_dict(envelope), "detector": config_dict(detector)})
    detector_facts = _training_metadata(dk)
    meta.update(gate_metadata(gate or {}), **_training_metadata(ck),
                **{"gapfill.detector_train_steps": detector_facts["gapfill.train_steps"],
                   "gapfill.detector_train_cpu_hours": detector_facts["gapfill.train_cpu_hours"]})
    stream = StreamingPair(envelope.eval(), detector.eval())
    return write_streaming_onnx(stream, pair_state_shapes(envelope, detector), OUTPUTS, path, meta)


def _training_metadata(ck: dict) -> dict:
    state = ck["state"]
    return {"gapfill.train_steps": state["step"], "gapfill.weights": "average" if "average" in ck else "last step",
            "gapfill.train_cpu_hours": round(state["cpu_s"] / 3600, 2),
            "gapfill.train_audio_hours": round(state["audio_s"] / 3600, 1)}
