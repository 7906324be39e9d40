"""Export a trained UNet as the engine's streaming ONNX graph (docs/CONTRACTS.md).

Graph: input `magnitude` float32 [batch, 513], output `magnitude_out` float32 [batch, 513] and, for a
network with a confidence head, `confidence` float32 [batch, 513] (0..1, that the decoded bin is codec-made);
temporal state `state_in.<name>` -> `state_out.<name>`, float32 [batch, ...fixed dims], zeros at
stream start; batch = audio channels. Metadata: gapfill.sample_rate / fft_size / hop / lookahead_frames
plus a few descriptive keys. Opset 17.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.model_files import ort_session
from training.unet import FFT_SIZE, HOP, StreamingUNet, UNet, count_parameters

OPSET = 17
LOOKAHEAD_FRAMES = 0
FRAME_BINS = FFT_SIZE // 2 + 1


def load_checkpoint(path: str | Path) -> tuple[UNet, dict]:
    """A training checkpoint (<run>/last.pt): its network in eval mode, and the whole checkpoint dict."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return UNet.from_checkpoint(ck).eval(), ck


def write_streaming_onnx(stream: torch.nn.Module, state_shapes: dict[str, tuple[int, ...]], outputs: list[str],
                         path: str | Path, meta: dict) -> Path:
    """Trace a streaming module `stream(magnitude (batch, 513), *states) -> (*outputs, *states')` to `path`
    (atomically, via a temporary file) with the engine's input and state names, a dynamic batch axis, opset
    OPSET and the metadata `meta`, checked by onnx; returns `path`."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = 2
    args = (torch.rand(batch, FRAME_BINS),) + tuple(torch.zeros(batch, *shape) for shape in state_shapes.values())
    in_names = ["magnitude"] + [f"state_in.{n}" for n in state_shapes]
    out_names = outputs + [f"state_out.{n}" for n in state_shapes]
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(stream.eval(), args, str(tmp), input_names=in_names, output_names=out_names,
                          dynamic_axes={n: {0: "batch"} for n in in_names + out_names},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(tmp))
    del model.metadata_props[:]
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, str(v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    tmp.unlink()
    return path


def export_onnx(net: UNet, path: str | Path, extra_meta: dict | None = None) -> Path:
    """Write `net`'s streaming graph to `path` (module doc), with the metadata plus `extra_meta`; returns `path`."""
    net = net.eval()
    outputs = ["magnitude_out"] + (["confidence"] if net.confidence else [])
    meta = {"gapfill.sample_rate": MODEL_RATE_HZ, "gapfill.fft_size": FFT_SIZE, "gapfill.hop": HOP,
            "gapfill.lookahead_frames": LOOKAHEAD_FRAMES, "gapfill.parameters": count_parameters(net),
            "gapfill.macs_per_frame": net.count_macs(),
            "gapfill.model_args": json.dumps(net.model_args), **(extra_meta or {})}
    return write_streaming_onnx(StreamingUNet(net), net.state_shapes(), outputs, path, meta)


def stream_onnx(path: str | Path, mag: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the ONNX graph frame by frame over mag (B, T, 513) float32 -> (magnitudes (B, T, 513),
    confidence (B, T, 513) or None without a confidence output)."""
    s = ort_session(path, threads)
    ins = [i for i in s.get_inputs() if i.name.startswith("state_in.")]
    states = {i.name: np.zeros((mag.shape[0], *i.shape[1:]), np.float32) for i in ins}
    heads = ["magnitude_out"] + [o.name for o in s.get_outputs() if o.name == "confidence"]
    out = {name: np.zeros_like(mag, dtype=np.float32) for name in heads}
    outs = heads + [n.replace("state_in.", "state_out.") for n in states]
    for t in range(mag.shape[1]):
        res = s.run(outs, {"magnitude": np.ascontiguousarray(mag[:, t], np.float32), **states})
        for name, v in zip(heads, res):
            out[name][:, t] = v
        for k, v in zip(states, res[len(heads):]):
            states[k] = v
    return out["magnitude_out"], out.get("confidence")


def time_per_hop(path: str | Path, channels: int = 1, threads: int = 1, hops: int = 3000) -> dict:
    """Median / 99th percentile / mean wall time of one inference (IOBinding to preallocated buffers,
    as realtime.engine.model.OnnxModel does), and the mean CPU time of the calling thread (with one intra-op
    thread onnxruntime computes on it), in ms."""
    s = ort_session(path, threads)
    ins = {i.name: np.zeros((channels, *(i.shape[1:] if i.name != "magnitude" else [FRAME_BINS])), np.float32)
           for i in s.get_inputs()}
    ins["magnitude"][:] = np.random.default_rng(0).random((channels, FRAME_BINS), dtype=np.float32)
    outs = {o.name: np.zeros_like(ins["state_in." + o.name[len("state_out."):]] if o.name.startswith("state_out.")
                                  else ins["magnitude"]) for o in s.get_outputs()}
    b = s.io_binding()
    for n, a in ins.items():
        b.bind_input(n, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)
    for n, a in outs.items():
        b.bind_output(n, "cpu", 0, np.float32, list(a.shape), a.ctypes.data)
    for _ in range(200):
        s.run_with_iobinding(b)
    t = np.zeros(hops)
    c0 = time.thread_time()
    for i in range(hops):
        t0 = time.perf_counter()
        s.run_with_iobinding(b)
        t[i] = time.perf_counter() - t0
    cpu_ms = (time.thread_time() - c0) / hops * 1e3   # CPU time of this thread: excludes preemption
    t *= 1e3
    return {"median_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "cpu_mean_ms": cpu_ms, "channels": channels, "threads": threads, "hops": hops}


def timing_report(path: str | Path, hops: int) -> dict:
    """`time_per_hop` of a mono and a stereo stream (1 thread) over `hops` hops, and the onnxruntime version
    (runs/timing.json, read by the model card)."""
    import onnxruntime

    return {"mono": time_per_hop(path, 1, 1, hops), "stereo": time_per_hop(path, 2, 1, hops), "hops": hops,
            "ort_version": onnxruntime.__version__}


def save_weights(net: UNet, path: str | Path) -> Path:
    """Weights only (state_dict + constructor args), the PyTorch twin of the shipped ONNX graph."""
    path = Path(path)
    torch.save({"model_args": net.model_args,
                "model": {k: v.detach().clone() for k, v in net.state_dict().items()}}, path)
    return path


def load_weights(path: str | Path) -> UNet:
    """The network of a weights file written by `save_weights`, in eval mode."""
    return UNet.from_checkpoint(torch.load(path, map_location="cpu", weights_only=True)).eval()
