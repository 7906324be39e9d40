"""Training throughput of today's U-Net and of model v2, side by side in one run, on one thread.

Throughput = audio seconds of training per CPU second of one training step (forward, loss, backward,
gradient clipping, Adam), measured with the CPU time of the calling thread (`time.thread_time`) after
WARMUP_STEPS steps, with `torch.set_num_threads(1)`. Batches are synthetic magnitudes of the right shapes
(band-limited gamma noise): a step's cost does not depend on the values. With a pair cache (`data`), the
CPU time of preparing a batch from it (crops, augmentation, STFT, labels: each model's own `make_batch`) is
measured too, and the throughput of step and data together.

    today   training.unet.UNet with its confidence head, channels_last, batch 16 x 192 frames (hop 256),
            loss l1+log + CONFIDENCE_WEIGHT * BCE, the step of training/train.py
    v2      training.v2.model.BandNet, batch V2_BATCH x V2_FRAMES frames (hop 128), training/v2/loss.py

    python -m training.v2 throughput [--steps 6] [--data data/v2boot/pairs] [--json runs/v2/throughput.json]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from training import train as today
from training.unet import HOP as TODAY_HOP
from training.unet import UNet, count_parameters
from training.v2 import features
from training.v2.loss import SPARSE, loss_terms
from training.v2.model import BandNet, BandNetConfig
from training.v2.train import BATCH as V2_BATCH
from training.v2.train import CROP_FRAMES as V2_FRAMES
from training.v2.train import PairCache, make_batch, optimizer_step

TODAY_BATCH, TODAY_FRAMES = 16, today.CROP_FRAMES
WARMUP_STEPS = 2


def _magnitudes(batch: int, frames: int, bins: int, rng: np.random.Generator) -> torch.Tensor:
    mag = rng.gamma(0.5, 1.0, (batch, frames, bins)).astype(np.float32)
    mag[..., bins // 3:] *= 1e-4
    return torch.from_numpy(mag)


def _timed(step, steps: int) -> float:
    """CPU seconds of this thread per call of step() (after WARMUP_STEPS calls)."""
    for _ in range(WARMUP_STEPS):
        step()
    start = time.thread_time()
    for _ in range(steps):
        step()
    return (time.thread_time() - start) / steps


def _with_data(row: dict, data_cpu_s: float | None) -> dict:
    if data_cpu_s is not None:
        row["data_cpu_s"] = data_cpu_s
        row["audio_s_per_cpu_s_with_data"] = row["audio_s_per_step"] / (row["step_cpu_s"] + data_cpu_s)
    return row


def today_step_seconds(steps: int, rng: np.random.Generator, data: str | Path | None = None) -> dict:
    net = UNet(confidence=True).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=today.LR)
    decoded = _magnitudes(TODAY_BATCH, TODAY_FRAMES, 513, rng)
    clean = decoded * 1.1 + 0.01
    labels = (torch.rand(decoded.shape) < 0.3).float()

    seconds = _timed(lambda: today.training_step(net, opt, decoded, clean, labels), steps)
    audio_s = TODAY_BATCH * TODAY_FRAMES * TODAY_HOP / features.SAMPLE_RATE
    data_s = None
    if data is not None:
        source = today.PairSource(data, "train")
        data_s = _timed(lambda: today.make_batch(source, TODAY_FRAMES, rng, batch=TODAY_BATCH), steps)
    return _with_data({"model": "today (training.unet)", "batch": TODAY_BATCH, "frames": TODAY_FRAMES,
                       "hop": TODAY_HOP, "parameters": count_parameters(net), "macs_per_frame": net.count_macs(),
                       "step_cpu_s": seconds, "audio_s_per_step": audio_s, "audio_s_per_cpu_s": audio_s / seconds},
                      data_s)


def v2_step_seconds(steps: int, rng: np.random.Generator, config: BandNetConfig = BandNetConfig(),
                    data: str | Path | None = None, batch: int = V2_BATCH, frames: int = V2_FRAMES) -> dict:
    net = BandNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    decoded = _magnitudes(batch, frames, features.BINS, rng)
    clean = decoded * 1.1 + 0.01
    labels = torch.rand(batch, len(range(frames)[SPARSE]), config.bands)   # the loss's sparse frames

    def step() -> None:
        optimizer_step(net, opt, loss_terms(net, net.bands(decoded), decoded, clean, labels)["total"])

    seconds = _timed(step, steps)
    audio_s = batch * frames * features.HOP / features.SAMPLE_RATE
    data_s = None
    if data is not None:
        source = PairCache(data, "train", 0)
        data_s = _timed(lambda: make_batch(source, batch, frames, rng, config.bands), steps)
    name = ", ".join(f"{k}={v}" for k, v in config.__dict__.items())
    return _with_data({"model": f"v2 ({name})", "batch": batch, "frames": frames, "hop": features.HOP,
                       "parameters": count_parameters(net), "macs_per_frame": net.count_macs(),
                       "step_cpu_s": seconds, "audio_s_per_step": audio_s, "audio_s_per_cpu_s": audio_s / seconds},
                      data_s)


def measure(steps: int = 6, variants: tuple[BandNetConfig, ...] = (), data: str | Path | None = None) -> dict:
    """Today's network, v2 and v2 `variants` on one thread in this process; ratios against today's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        rows = [today_step_seconds(steps, rng, data), v2_step_seconds(steps, rng, data=data)]
        rows += [v2_step_seconds(steps, rng, config, data) for config in variants]
    finally:
        torch.set_num_threads(threads)
    for row in rows:
        row["vs_today"] = row["audio_s_per_cpu_s"] / rows[0]["audio_s_per_cpu_s"]
        if data is not None:
            row["vs_today_with_data"] = row["audio_s_per_cpu_s_with_data"] / rows[0]["audio_s_per_cpu_s_with_data"]
    return {"threads": 1, "steps": steps, "torch": torch.__version__, "data": None if data is None else str(data),
            "rows": rows}


def format_table(result: dict) -> str:
    with_data = result["data"] is not None
    lines = ["| model | batch x frames (hop) | parameters | MACs/frame | CPU s/step | audio s/step "
             "| audio s per CPU s | vs today |" + (" data CPU s/step | with data | vs today |" if with_data else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if with_data else "")]
    for r in result["rows"]:
        line = (f"| {r['model']} | {r['batch']} x {r['frames']} ({r['hop']}) | {r['parameters']:,} "
                f"| {r['macs_per_frame']:,} | {r['step_cpu_s']:.3f} | {r['audio_s_per_step']:.1f} "
                f"| {r['audio_s_per_cpu_s']:.1f} | {r['vs_today']:.1f}x |")
        if with_data:
            line += (f" {r['data_cpu_s']:.3f} | {r['audio_s_per_cpu_s_with_data']:.1f} "
                     f"| {r['vs_today_with_data']:.1f}x |")
        lines.append(line)
    return "\n".join(lines)


def run(steps: int, json_path: str | Path | None, variants: tuple[BandNetConfig, ...] = (),
        data: str | Path | None = None) -> dict:
    """Measure, print the table, write the JSON (module doc)."""
    result = measure(steps, variants, data)
    print(format_table(result))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1))
    return result
