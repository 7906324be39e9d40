"""Model v2 from nothing, with one command: data v2, its pair rounds, the training run, the ONNX export.

    python -m training.v2 all [--workers 1] [--cpu-hours 20] [--run runs/v2] [--out models/gapfill-v2.onnx]

Steps, each resumable (a stopped command, run again, goes on where it stopped):
1. `training.data.build` -> DATA_ROOT: the clean corpus from the Debian packages ../shared/DATA.md allows
   (about 1.5 CPU h);
2. `training.v2.paircache.build_pair_cache` -> PAIRS_ROOT/r0 .. r{ROUNDS - 1}: every ROUNDS-th training
   segment per round, encoded and decoded through the conditions it draws, so the rounds together hold
   every training segment once (about 1.6 CPU h for r0, 1.2 for each later one, which links r0's
   validation pairs);
3. `training.v2.train.train` on all rounds together for `cpu_hours` of CPU time (resumes <run>/last.pt);
4. `training.v2.export.export_checkpoint` -> `out`, with the shipped model's gate calibration
   (export.SHIPPED_GATE_CALIBRATION): the shipped model, models/gapfill-v2.onnx, by default.
"""

from __future__ import annotations

import time
from pathlib import Path

DATA_ROOT = "data/v2"
PAIRS_ROOT = "data/v2pairs"
ROUNDS = 4
CPU_HOURS = 20.0


def pair_rounds(pairs_root: str | Path = PAIRS_ROOT, rounds: int = ROUNDS) -> list[str]:
    """The folders of the pair rounds, r0 first (validation is read from r0)."""
    return [str(Path(pairs_root) / f"r{k}") for k in range(rounds)]


def rebuild_all(run: str | Path = "runs/v2", out: str | Path = "models/gapfill-v2.onnx", workers: int = 1,
                cpu_hours: float = CPU_HOURS, data_root: str | Path = DATA_ROOT,
                pairs_root: str | Path = PAIRS_ROOT) -> Path:
    """Steps 1-4 of the module doc; returns the exported model's path."""
    from training.data.build import build
    from training.v2.export import SHIPPED_GATE_CALIBRATION, export_checkpoint
    from training.v2.paircache import build_pair_cache
    from training.v2.train import train

    began = time.time()
    build(str(data_root), workers, None)
    rounds = pair_rounds(pairs_root)
    for k, folder in enumerate(rounds):
        manifest = build_pair_cache(data_root, folder, ROUNDS, k, workers, rounds[0] if k else None)
        print(f"v2 all: pair round {k}: {len(manifest['pairs'])} pairs after {(time.time() - began) / 60:.0f} min",
              flush=True)
    train(run, rounds, cpu_hours, switch_data=True)
    return export_checkpoint(Path(run) / "last.pt", out, SHIPPED_GATE_CALIBRATION)
