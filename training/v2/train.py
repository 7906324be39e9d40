"""Resumable CPU training of model v2 on a pair cache, budgeted in CPU seconds.

Data: one or more pair caches in training/pairs.py's layout (`manifest.json` rows with `file`, `split`,
`samples`, `channels`, `chain`; each file (2, channels, samples) float32 [clean, decoded] at 48 kHz,
aligned), trained on together: the rounds of `python -m training.v2 pairs`, each of which encodes other
training segments (their validation rows are the same in every round: validation reads the first cache
only). A batch is BATCH crops of
CROP_FRAMES frames (a random pair weighted by length, channel and hop), augmented in the time domain by
`training.train.augment_crop` (gain, noise floor, quantisation, identity crops: the same augmentation as
today's model; and band-limited and test-signal identity crops, training/v2/bandlimit.py and
testsignals.py) and framed by `features.frame_magnitudes`, frame for frame what the engine computes.

Step: `BandNet.bands` on the decoded magnitudes, training/v2/loss.py, Adam with the gradient norm clipped
at 1, learning rate cosine from LR to LR/20 over the CPU budget (`cpu_hours`; a resumed run continues the
schedule, and a larger budget given on resuming extends it; `restart_lr` on resuming starts a new cosine
from that rate at the run's CPU seconds so far down to LR/20 at the budget: `training.train.learning_rate`).
An exponential moving average of the weights (decay AVERAGE_DECAY per step, a time constant of 1000 steps)
is kept beside them: at this learning rate the weights wander from step to step (the band levels above a
cutoff by several dB between checkpoints a few minutes apart), the average does not; it is what validation
scores besides the weights and what export ships (export.py). A checkpoint without one (before it existed)
starts it from its weights.

Checkpoint `<run>/last.pt` (atomic) every CHECKPOINT_S seconds of wall time, at the end and on SIGTERM or
SIGINT (the step under way finishes first): weights, their average (`average`),
optimizer, step, audio seconds seen, CPU seconds (process time of training, data included), wall seconds,
the budget, the model config and the data it trained on; under 5 MB. Validation on fixed crops of the
validation split (`validation_sets`) every VALIDATE_CPU_S CPU seconds and at the end, to <run>/log.jsonl,
which also gets a line per session start; with it, for the weight average, whether its confidence tells
codec damage under a cliff from the cliff (training/v2/cliffs.py, VAL_CLIFF_CROPS crops:
`average_cliffs_auc_<statistic>`).

Critic (`adversarial_weight` or `feature_weight` > 0): training/v2/critic.py's critic of the band envelopes
over time steps beside the network, once per step on the same crops (Adam at CRITIC_LR, its gradient norm
clipped at GRAD_CLIP), and the network's loss adds its adversarial and feature-matching terms so weighted;
its weights and optimizer are in the checkpoint (`critic`, `critic_optim`), its weights in `state["critic"]`.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch

from realtime.atomic import atomic_write
from training.pairs import REFERENCE
from training.train import GAIN_DB_RANGE, LR, augment_crop, learning_rate
from training.unet import count_parameters
from training.v2 import features
from training.v2.bandlimit import P_BAND_LIMITED, band_limit, codec_cliff_hz
from training.v2.critic import CRITIC_BETAS, CRITIC_LR, CourseCritic, critic_loss, generator_terms
from training.v2.testsignals import P_TEST_SIGNAL, test_signal
from training.v2.loss import (BAND_TERMS, LABELS, SPARSE, SPARSE_FRAME_STRIDE, active_frames, band_labels,
                             loss_terms, restored_rate)
from training.v2.model import BandNet, BandNetConfig, build, config_dict

BATCH = 32
CROP_FRAMES = 384                  # 1.02 s at hop 128
CHECKPOINT_S = 300.0
VALIDATE_CPU_S = 900.0
VAL_CROPS = 48
VAL_CLIFF_CROPS = 100
GRAD_CLIP = 1.0
AVERAGE_DECAY = 0.999
LOG_EVERY_STEPS = 50
RUNNING_DECAY = 0.98              # per step: the printed and logged training terms' moving average

DataRoots = str | Path | list[str] | list[Path]
"""A pair cache's folder, or several (a list; a checkpoint of one cache stores a string)."""


def data_roots(roots: DataRoots) -> list[Path]:
    """The pair cache folders of `roots`, in order."""
    return [Path(r) for r in roots] if isinstance(roots, list) else [Path(roots)]


class PairCache:
    """Random crops of the pairs of one split of one or more pair caches, memory-mapped (module doc); only
    those of one codec, of some mixes or of one kind of audio where given. A pair is drawn with a probability
    proportional to its samples times channels, times `source_weights[source]` where its manifest row's
    `source` is named there (a name no pair of the split has is refused: a misspelt weight would go unseen)."""

    def __init__(self, roots: DataRoots, split: str, seed: int, codec: str | None = None,
                 mixes: tuple[str, ...] | None = None, kind: str | None = None,
                 source_weights: dict[str, float] | None = None):
        self.roots = data_roots(roots)
        self.rows, self.files = [], []
        for root in self.roots:
            for r in json.loads((root / "manifest.json").read_text())["pairs"]:
                if (r["split"] == split and (codec is None or r["codec"] == codec)
                        and (mixes is None or r.get("mix") in mixes) and (kind is None or r["kind"] == kind)):
                    self.rows.append(r)
                    self.files.append(root / r["file"])
        if not self.rows:
            names = ", ".join(map(str, self.roots))
            which = "".join(f" of {v}" for v in (codec, kind) if v)
            raise SystemExit(f"gapfill: no {split} pairs{which} in {names}")
        source_weights = source_weights or {}
        unknown = sorted(set(source_weights) - {r.get("source") for r in self.rows})
        if unknown:
            raise SystemExit(f"gapfill: no {split} pairs of source {', '.join(unknown)} to weight")
        weights = np.array([r["samples"] * r["channels"] * source_weights.get(r.get("source"), 1.0)
                            for r in self.rows], float)
        if (weights < 0).any() or weights.sum() <= 0:
            raise SystemExit("gapfill: source weights must be >= 0 and leave some pairs to draw")
        self.p = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.arrays: dict[int, np.ndarray] = {}

    def _array(self, i: int) -> np.ndarray:
        if i not in self.arrays:
            self.arrays[i] = np.load(self.files[i], mmap_mode="r")
        return self.arrays[i]

    def crop(self, frames: int) -> tuple[np.ndarray, dict]:
        """(2, (frames - 1) * HOP + FFT_SIZE) float32 [clean, decoded] of one channel: the samples whose
        complete frames are `frames` engine frames (zeros outside the pair); and the pair's manifest row."""
        i = int(self.rng.choice(len(self.rows), p=self.p))
        pair = self._array(i)
        hop = features.HOP
        start = int(self.rng.integers(0, max(1, pair.shape[2] // hop - frames))) * hop - (features.FFT_SIZE - hop)
        length = (frames - 1) * hop + features.FFT_SIZE
        out = np.zeros((2, length), np.float32)
        lo, hi = max(start, 0), min(start + length, pair.shape[2])
        channel = int(self.rng.integers(0, pair.shape[1]))
        out[:, lo - start: hi - start] = pair[:, channel, lo:hi]
        return out, self.rows[i]


def stores_float(pair: dict) -> bool:
    """Whether a pair's decode chain (its manifest row) stored float samples."""
    return pair.get("chain", "float").endswith("float")


def make_batch(source: PairCache, batch: int, frames: int, rng: np.random.Generator, bands: int,
               augment: bool = True, identity: bool = False,
               gain_db: tuple[float, float] = GAIN_DB_RANGE, labels: str = LABELS[0]
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(decoded, clean) magnitudes (batch, frames, F) and band labels (batch, sparse frames, bands) of the
    loss's sparse frames (training/v2/loss.py); `identity`: the clean crop is the input. When augmenting, a
    crop is a band-limited identity pair with probability P_BAND_LIMITED (training/v2/bandlimit.py), and
    a test signal as an identity pair with probability P_TEST_SIGNAL (training/v2/testsignals.py), both
    float audio that `augment_crop` quantises as it does any float input."""
    rows, restored = [], []
    for _ in range(batch):
        audio, pair = source.crop(frames)
        restored.append(restored_rate(pair))
        stored_float = stores_float(pair)
        if identity:
            audio = audio[[0, 0]]
        elif augment and rng.random() < P_BAND_LIMITED:
            audio = np.stack([band_limit(audio[0], rng, codec_cliff_hz(audio[0], audio[1]))] * 2)
            stored_float = True                   # float clean audio as input: quantised as any float input
        elif augment and rng.random() < P_TEST_SIGNAL:
            audio = np.stack([test_signal(audio.shape[1], rng)] * 2)
            stored_float = True
        rows.append(augment_crop(audio, rng, stored_float, gain_db) if augment else audio[[0, 1, 0]])
    audio = torch.from_numpy(np.stack(rows))                                  # (batch, 3, samples)
    clean, decoded = features.frame_magnitudes(audio[:, 0]), features.frame_magnitudes(audio[:, 1])
    through = clean[:, SPARSE].clone()  # the clean crop through the chain: itself unless noise or dither was added
    changed = [i for i, row in enumerate(rows) if not np.array_equal(row[0], row[2])]
    if changed:
        through[changed] = features.frame_magnitudes(audio[changed, 2], SPARSE_FRAME_STRIDE)
    return decoded, clean, band_labels(decoded[:, SPARSE], through, bands, labels, torch.tensor(restored))


def optimizer_step(net: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Backward, clip the gradient norm of net's parameters at GRAD_CLIP, one optimizer step of them."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
    opt.step()


class Critic:
    """The critic, its optimizer and the weights of its terms in the network's loss (module doc)."""

    def __init__(self, bands: int, weights: dict[str, float], stored: dict | None = None):
        self.weights = weights
        self.net = CourseCritic(bands)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=CRITIC_LR, betas=CRITIC_BETAS)
        if stored is not None:
            self.net.load_state_dict(stored["critic"])
            self.opt.load_state_dict(stored["critic_optim"])

    def network_terms(self, est_power: torch.Tensor, clean_power: torch.Tensor, decoded_power: torch.Tensor
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of the network's critic terms and the terms (critic.generator_terms); the critic's
        own weights get no gradient from them."""
        self.net.requires_grad_(False)
        terms = generator_terms(self.net, est_power, clean_power, decoded_power)
        return (self.weights["adversarial"] * terms["adversarial"] + self.weights["features"] * terms["features"],
                terms)

    def step(self, est_power: torch.Tensor, clean_power: torch.Tensor, decoded_power: torch.Tensor) -> float:
        """One step of the critic on a batch (the estimate detached); its loss."""
        self.net.requires_grad_(True)
        loss = critic_loss(self.net, est_power, clean_power, decoded_power)
        optimizer_step(self.net, self.opt, loss)
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"critic": self.net.state_dict(), "critic_optim": self.opt.state_dict()}


def validation_sets(data: DataRoots, bands: int, frames: int = CROP_FRAMES, crops: int = VAL_CROPS,
                    labels: str = LABELS[0]) -> dict[str, tuple[torch.Tensor, ...]]:
    """Fixed validation batches (decoded, clean, labels) of the first cache of `data`: `reference` (LAME 32
    kbit/s mono, not augmented), `chains` (every other codec and decode chain of the validation split,
    augmented with a fixed seed, when the cache has them) and `clean` (clean crops as input, augmented: what
    must pass unchanged)."""
    data_root = data_roots(data)[0]
    rng = np.random.default_rng(123)
    rows = json.loads((data_root / "manifest.json").read_text())["pairs"]
    sets = {"reference": (PairCache(data_root, "val", 123, codec=REFERENCE.name), False, False)}
    if any(r["split"] == "val" and r.get("mix") == "chains" for r in rows):
        sets["chains"] = (PairCache(data_root, "val", 124, mixes=("chains",)), True, False)
    sets["clean"] = (PairCache(data_root, "val", 125, codec=REFERENCE.name), True, True)
    return {name: make_batch(src, crops, frames, rng, bands, augment=augment, identity=identity, labels=labels)
            for name, (src, augment, identity) in sets.items()}


def lsd_db(est: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over active frames of the RMS dB difference over bins of magnitudes (..., T, F) (floors: model.py)."""
    floor = features.full_scale_magnitude() * 10 ** (-100 / 20)
    d = 2 * features.db(est.clamp(min=floor) / clean.clamp(min=floor))
    mask = active_frames(clean)
    return float((d.pow(2).mean(-1).sqrt() * mask).sum() / mask.sum().clamp(min=1))


class WeightAverage:
    """Exponential moving average of a network's parameters (module doc), updated after each step."""

    def __init__(self, net: torch.nn.Module, stored: dict[str, torch.Tensor] | None = None):
        self.names = [name for name, _ in net.named_parameters()]
        self.params = [p for _, p in net.named_parameters()]
        source = stored if stored is not None else dict(net.named_parameters())
        self.average = [source[name].detach().clone() for name in self.names]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - AVERAGE_DECAY)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.average))

    def averaged(self, net: BandNet) -> BandNet:
        """A copy of net (same config) holding the averaged weights, in eval mode."""
        copy = build(config_dict(net))
        copy.load_state_dict(self.state_dict())
        return copy.eval()


@torch.no_grad()
def validate(net: BandNet, sets: dict[str, tuple[torch.Tensor, ...]], prefix: str = "val",
             band_term: str = BAND_TERMS[0], patch_weight: float = 0.0, over_weight: float = 1.0,
             anchor: BandNet | None = None, hold_weight: float = 0.0) -> dict:
    """Loss terms (the total's envelope scored by `band_term`, its patch term and over-estimates weighted by
    `patch_weight` and `over_weight`, with an `anchor` network its hold term by `hold_weight`) and LSD (dB,
    all bins) of the model and of its input on each validation set, as `<prefix>_<set>_<term>`."""
    was_training = net.training
    net.eval()
    record = {}
    for name, (decoded, clean, labels) in sets.items():
        est, terms = [], {}
        for i in range(0, len(decoded), 8):
            out = net.bands(decoded[i: i + 8])
            est.append(net.expand(out.gain, out.fill, decoded[i: i + 8]))
            held = None if anchor is None else anchor.bands(decoded[i: i + 8])
            for key, value in loss_terms(net, out, decoded[i: i + 8], clean[i: i + 8], labels[i: i + 8],
                                          band_term, patch_weight, over_weight, held, hold_weight).items():
                terms[key] = terms.get(key, 0.0) + float(value) / math.ceil(len(decoded) / 8)
        record.update({f"{prefix}_{name}_{k}": round(v, 5) for k, v in terms.items()})
        record[f"{prefix}_{name}_lsd"] = round(lsd_db(torch.cat(est), clean), 4)
        record[f"{prefix}_{name}_lsd_decoded"] = round(lsd_db(decoded, clean), 4)
    net.train(was_training)
    return record


def running_mean(previous: float | None, value: float) -> float:
    """The moving average (RUNNING_DECAY per step) of a training term after one more step's `value`."""
    return value if previous is None else RUNNING_DECAY * previous + (1.0 - RUNNING_DECAY) * value


def critic_record(running: dict[str, float]) -> dict[str, float]:
    """The critic's running terms (critic loss, adversarial, features) as the log's `train_<term>`."""
    return {f"train_{k}": round(v, 5) for k, v in running.items()}


def train(run: str | Path, data_root: DataRoots, cpu_hours: float, config: BandNetConfig = BandNetConfig(),
          max_steps: int | None = None, seed: int = 0, threads: int = 1, batch: int | None = None,
          frames: int | None = None, checkpoint_s: float = CHECKPOINT_S, validate_cpu_s: float = VALIDATE_CPU_S,
          quiet: bool = False, switch_data: bool = False, labels: str | None = None,
          band_term: str | None = None, restart_lr: float | None = None, patch_weight: float | None = None,
          over_weight: float | None = None, stop_cpu_hours: float | None = None,
          hold_confidence: str | None = None, hold_weight: float = 1.0,
          source_weights: dict[str, float] | None = None, adversarial_weight: float | None = None,
          feature_weight: float | None = None) -> dict:
    """Train (or resume from <run>/last.pt, whose model config, data, batch and frames then win) until
    `cpu_hours` of CPU time in all sessions together (a resume may raise the run's budget, not lower it), or
    `max_steps` steps in all; the last validation record. `switch_data`: a resumed run trains on data_root
    (one pair cache or a list of them) from now on (recorded in the checkpoint) instead of its own. `batch`,
    `frames`: a new run's crops per step and frames per crop (default BATCH, CROP_FRAMES); given on resuming,
    the run's from now on (recorded), while validation keeps the crops the run started with. `restart_lr`
    (resuming only): a new cosine from that rate (`learning_rate`; recorded in the checkpoint). `labels`:
    the confidence's labels (loss.py LABELS; a new run's, or a resumed run's from now on, recorded in the
    checkpoint; by default a new run's are "changed" and a resumed run keeps its own); `band_term`: the
    envelope's loss term (loss.py BAND_TERMS; recorded, defaults and resumes as `labels`); `patch_weight`: the
    patch term's weight (loss.py; recorded, 0 by default, a resumed run keeps its own unless given);
    `over_weight`: what a band level above the clean one costs against one below it (loss.py; recorded, 1 by
    default, kept on resume as `patch_weight`). `stop_cpu_hours`: stop at this much CPU time in all sessions,
    before the budget, where the schedule still ends. `hold_confidence`: a v2 checkpoint whose weight-averaged
    network's confidence the hold term (loss.py) keeps this one's near, weighted `hold_weight` (recorded,
    kept on resume; a resumed run holds on unless given another). `source_weights`: how much more or less
    often than its length says a training pair of each named source is drawn (`PairCache`; recorded, kept on
    resume unless given; validation is never weighted). `adversarial_weight`, `feature_weight`: the critic's
    terms' weights (module doc; either > 0 trains a critic, a new one where the checkpoint has none;
    recorded, kept on resume unless given)."""
    torch.set_num_threads(threads)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    last = run / "last.pt"
    budget_s = cpu_hours * 3600.0
    stored_data = [str(r) for r in data_root] if isinstance(data_root, list) else str(data_root)
    state = {"step": 0, "audio_s": 0.0, "cpu_s": 0.0, "wall_s": 0.0, "sessions": 0, "data": stored_data,
             "batch": batch or BATCH, "frames": frames or CROP_FRAMES, "val_frames": frames or CROP_FRAMES,
             "labels": labels or LABELS[0], "band_term": band_term or BAND_TERMS[0],
             "patch_weight": 0.0 if patch_weight is None else patch_weight,
             "over_weight": 1.0 if over_weight is None else over_weight}
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        net = build(ck["config"])
        net.load_state_dict(ck["model"])
        average = WeightAverage(net, ck.get("average"))
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        opt.load_state_dict(ck["optim"])
        state = ck["state"]
        budget_s = max(ck["budget_cpu_s"], budget_s)
        if switch_data:
            state["data"] = stored_data
        state["labels"] = labels or state.get("labels", LABELS[0])   # before labels were a choice: "changed"
        state["band_term"] = band_term or state.get("band_term", BAND_TERMS[0])
        state["patch_weight"] = state.get("patch_weight", 0.0) if patch_weight is None else patch_weight
        state["over_weight"] = state.get("over_weight", 1.0) if over_weight is None else over_weight
        state.setdefault("val_frames", state["frames"])          # before crops could change on resuming
        state["batch"], state["frames"] = batch or state["batch"], frames or state["frames"]
        if restart_lr is not None:
            state["schedule"] = {"cpu_s": state["cpu_s"], "lr": restart_lr}
        data_root = state["data"]
        print(f"v2 train: resuming {last} at step {state['step']} ({state['cpu_s'] / 3600:.2f} of "
              f"{budget_s / 3600:.2f} CPU h)", flush=True)
    else:
        if restart_lr is not None:
            raise SystemExit("gapfill: --restart-lr restarts a resumed run's schedule; a new run starts at LR")
        torch.manual_seed(seed)
        net = BandNet(config)
        average = WeightAverage(net)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
    if hold_confidence is not None:                          # a new run's, or a resumed run's from now on
        state["hold"] = {"checkpoint": str(hold_confidence), "weight": hold_weight}
    if source_weights is not None:                           # likewise
        state["source_weights"] = dict(source_weights)
    if adversarial_weight is not None or feature_weight is not None:   # likewise
        kept = state.get("critic", {"adversarial": 0.0, "features": 0.0})
        state["critic"] = {"adversarial": kept["adversarial"] if adversarial_weight is None else adversarial_weight,
                           "features": kept["features"] if feature_weight is None else feature_weight}
    critic = None
    if any(state.get("critic", {}).values()):
        critic = Critic(net.config.bands, state["critic"], ck if last.exists() and "critic" in ck else None)
    batch, frames = state["batch"], state["frames"]
    state["sessions"] += 1
    source = PairCache(data_root, "train", seed + state["step"], source_weights=state.get("source_weights"))
    rng = np.random.default_rng(seed + state["step"])
    val = validation_sets(data_root, net.config.bands, state["val_frames"], labels=state["labels"])
    from training.v2.cliffs import cliff_crops, cliff_record    # cliffs.py builds on this module
    cliff_set = cliff_crops(data_root, VAL_CLIFF_CROPS)
    log = open(run / "log.jsonl", "a")

    def save() -> None:
        with atomic_write(last) as temp:
            torch.save({"model": net.state_dict(), "average": average.state_dict(), "optim": opt.state_dict(),
                        "config": config_dict(net), **({} if critic is None else critic.state_dict()),
                        "state": state, "budget_cpu_s": budget_s, "parameters": count_parameters(net),
                        "macs_per_frame": net.count_macs()}, temp)

    hold = state.get("hold")
    anchor = None
    if hold is not None:
        from training.v2.export import load_checkpoint
        anchor = load_checkpoint(hold["checkpoint"])[0].requires_grad_(False)
    loss_settings = (state["band_term"], state["patch_weight"], state["over_weight"])
    hold_weight = hold["weight"] if hold else 0.0

    def log_validation(**extra) -> dict:
        averaged = average.averaged(net)
        record = {"step": state["step"], "cpu_s": round(state["cpu_s"], 1), "audio_s": round(state["audio_s"]),
                  **extra, **validate(net, val, "val", *loss_settings, anchor, hold_weight),
                  **validate(averaged, val, "average", *loss_settings, anchor, hold_weight),
                  **cliff_record(averaged, cliff_set, "average")}
        log.write(json.dumps(record) + "\n")
        log.flush()
        return record

    session = {"session": state["sessions"], "step": state["step"], "cpu_s": round(state["cpu_s"], 1),
               "budget_cpu_s": budget_s, "data": state["data"], "source_weights": state.get("source_weights", {}),
               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log.write(json.dumps(session) + "\n")
    log.flush()
    stop = []
    previous = {sig: signal.signal(sig, lambda number, frame: stop.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    cpu0, wall0 = time.process_time(), time.time()
    last_checkpoint, last_validation, running = time.time(), state["cpu_s"], None
    running_critic: dict[str, float] = {}
    net.train()
    stop_s = budget_s if stop_cpu_hours is None else min(budget_s, stop_cpu_hours * 3600.0)
    while state["cpu_s"] < stop_s and (max_steps is None or state["step"] < max_steps) and not stop:
        lr = learning_rate(state["cpu_s"], budget_s, state.get("schedule"))
        for group in opt.param_groups:
            group["lr"] = lr
        decoded, clean, band_targets = make_batch(source, batch, frames, rng, net.config.bands, labels=state["labels"])
        with torch.no_grad():
            held = None if anchor is None else anchor.bands(decoded)
        out = net.bands(decoded)
        terms = loss_terms(net, out, decoded, clean, band_targets, *loss_settings, held, hold_weight)
        total = terms["total"]
        if critic is not None:
            est_power = net.band_power(out)
            with torch.no_grad():
                clean_power = net.band_powers(clean)
            weighted, critic_terms = critic.network_terms(est_power, clean_power, out.power)
            total = total + weighted
        optimizer_step(net, opt, total)
        if critic is not None:                  # after the network's step: its graph holds the critic's weights
            values = {"critic": critic.step(est_power, clean_power, out.power),
                      **{key: float(value.detach()) for key, value in critic_terms.items()}}
            for key, value in values.items():
                running_critic[key] = running_mean(running_critic.get(key), value)
        average.update()
        state["step"] += 1
        state["audio_s"] += batch * frames * features.HOP / features.SAMPLE_RATE
        cpu1, wall1 = time.process_time(), time.time()
        state["cpu_s"] += cpu1 - cpu0
        state["wall_s"] += wall1 - wall0
        cpu0, wall0 = cpu1, wall1
        value = float(terms["total"].detach())
        running = running_mean(running, value)
        if not quiet and state["step"] % LOG_EVERY_STEPS == 0:
            print(f"v2 train: step {state['step']} loss {running:.4f} lr {lr:.1e} cpu {state['cpu_s'] / 3600:.2f} h "
                  f"audio {state['audio_s'] / 3600:.1f} h", flush=True)
        if state["cpu_s"] - last_validation > validate_cpu_s:
            log_validation(train_loss=running, lr=lr, **critic_record(running_critic))
            last_validation = state["cpu_s"]
        if time.time() - last_checkpoint > checkpoint_s:
            save()
            last_checkpoint = time.time()
        cpu0, wall0 = time.process_time(), time.time()   # validation and saving are not training
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if stop:
        save()
        print(f"v2 train: stopped by signal {stop[0]} at step {state['step']}; {last} saved", flush=True)
    record = log_validation(train_loss=running, final=True, **critic_record(running_critic))
    log.close()
    save()
    return record
