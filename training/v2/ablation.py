"""Equal-CPU-budget comparison of today's U-Net and model v2 variants on one pair cache.

Each arm trains from scratch on the train split of the same pair cache for the same CPU seconds (process
time, one thread, data preparation included; validation excluded), with Adam at training.train.LR and the
same cosine schedule over that budget, then is scored on every validation pair of the cache (held-out
source files: training/split.json):
    today         training.unet.UNet with its confidence head, batch 16 x 192 frames (Hann 1024, hop 256),
                  training.train's batches (augmentation included) and loss (l1+log + BCE)
    v2 ...        training/v2/train.py with the BandNetConfig of ARMS
Scores (`evaluate_arm`): each clip's channels run offline through the model in the model's own framing;
evaluation.metrics' LSD full band, below and above the codec cutoff and holes, on dB spectra relative to
that framing's full scale, for the model's output and for its input (the decoded clip), grouped by
condition: the LAME 32 kbit/s reference, LAME 128 kbit/s (no harm) and the validation `chains` pairs
(other codecs and decode chains). Model output only: no codec gate, no phase.

`score_through_engine` then runs each trained arm, exported to ONNX, through the real engine
(`realtime.engine.restorer.restore`, shipped config, the arm's framing: gate, phase, synthesis) on the same
validation pairs and scores the restored audio with `evaluation.metrics` (Hann 1024 / 256 for every arm):
what a user would get. `shipped` scores models/gapfill-unet-mp3.onnx the same way, for reference (it
trained far longer on more data: not an equal budget).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from evaluation.metrics import codec_cutoff_bin, magnitude_db, power_db, spectrum_metrics
from realtime.engine.model_files import shipped_model_path
from realtime.engine.restorer import restore
from realtime.engine.stft import stft_offline
from realtime.engine.windows import full_scale_magnitude
from training import train as today
from training.pairs import NO_HARM, REFERENCE
from training.unet import FFT_SIZE as TODAY_FFT
from training.unet import HOP as TODAY_HOP
from training.unet import UNet
from training.v2 import features
from training.export import export_onnx as export_today
from training.v2.export import export_onnx as export_v2
from training.v2.model import BandNet, BandNetConfig
from training.v2.train import train as train_v2

ARMS: dict[str, BandNetConfig | None] = {
    "today": None,
    "v2": BandNetConfig(),
    "v2-h128": BandNetConfig(hidden=128, gru_stride=1),
    "v2-h256s2": BandNetConfig(hidden=256, gru_stride=2),
    "v2-magnitude": BandNetConfig(hidden=128, gru_stride=1, fill="magnitude"),
    "v2-bands64": BandNetConfig(hidden=128, gru_stride=1, bands=64),
    "v2-conv": BandNetConfig(hidden=128, gru_stride=1, channels=8),
}
TODAY_BATCH = 16


def train_today(data: str | Path, cpu_s: float, seed: int = 0) -> tuple[UNet, dict]:
    """Today's U-Net trained for cpu_s CPU seconds (module doc); the network and the facts of the run."""
    torch.manual_seed(seed)
    net = UNet(confidence=True).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=today.LR)
    source = today.PairSource(data, "train", seed=seed)
    rng = np.random.default_rng(seed)
    used, steps, start = 0.0, 0, time.process_time()
    while used < cpu_s:
        for group in opt.param_groups:
            group["lr"] = today.learning_rate(used, cpu_s)
        decoded, clean, labels = today.make_batch(source, today.CROP_FRAMES, rng, batch=TODAY_BATCH)
        today.training_step(net, opt, decoded, clean, labels)
        steps += 1
        used = time.process_time() - start
    audio_s = steps * TODAY_BATCH * today.CROP_FRAMES * TODAY_HOP / features.SAMPLE_RATE
    return net.eval(), {"steps": steps, "cpu_s": used, "audio_s": audio_s}


def _scores(clean: np.ndarray, decoded: np.ndarray, output: np.ndarray, full_scale: float) -> dict:
    """Metrics of output and of decoded magnitudes (frames, 513) against clean, in dB re full_scale."""
    to_db = lambda m: magnitude_db(m * (full_scale_magnitude(TODAY_FFT) / full_scale))  # noqa: E731
    c, d, o = to_db(clean), to_db(decoded), to_db(output)
    cutoff = codec_cutoff_bin(c, d)
    return {"model": spectrum_metrics(c, o, cutoff), "decoded": spectrum_metrics(c, d, cutoff), "cutoff": cutoff}


def _val_rows(data: Path) -> list[dict]:
    rows = [r for r in json.loads((data / "manifest.json").read_text())["pairs"] if r["split"] == "val"]
    for r in rows:
        r["condition"] = {REFERENCE.name: "lame32", NO_HARM.name: "lame128"}.get(r["codec"], "chains")
    return rows


def evaluate_arm(estimate: Callable[[np.ndarray], np.ndarray], framing: tuple[int, str], full_scale: float,
                 data: str | Path) -> list[dict]:
    """Per validation pair and channel: `estimate(decoded magnitudes (frames, 513)) -> (frames, 513)` scored
    against the clean magnitudes (module doc); framing = (hop, window name) of the model."""
    hop, window = framing
    results = []
    for row in _val_rows(Path(data)):
        pair = np.load(Path(data) / row["file"])
        for channel in range(pair.shape[1]):
            clean, decoded = (np.abs(stft_offline(pair[i, channel], TODAY_FFT, hop, window)) for i in (0, 1))
            results.append({"codec": row["codec"], "condition": row["condition"], "kind": row["kind"],
                            "channel": channel, **_scores(clean, decoded, estimate(decoded), full_scale)})
    return results


def export_arm(arm: str, out: str | Path) -> tuple[Path, dict]:
    """The ONNX graph of a trained arm (or the shipped model for `shipped`) and the engine config that runs it."""
    out = Path(out)
    if arm == "shipped":
        return shipped_model_path(), {}
    if ARMS[arm] is None:
        path = export_today(UNet.from_checkpoint(torch.load(out / "today.pt", weights_only=False)), out / "today.onnx")
        return path, {"model": {"path": str(path)}}
    net = BandNet(ARMS[arm])
    net.load_state_dict(torch.load(out / arm / "last.pt", weights_only=False)["model"])
    path = export_v2(net, out / f"{arm}.onnx")
    return path, {"model": {"path": str(path)}, "stft": {"hop": features.HOP, "window": features.WINDOW}}


def score_through_engine(arm: str, data: str | Path, out: str | Path) -> dict:
    """Restore every validation pair through the engine with the arm's model (module doc); writes
    out/<arm>.engine.json and returns its summary."""
    _, config = export_arm(arm, out)
    results = []
    for row in _val_rows(Path(data)):
        pair = np.load(Path(data) / row["file"])
        restored = restore(pair[1], features.SAMPLE_RATE, config)
        for channel in range(pair.shape[1]):
            c, d, o = (power_db(x[channel]) for x in (pair[0], pair[1], restored))
            cutoff = codec_cutoff_bin(c, d)
            results.append({"codec": row["codec"], "condition": row["condition"], "kind": row["kind"],
                            "channel": channel, "cutoff": cutoff, "model": spectrum_metrics(c, o, cutoff),
                            "decoded": spectrum_metrics(c, d, cutoff)})
    summary = summarize(results)
    Path(out, f"{arm}.engine.json").write_text(json.dumps({"arm": arm, "summary": summary, "clips": results},
                                                          indent=1))
    return summary


def summarize(results: list[dict]) -> dict:
    """Means per condition and kind: LSD full / below / above and holes of model and decoded, and the number
    of clips whose full-band LSD the model made worse."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        for key in (f"{r['condition']}/{r['kind']}", r["condition"]):
            groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in sorted(groups.items()):
        row = {"clips": len(rs), "worse": sum(r["model"]["lsd_full"] > r["decoded"]["lsd_full"] for r in rs)}
        for side in ("model", "decoded"):
            for metric in ("lsd_full", "lsd_below", "lsd_above", "holes"):
                row[f"{side}_{metric}"] = round(float(np.nanmean([r[side][metric] for r in rs])), 4)
        out[key] = row
    return out


def run_arm(arm: str, data: str | Path, cpu_s: float, out: str | Path) -> dict:
    """Train arm (one of ARMS) for cpu_s CPU seconds on data's train split, score it, write out/<arm>.json."""
    if arm not in ARMS:
        raise SystemExit(f"gapfill: unknown arm {arm!r} (one of {', '.join(ARMS)})")
    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = ARMS[arm]
    if config is None:
        net, facts = train_today(data, cpu_s)
        torch.save({"model_args": net.model_args, "model": net.state_dict()}, out / "today.pt")
        framing, full_scale = (TODAY_HOP, "hann"), full_scale_magnitude(TODAY_FFT)

        def estimate(mag: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return net(torch.from_numpy(mag[None].astype(np.float32)))[0].numpy()
    else:
        run = out / arm
        record = train_v2(run, data, cpu_s / 3600, config, validate_cpu_s=math.inf, quiet=True)
        ck = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        v2 = BandNet(config)
        v2.load_state_dict(ck["model"])
        v2.eval()
        facts = {**{k: ck["state"][k] for k in ("step", "cpu_s", "audio_s")}, "final_validation": record}
        framing, full_scale = (features.HOP, features.WINDOW), features.full_scale_magnitude()

        def estimate(mag: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return v2(torch.from_numpy(mag[None].astype(np.float32))).magnitude[0].numpy()
    results = evaluate_arm(estimate, framing, full_scale, data)
    report = {"arm": arm, "config": None if config is None else config.__dict__, "training": facts,
              "summary": summarize(results), "clips": results}
    (out / f"{arm}.json").write_text(json.dumps(report, indent=1))
    return {"arm": arm, "training": facts, "summary": report["summary"]}
