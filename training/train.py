"""Resumable CPU training of the magnitude U-Net on the MP3 pairs.

Batches: random ~1 s crops (CROP_FRAMES frames) of a random pair and channel; features are computed
with `realtime.engine.stft.stft_offline` on the crop (the crop starts on a hop boundary and its first 3
frames, which would see the zero padding, are dropped), so they equal the engine's frames bit for bit.
Augmentation, in the time domain before the STFT (`augment_crop`), as decode chains vary at run time:
a gain drawn from `gain_db` (a stage's setting; GAIN_DB_RANGE by default and for the validation crops)
on both sides; on the decoded side, with probability P_NOISE a white or pink noise floor of
NOISE_DBFS_RANGE (a sound card), and, for pairs whose chain stored float samples, 16-bit quantisation
with probability P_QUANTIZE (half of it with TPDF dither). With probability P_IDENTITY the
clean signal is the input (after the same augmentation): the model must leave full-band audio alone.
`mixes` chooses which pair mixes (training/pairs.py) the crops come from.

Loss (`--loss`):
    l1       mean |S_hat - S| / mean S                        (linear magnitudes; the issue's baseline)
    l1+log   l1 + LOG_WEIGHT * mean |log(S_hat + e) - log(S + e)|, e = LOSS_EPS
A network with a confidence head (`--confidence`) adds CONFIDENCE_WEIGHT * the binary cross-entropy of
its per-bin logit against the label "codec-made": the decoded bin is more than LABEL_DB away from the
clean bin through the same augmentation (gain, noise floor, quantisation; levels floored at
LABEL_FLOOR_DB re a full-scale sine). Identity crops are labelled 0 everywhere by construction.

Learning rate: Adam, cosine from LR to LR/20 over the time budget (`--minutes`), so a run resumed
after an interruption continues the same schedule. Checkpoints (atomic) every CHECKPOINT_S seconds
and at the end: <run>/last.pt; validation on fixed 2 s crops (`validation_sets`) every VALIDATE_S
seconds, at the snapshots and at the end goes to <run>/log.jsonl.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from evaluation.chains import noise_floor, quantize
from evaluation.metrics import FLOOR_DB
from realtime.atomic import atomic_write
from realtime.engine.config import MODEL_RATE_HZ
from realtime.engine.stft import stft_offline
from realtime.engine.windows import full_scale_magnitude
from training.pairs import REFERENCE
from training.unet import FFT_SIZE, HOP, UNet, count_parameters

CROP_FRAMES = 192
SKIP = FFT_SIZE // HOP - 1            # frames that still see the crop's zero padding
BATCH = 12
LR = 1e-3
LR_FLOOR = LR / 20
P_IDENTITY = 0.06
GAIN_DB_RANGE = (-20.0, 6.0)      # dB; also the validation crops' range, whatever a stage trains on
P_NOISE, NOISE_DBFS_RANGE = 0.3, (-95.0, -75.0)
P_QUANTIZE = 0.4
LOSS_EPS = 1e-3
LOG_WEIGHT = 1.0
CHECKPOINT_S = 180.0
VALIDATE_S = 900.0                # at every checkpoint, validation took ~20 % of the wall time on 2 cores; now ~2 %
VAL_CROPS, VAL_FRAMES = 48, 375
LABEL_DB, LABEL_FLOOR_DB = 6.0, -100.0
CONFIDENCE_WEIGHT = 0.5


def crop_audio(pair: np.ndarray, ch: int, start_frame: int, frames: int) -> np.ndarray:
    """pair (2, C, n) -> (2, m) float64 samples of channel ch that engine frames start_frame ..
    start_frame + frames - 1 see, with the SKIP frames before them (zeros outside the pair)."""
    a = (start_frame - SKIP) * HOP - (FFT_SIZE - HOP)          # first sample fed to stft_offline
    b = (start_frame + frames) * HOP
    x = np.zeros((2, b - a), np.float64)
    lo, hi = max(a, 0), min(b, pair.shape[2])
    if hi > lo:
        x[:, lo - a: hi - a] = pair[:, ch, lo:hi]
    return x


def crop_mags(audio: np.ndarray, frames: int) -> list[np.ndarray]:
    """(rows, m) samples from `crop_audio` -> per row the magnitudes (frames, 513) f32 of its engine frames."""
    out = []
    for row in audio:
        X = stft_offline(row, FFT_SIZE, HOP)[SKIP + SKIP: SKIP + SKIP + frames]
        out.append(np.abs(X).astype(np.float32))
    return out


def augment_crop(audio: np.ndarray, rng: np.random.Generator, stored_float: bool,
                 gain_db: tuple[float, float] = GAIN_DB_RANGE) -> np.ndarray:
    """(2, m) [clean, decoded] -> (3, m) [clean, decoded, clean through the chain]: a random gain on all,
    and on the decoded side a noise floor and quantisation (module doc), which the third row gets too
    (the same noise; its own dither) so that it tells what the decode chain did from what the codec did."""
    gain = 10 ** (rng.uniform(*gain_db) / 20)
    out = np.concatenate([audio, audio[:1]]) * gain
    if rng.random() < P_IDENTITY:
        out[1] = out[0]
        stored_float = True
    if rng.random() < P_NOISE:
        color = "pink" if rng.random() < 0.5 else "white"
        noise = noise_floor(1, out.shape[1], rng.uniform(*NOISE_DBFS_RANGE), color, rng)[0]
        out[1:] += noise
    if stored_float and rng.random() < P_QUANTIZE:
        kind = "s16_tpdf" if rng.random() < 0.5 else "s16"
        out[1:] = quantize(out[1:], kind, rng)
    return out


def codec_made(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Labels (..., 513) f32: 1 where decoded and reference magnitudes differ by more than LABEL_DB (levels
    floored at LABEL_FLOOR_DB re a full-scale sine)."""
    floor = full_scale_magnitude(FFT_SIZE) * 10 ** (LABEL_FLOOR_DB / 20)
    ratio = np.log10(np.maximum(decoded, floor) / np.maximum(reference, floor))
    return (np.abs(20 * ratio) > LABEL_DB).astype(np.float32)


class PairSource:
    """Random crops from data/pairs (train or val rows of the manifest, of some mixes), memory-mapped."""

    def __init__(self, root: str | Path, split: str, codec: str | None = None, seed: int = 0,
                 mixes: tuple[str, ...] | None = None):
        root = Path(root)
        man = json.loads((root / "manifest.json").read_text())
        self.rows = [r for r in man["pairs"] if r["split"] == split and (codec is None or r["codec"] == codec)
                     and (mixes is None or r.get("mix", "lame") in mixes)]
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

    def sample_audio(self, frames: int) -> tuple[np.ndarray, bool]:
        """A random crop (2, m) from `crop_audio` and whether its pair's chain stored float samples."""
        i = int(self.rng.choice(len(self.rows), p=self.p))
        arr = self.array(i)
        total = arr.shape[2] // HOP
        start = int(self.rng.integers(0, max(1, total - frames)))
        ch = int(self.rng.integers(0, arr.shape[1]))
        return crop_audio(arr, ch, start, frames), self.rows[i].get("chain", "float").endswith("float")


class SyntheticSource:
    """Tiny stand-in for tests and smoke runs: harmonic tones + noise; 'decoded' = band-limited to
    8 kHz with random spectral holes (no apt data, no encoder)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def sample_audio(self, frames: int) -> tuple[np.ndarray, bool]:
        n = (frames + 2 * SKIP + 1) * HOP + FFT_SIZE
        t = np.arange(n) / MODEL_RATE_HZ
        f0 = self.rng.uniform(100, 400)
        x = sum(np.sin(2 * np.pi * f0 * k * t + self.rng.uniform(0, 6)) / k for k in range(1, 40) if f0 * k < 23_000)
        x = 0.1 * x + 0.01 * self.rng.standard_normal(n)
        X = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1 / MODEL_RATE_HZ)
        Y = X * (f < 8000) * (self.rng.random(len(f)) > 0.2)
        y = np.fft.irfft(Y, n)
        pair = np.stack([x, y])[:, None, :]
        return crop_audio(pair, 0, 2 * SKIP + 1, frames), True


def make_batch(src, frames: int, rng: np.random.Generator, augment: bool = True, batch: int = BATCH,
               identity: bool = False, gain_db: tuple[float, float] = GAIN_DB_RANGE
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoded, clean, codec-made labels), each (batch, frames, 513) f32; `identity`: clean crops as input;
    `gain_db`: the augmentation's gain range (dB)."""
    clean, dec, labels = [], [], []
    for _ in range(batch):
        audio, stored_float = src.sample_audio(frames)
        if identity:
            audio = audio[[0, 0]]
        if augment:
            audio = augment_crop(audio, rng, stored_float, gain_db)
        c, d, *through = crop_mags(audio, frames)
        clean.append(c)
        dec.append(d)
        labels.append(codec_made(d, through[0] if through else c))
    return tuple(torch.from_numpy(np.stack(a)) for a in (dec, clean, labels))


def loss_fn(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    l1 = (pred - target).abs().mean() / (target.mean() + 1e-8)
    if kind == "l1":
        return l1
    if kind == "l1+log":
        return l1 + LOG_WEIGHT * (torch.log(pred + LOSS_EPS) - torch.log(target + LOSS_EPS)).abs().mean()
    raise ValueError(f"unknown loss {kind!r}")


def confidence_loss(logit: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits (B, T, 512) against labels (B, T, 513) (Nyquist bin not predicted)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, labels[..., :logit.shape[-1]])


def quick_lsd(pred: torch.Tensor, target: torch.Tensor, floor_db: float = FLOOR_DB) -> float:
    """Mean log-spectral distance (dB) over every frame of magnitudes (..., frames, 513), with a power floor
    `floor_db` re a full-scale sine (evaluation/metrics.py's LSD counts active frames only)."""
    ref = full_scale_magnitude(FFT_SIZE) ** 2
    p = 10 * torch.log10(torch.clamp(pred ** 2 / ref, min=10 ** (floor_db / 10)))
    t = 10 * torch.log10(torch.clamp(target ** 2 / ref, min=10 ** (floor_db / 10)))
    return float(torch.sqrt(((p - t) ** 2).mean(-1)).mean())


def validation_sets(data_root: str | Path | None, synthetic: bool) -> dict[str, tuple[torch.Tensor, ...]]:
    """Fixed validation crops (decoded, clean, labels): `reference` (LAME 32 kbit/s mono, the training chain),
    `chains` (the validation split's `chains` pairs, augmented as in training with a fixed seed) and
    `clean` (the reference set's clean side as input, augmented: what must pass unchanged)."""
    rng = np.random.default_rng(123)
    if synthetic:
        sources = {"reference": (SyntheticSource(seed=123), False, False),
                   "chains": (SyntheticSource(seed=124), True, False), "clean": (SyntheticSource(seed=125), True, True)}
        n, frames = 2, 64
    else:
        sources = {"reference": (PairSource(data_root, "val", codec=REFERENCE.name, seed=123), False, False)}
        if any(r.get("mix") == "chains" for r in json.loads((Path(data_root) / "manifest.json").read_text())["pairs"]
               if r["split"] == "val"):
            sources["chains"] = (PairSource(data_root, "val", seed=124, mixes=("chains",)), True, False)
        sources["clean"] = (PairSource(data_root, "val", codec=REFERENCE.name, seed=125), True, True)
        n, frames = VAL_CROPS, VAL_FRAMES
    return {name: make_batch(src, frames, rng, augment=augment, batch=n, identity=identity)
            for name, (src, augment, identity) in sources.items()}


@torch.no_grad()
def validate(net: UNet, sets: dict[str, tuple[torch.Tensor, ...]], kind: str) -> dict:
    """Loss and LSD (dB) of the model and of its input on each validation set (`val_` + set name); with a
    confidence head also its cross-entropy, mean p, and the share of bins with p > 0.5 that are labelled
    codec-made (precision) and of codec-made bins with p > 0.5 (recall)."""
    net.eval()
    rec = {}
    for name, (d, c, labels) in sets.items():
        outs = [net.forward_with_confidence(d[i: i + 8]) for i in range(0, len(d), 8)]
        preds = torch.cat([o[0] for o in outs])
        prefix = "val" if name == "reference" else f"val_{name}"
        rec.update({f"{prefix}_loss": float(loss_fn(preds, c, kind)), f"{prefix}_lsd": quick_lsd(preds, c),
                    f"{prefix}_lsd_decoded": quick_lsd(d, c)})
        if net.confidence:
            logit = torch.cat([o[1] for o in outs])
            y, hit = labels[..., :logit.shape[-1]], logit > 0
            rec.update({f"{prefix}_bce": float(confidence_loss(logit, labels)),
                        f"{prefix}_p_mean": float(torch.sigmoid(logit).mean()),
                        f"{prefix}_labels_mean": float(y.mean()),
                        f"{prefix}_precision": float((y * hit).sum() / hit.sum().clamp(min=1)),
                        f"{prefix}_recall": float((y * hit).sum() / y.sum().clamp(min=1))})
    net.train()
    return rec


def training_step(net: UNet, opt: torch.optim.Optimizer, decoded: torch.Tensor, clean: torch.Tensor,
                  labels: torch.Tensor, loss: str = "l1+log") -> torch.Tensor:
    """One optimiser step on a batch of magnitudes (B, T, F): the magnitude loss `loss`, plus the confidence
    loss when the network has the head, gradients clipped to norm 1; returns the loss."""
    pred, logit = net.forward_with_confidence(decoded)
    value = loss_fn(pred, clean, loss)
    if logit is not None:
        value = value + CONFIDENCE_WEIGHT * confidence_loss(logit, labels)
    opt.zero_grad()
    value.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return value


def learning_rate(cpu_s: float, budget_s: float, schedule: dict | None = None) -> float:
    """The learning rate at `cpu_s` CPU seconds of a run budgeted `budget_s`: a cosine from the schedule's
    peak `lr` at its start `cpu_s` (by default LR at 0) down to LR_FLOOR at the budget."""
    start, peak = (schedule["cpu_s"], schedule["lr"]) if schedule else (0.0, LR)
    progress = min(1.0, max(0.0, (cpu_s - start) / max(budget_s - start, 1e-9)))
    return LR_FLOOR + (peak - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


def train(run: str | Path, data_root: str | Path = "data/pairs", minutes: float = 50.0, loss: str = "l1+log",
          threads: int = 2, init: str | None = None, synthetic: bool = False, max_steps: int | None = None,
          model_args: dict | None = None, seed: int = 0, quiet: bool = False, batch: int = BATCH,
          snapshots: tuple[int, ...] = (100, 200, 400), mixes: tuple[str, ...] | None = None,
          confidence: bool = False, gain_db: tuple[float, float] = GAIN_DB_RANGE) -> dict:
    """Train (or resume) into run/. Stops after `minutes` of training time or `max_steps` steps.

    mixes: the pair mixes to train on (training/pairs.py; None: all); confidence: give a new network
    (or one started from `init` without it) a confidence head (module doc); gain_db: the training crops'
    gain range (dB; a resumed run keeps its own)."""
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
        net = UNet.from_checkpoint(ck)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        opt.load_state_dict(ck["optim"])
        step, elapsed, loss = ck["step"], ck["elapsed_s"], ck["loss"]
        init, earlier_stages = ck.get("init", init), ck.get("stages", [None])[:-1]
        budget_s = max(ck.get("budget_s", budget_s), budget_s)   # a resume may extend the budget
        model_args = ck["model_args"]
        gain_db = tuple(ck.get("gain_db", gain_db))
        print(f"train: resuming {last} at step {step} ({elapsed / 60:.1f} of {budget_s / 60:.0f} min)")
    else:
        ck0 = torch.load(init, map_location="cpu", weights_only=False) if init else None
        args = ck0["model_args"] if ck0 else model_args
        net = UNet(**{**args, "confidence": confidence or args.get("confidence", False)})
        if ck0:
            net.load_warm(ck0["model"])
        earlier_stages = ck0.get("stages", []) if ck0 else []
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        step, elapsed = 0, 0.0
        model_args = net.model_args
    net = net.to(memory_format=torch.channels_last)   # oneDNN NHWC: a 1.6x faster step on CPU
    src = SyntheticSource(seed) if synthetic else PairSource(data_root, "train", seed=seed + step, mixes=mixes)
    rng = np.random.default_rng(seed + step)
    val = validation_sets(data_root, synthetic)
    log = open(run / "log.jsonl", "a")

    def save():
        stage = {"steps": step, "minutes": round(elapsed / 60, 1), "init": init,
                 "mixes": ",".join(mixes) if mixes else "all", "confidence": net.confidence,
                 "gain_db": list(gain_db)}
        with atomic_write(last) as temp:
            torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "step": step, "elapsed_s": elapsed,
                        "budget_s": budget_s, "loss": loss, "model_args": model_args, "mixes": mixes,
                        "gain_db": list(gain_db), "stages": earlier_stages + [stage], "init": init,
                        "parameters": count_parameters(net), "macs_per_frame": net.count_macs()}, temp)

    def log_validation(**extra) -> dict:
        rec = {"step": step, "elapsed_s": round(elapsed, 1), "train_loss": running, **extra, **validate(net, val, loss)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        return rec

    bar = tqdm(total=round(budget_s), initial=round(min(elapsed, budget_s)), unit="s", desc=f"train {run.name}",
               disable=quiet)
    last_ck = last_val = time.time()
    running = None
    net.train()
    while elapsed < budget_s and (max_steps is None or step < max_steps):
        t0 = time.time()
        lr = learning_rate(elapsed, budget_s)
        for g in opt.param_groups:
            g["lr"] = lr
        d, c, labels = make_batch(src, CROP_FRAMES if not synthetic else 32, rng, batch=batch, gain_db=gain_db)
        l = training_step(net, opt, d, c, labels, loss)
        step += 1
        dt = time.time() - t0
        elapsed += dt
        lv = float(l.detach())
        running = lv if running is None else 0.98 * running + 0.02 * lv
        bar.update(dt)
        bar.set_postfix(step=step, loss=f"{running:.4f}", lr=f"{lr:.1e}")
        if step in snapshots:   # fixed-step copies for comparing runs (e.g. loss variants)
            log_validation(snapshot=True)
            save()
            shutil.copyfile(last, run / f"step{step}.pt")
        if time.time() - last_ck > CHECKPOINT_S:
            if time.time() - last_val > VALIDATE_S:
                log_validation(lr=lr)
                last_val = time.time()
            save()
            last_ck = time.time()
    bar.close()
    rec = log_validation(final=True)
    log.close()
    save()
    return rec
