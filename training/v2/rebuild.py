"""Model v2 from nothing, with one command: data v2, its pair rounds, the training stages, the ONNX export.

    python -m training.v2 all [--workers 1] [--run runs/v2] [--out models/gapfill-v2.onnx]

Steps, each resumable (a stopped command, run again, goes on where it stopped):
1. `training.data.build` -> DATA_ROOT: the clean corpus from the Debian packages ../shared/DATA.md allows
   (about 1.5 CPU h);
2. `training.v2.paircache.build_pair_cache` -> PAIRS_ROOT/r0 .. r{ROUNDS - 1}: every ROUNDS-th training
   segment per round, encoded and decoded through the conditions it draws, so the rounds together hold
   every training segment once (about 1.6 CPU h for r0, 1.2 for each later one, which links r0's
   validation pairs);
3. `train_stages`: `training.v2.train.train` on all rounds together through STAGES, the shipped model's
   course (resumes <run>/last.pt in whichever stage it stopped);
4. `training.v2.export.export_checkpoint` -> `out`, with the shipped model's gate calibration
   (export.SHIPPED_GATE_CALIBRATION): the shipped model, models/gapfill-v2.onnx, by default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from training.v2.model import BandNetConfig

DATA_ROOT = "data/v2"
PAIRS_ROOT = "data/v2pairs"
ROUNDS = 4


@dataclass(frozen=True)
class Stage:
    """A stretch of training: on to `stop_cpu_hours` of CPU time in all, the cosine schedule ending at
    `budget_cpu_hours`; from its start a new cosine from `restart_lr`, crops of `batch` x `frames`, the over
    term's weight `over_weight` (None: as the run had them; train.train's arguments)."""

    budget_cpu_hours: float
    stop_cpu_hours: float
    restart_lr: float | None = None
    batch: int | None = None
    frames: int | None = None
    over_weight: float | None = None


STAGES = (
    Stage(20.0, 20.0),                                                  # one cosine from LR, 1.02 s crops
)
"""The shipped model's course (models/gapfill-v2.md, Training)."""


def pair_rounds(pairs_root: str | Path = PAIRS_ROOT, rounds: int = ROUNDS) -> list[str]:
    """The folders of the pair rounds, r0 first (validation is read from r0)."""
    return [str(Path(pairs_root) / f"r{k}") for k in range(rounds)]


def train_stages(run: str | Path, data_root: str | list[str], stages: tuple[Stage, ...] = STAGES,
                 config: BandNetConfig = BandNetConfig()) -> dict | None:
    """Train <run> (a new run of `config`, or <run>/last.pt resumed) through `stages`, skipping those its
    checkpoint has passed, and stopping where a stage is stopped short (a signal); a stage's `restart_lr`
    restarts the schedule only where it has not restarted since the stage before ended. The last final
    validation record (None if all stages were passed)."""
    import torch

    from training.v2.train import train

    record, stage_start_s = None, 0.0
    for stage in stages:
        last = Path(run) / "last.pt"
        state = torch.load(last, map_location="cpu", weights_only=False)["state"] if last.exists() else None
        if state is None or state["cpu_s"] < stage.stop_cpu_hours * 3600.0:
            schedule = (state or {}).get("schedule")
            restart = state is not None and (schedule is None or schedule["cpu_s"] < stage_start_s)
            record = train(run, data_root, stage.budget_cpu_hours, config, switch_data=state is not None,
                           batch=stage.batch, frames=stage.frames, over_weight=stage.over_weight,
                           restart_lr=stage.restart_lr if restart else None, stop_cpu_hours=stage.stop_cpu_hours)
            if record["cpu_s"] < stage.stop_cpu_hours * 3600.0:
                return record
        stage_start_s = stage.stop_cpu_hours * 3600.0
    return record


def rebuild_all(run: str | Path = "runs/v2", out: str | Path = "models/gapfill-v2.onnx", workers: int = 1,
                data_root: str | Path = DATA_ROOT, pairs_root: str | Path = PAIRS_ROOT) -> Path:
    """Steps 1-4 of the module doc; returns the exported model's path."""
    from training.data.build import build
    from training.v2.export import SHIPPED_GATE_CALIBRATION, export_checkpoint
    from training.v2.paircache import build_pair_cache

    began = time.time()
    build(str(data_root), workers, None)
    rounds = pair_rounds(pairs_root)
    for k, folder in enumerate(rounds):
        manifest = build_pair_cache(data_root, folder, ROUNDS, k, workers, rounds[0] if k else None)
        print(f"v2 all: pair round {k}: {len(manifest['pairs'])} pairs after {(time.time() - began) / 60:.0f} min",
              flush=True)
    train_stages(run, rounds)
    return export_checkpoint(Path(run) / "last.pt", out, SHIPPED_GATE_CALIBRATION)
