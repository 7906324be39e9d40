"""Resumable CPU training of the magnitude U-Net on the MP3 pairs.

Batches: random ~1 s crops (CROP_FRAMES frames) of a random pair and channel; features are computed
with `realtime.stft.stft_offline` on the crop (the crop starts on a hop boundary and its first 3
frames, which would see the zero padding, are dropped), so they equal the engine's frames bit for bit.
Augmentation: a random gain (+-12 dB) on both magnitudes; with probability P_IDENTITY the clean signal
is also the input (the model must leave full-band audio alone).

Loss (`--loss`):
    l1       mean |S_hat - S| / mean S                        (linear magnitudes; the issue's baseline)
    l1+log   l1 + LOG_WEIGHT * mean |log(S_hat + e) - log(S + e)|, e = LOSS_EPS

Learning rate: Adam, cosine from LR to LR/20 over the time budget (`--minutes`), so a run resumed
after an interruption continues the same schedule. Checkpoints (atomic) every CHECKPOINT_S seconds
and at the end: <run>/last.pt; validation on fixed 2 s crops of the reference pairs (32 kbit/s mono)
goes to <run>/log.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from realtime.stft import stft_offline
from realtime.train.unet import UNet, count_parameters

FFT_SIZE, HOP = 1024, 256
CROP_FRAMES = 192
SKIP = FFT_SIZE // HOP - 1            # frames that still see the crop's zero padding
BATCH = 12
LR = 1e-3
P_IDENTITY = 0.06
GAIN_DB = 12.0
LOSS_EPS = 1e-3
LOG_WEIGHT = 1.0
CHECKPOINT_S = 180.0
VAL_CROPS, VAL_FRAMES = 48, 375


def crop_mags(pair: np.ndarray, ch: int, start_frame: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """pair (2, C, n) -> (clean, decoded) magnitudes (frames, 513) f32 of engine frames
    start_frame .. start_frame + frames - 1 (engine frame k covers samples [kH + H - N, kH + H))."""
    a = (start_frame - SKIP) * HOP - (FFT_SIZE - HOP)          # first sample fed to stft_offline
    b = (start_frame + frames) * HOP
    out = []
    for j in range(2):
        x = np.zeros(b - a, np.float64)
        lo, hi = max(a, 0), min(b, pair.shape[2])
        if hi > lo:
            x[lo - a: hi - a] = pair[j, ch, lo:hi]
        X = stft_offline(x, FFT_SIZE, HOP)[SKIP + SKIP: SKIP + SKIP + frames]
        out.append(np.abs(X).astype(np.float32))
    return out[0], out[1]


class PairSource:
    """Random crops from data/pairs (train or val rows of the manifest), memory-mapped."""

    def __init__(self, root: str | Path, split: str, codec: str | None = None, seed: int = 0):
        root = Path(root)
        man = json.loads((root / "manifest.json").read_text())
        self.rows = [r for r in man["pairs"] if r["split"] == split and (codec is None or r["codec"] == codec)]
        if not self.rows:
            raise SystemExit(f"train: no {split} pairs in {root}")
        self.root = root
        self.arrays: dict[int, np.ndarray] = {}
        n = np.array([r["samples"] * r["channels"] for r in self.rows], float)
        self.p = n / n.sum()
        self.rng = np.random.default_rng(seed)

    def array(self, i: int) -> np.ndarray:
        if i not in self.arrays:
            self.arrays[i] = np.load(self.root / self.rows[i]["file"], mmap_mode="r")
        return self.arrays[i]

    def sample(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(self.rng.choice(len(self.rows), p=self.p))
        arr = self.array(i)
        total = arr.shape[2] // HOP
        start = int(self.rng.integers(0, max(1, total - frames)))
        ch = int(self.rng.integers(0, arr.shape[1]))
        return crop_mags(arr, ch, start, frames)


class SyntheticSource:
    """Tiny stand-in for tests and smoke runs: harmonic tones + noise; 'decoded' = band-limited to
    8 kHz with random spectral holes (no apt data, no encoder)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def sample(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        n = (frames + 2 * SKIP + 1) * HOP + FFT_SIZE
        t = np.arange(n) / 48_000
        f0 = self.rng.uniform(100, 400)
        x = sum(np.sin(2 * np.pi * f0 * k * t + self.rng.uniform(0, 6)) / k for k in range(1, 40) if f0 * k < 23_000)
        x = 0.1 * x + 0.01 * self.rng.standard_normal(n)
        X = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1 / 48_000)
        Y = X * (f < 8000) * (self.rng.random(len(f)) > 0.2)
        y = np.fft.irfft(Y, n)
        pair = np.stack([x, y])[:, None, :]
        return crop_mags(pair, 0, 2 * SKIP + 1, frames)


def make_batch(src, frames: int, rng: np.random.Generator, augment: bool = True, batch: int = BATCH):
    clean, dec = [], []
    for _ in range(batch):
        c, d = src.sample(frames)
        if augment:
            g = 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
            c, d = c * g, d * g
            if rng.random() < P_IDENTITY:
                d = c
        clean.append(c)
        dec.append(d)
    return torch.from_numpy(np.stack(dec)), torch.from_numpy(np.stack(clean))


def loss_fn(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    l1 = (pred - target).abs().mean() / (target.mean() + 1e-8)
    if kind == "l1":
        return l1
    if kind == "l1+log":
        return l1 + LOG_WEIGHT * (torch.log(pred + LOSS_EPS) - torch.log(target + LOSS_EPS)).abs().mean()
    raise ValueError(f"unknown loss {kind!r}")


def quick_lsd(pred: torch.Tensor, target: torch.Tensor, floor_db: float = -100.0) -> float:
    """Mean log-spectral distance (dB) with a power floor `floor_db` re a full-scale sine."""
    ref = (FFT_SIZE / 4) ** 2
    p = 10 * torch.log10(torch.clamp(pred ** 2 / ref, min=10 ** (floor_db / 10)))
    t = 10 * torch.log10(torch.clamp(target ** 2 / ref, min=10 ** (floor_db / 10)))
    return float(torch.sqrt(((p - t) ** 2).mean(-1)).mean())


def validation_set(data_root: str | Path | None, synthetic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if synthetic:
        src = SyntheticSource(seed=123)
        n = 2
    else:
        src = PairSource(data_root, "val", codec="mp3_32k_mono_48k", seed=123)
        n = VAL_CROPS
    d, c = [], []
    for _ in range(n):
        cc, dd = src.sample(VAL_FRAMES if not synthetic else 64)
        c.append(cc)
        d.append(dd)
    return torch.from_numpy(np.stack(d)), torch.from_numpy(np.stack(c))


@torch.no_grad()
def validate(net: UNet, val: tuple[torch.Tensor, torch.Tensor], kind: str) -> dict:
    net.eval()
    d, c = val
    preds = torch.cat([net(d[i: i + 8]) for i in range(0, len(d), 8)])
    net.train()
    return {"val_loss": float(loss_fn(preds, c, kind)), "val_lsd": quick_lsd(preds, c),
            "val_lsd_decoded": quick_lsd(d, c)}


def train(run: str | Path, data_root: str | Path = "data/pairs", minutes: float = 50.0, loss: str = "l1+log",
          threads: int = 2, init: str | None = None, synthetic: bool = False, max_steps: int | None = None,
          model_args: dict | None = None, seed: int = 0, quiet: bool = False, batch: int = BATCH,
          snapshots: tuple[int, ...] = (100, 200, 400)) -> dict:
    """Train (or resume) into run/. Stops after `minutes` of training time or `max_steps` steps."""
    from tqdm import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    model_args = model_args or {}
    last = run / "last.pt"
    budget_s = minutes * 60.0
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        net = UNet(**ck["model_args"])
        net.load_state_dict(ck["model"])
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        opt.load_state_dict(ck["optim"])
        step, elapsed, loss = ck["step"], ck["elapsed_s"], ck["loss"]
        budget_s = max(ck.get("budget_s", budget_s), budget_s)   # a resume may extend the budget
        model_args = ck["model_args"]
        print(f"train: resuming {last} at step {step} ({elapsed / 60:.1f} of {budget_s / 60:.0f} min)")
    else:
        net = UNet(**model_args)
        if init:
            ck0 = torch.load(init, map_location="cpu", weights_only=False)
            model_args = ck0["model_args"]
            net = UNet(**model_args)
            net.load_state_dict(ck0["model"])
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        step, elapsed = 0, 0.0
        model_args = {"channels": list(net.channels), "hidden": net.hidden}
    src = SyntheticSource(seed) if synthetic else PairSource(data_root, "train", seed=seed + step)
    rng = np.random.default_rng(seed + step)
    val = validation_set(data_root, synthetic)
    log = open(run / "log.jsonl", "a")

    def save():
        tmp = run / "last.tmp.pt"
        torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "step": step, "elapsed_s": elapsed,
                    "budget_s": budget_s, "loss": loss, "model_args": model_args,
                    "parameters": count_parameters(net), "macs_per_frame": net.count_macs()}, tmp)
        tmp.replace(last)

    bar = tqdm(total=round(budget_s), initial=round(min(elapsed, budget_s)), unit="s", desc=f"train {run.name}",
               disable=quiet)
    last_ck = time.time()
    running = None
    net.train()
    while elapsed < budget_s and (max_steps is None or step < max_steps):
        t0 = time.time()
        lr = LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget_s))))
        for g in opt.param_groups:
            g["lr"] = lr
        d, c = make_batch(src, CROP_FRAMES if not synthetic else 32, rng, batch=batch)
        pred = net(d)
        l = loss_fn(pred, c, loss)
        opt.zero_grad()
        l.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        dt = time.time() - t0
        elapsed += dt
        lv = float(l.detach())
        running = lv if running is None else 0.98 * running + 0.02 * lv
        bar.update(dt)
        bar.set_postfix(step=step, loss=f"{running:.4f}", lr=f"{lr:.1e}")
        if step in snapshots:   # fixed-step copies for comparing runs (e.g. loss variants)
            rec = {"step": step, "elapsed_s": round(elapsed, 1), "train_loss": running, "snapshot": True,
                   **validate(net, val, loss)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            save()
            import shutil
            shutil.copyfile(last, run / f"step{step}.pt")
        if time.time() - last_ck > CHECKPOINT_S:
            rec = {"step": step, "elapsed_s": round(elapsed, 1), "train_loss": running, "lr": lr,
                   **validate(net, val, loss)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            save()
            last_ck = time.time()
    bar.close()
    rec = {"step": step, "elapsed_s": round(elapsed, 1), "train_loss": running, "final": True,
           **validate(net, val, loss)}
    log.write(json.dumps(rec) + "\n")
    log.close()
    save()
    return rec
