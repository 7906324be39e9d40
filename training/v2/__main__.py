"""`python -m training.v2 <step>`: model v2's data, training, export and measurements.

    python -m training.v2 bootstrap                 # small clean corpus -> data/v2boot/clean (a few minutes)
    python -m training.v2 pairs                     # its pair cache -> data/v2boot/pairs (resumable)
    python -m training.v2 pairs --clean data/v2 --out data/v2/pairs --stride 4   # from data v2's manifest
    python -m training.v2 train --cpu-hours 20      # trains into runs/v2 (resumes from runs/v2/last.pt)
    python -m training.v2 train --resume            # continue runs/v2/last.pt with its own budget and data
    python -m training.v2 train --resume --data data/v2pairs/r0 data/v2pairs/r1   # ... on these caches now
    python -m training.v2 train --resume --adversarial-weight 0.05 --feature-weight 0.1   # ... with a critic
    python -m training.v2 all                       # data, pair rounds, the training stages, export to models/
    python -m training.v2 widen --bands 64          # runs/v2/last.pt at a finer band resolution, in place
    python -m training.v2 widen --hidden 256 --gru-stride 2   # ... with more hidden units, a GRU every 2 frames
    python -m training.v2 widen --context 4 --block 256       # ... its GRU seeing 4 frames, residual blocks
    python -m training.v2 floor --checkpoint runs/v2/last.pt   # validation LSD of band oracles and the model
    python -m training.v2 levels --checkpoint runs/v2/last.pt  # band levels above the cutoff, per kind
    python -m training.v2 cliffs --checkpoint runs/v2/last.pt  # confidence: coded vs clean under a cliff
    python -m training.v2 damage --model runs/v2/gapfill-v2.onnx  # codec damage under an edge vs confidence
    python -m training.v2 export                    # runs/v2/last.pt -> runs/v2/gapfill-v2.onnx
    python -m training.v2 export --detector runs/v2/detector.pt   # ... its magnitude, the detector's confidence
    python -m training.v2 throughput                # today's U-Net vs v2, training audio s per CPU s
    python -m training.v2 ablation --arm v2         # one arm of the equal-CPU-budget comparison
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.v2.loss import BAND_TERMS, LABELS
from training.v2.model import FILLS, BandNetConfig

DEFAULT_CLEAN = "data/v2boot/clean"
DEFAULT_PAIRS = "data/v2boot/pairs"
DEFAULT_RUN = "runs/v2"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.v2", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    b = sub.add_parser("bootstrap", help="small clean corpus (training/v2/bootstrap.py)")
    b.add_argument("--out", default=DEFAULT_CLEAN)
    pr = sub.add_parser("pairs", help="pair cache of a clean corpus (training/v2/paircache.py)")
    pr.add_argument("--clean", default=DEFAULT_CLEAN, help="folder of a clean manifest.json (data/v2 too)")
    pr.add_argument("--out", default=DEFAULT_PAIRS)
    pr.add_argument("--stride", type=int, default=1, help="every n-th training segment (one pairing each)")
    pr.add_argument("--round", type=int, default=0, help="which of the stride's segments (a refresh: the next)")
    pr.add_argument("--workers", type=int, default=1)
    pr.add_argument("--validation-from", default=None,
                    help="an earlier round's folder: link its validation pairs (the same in every round)")
    t = sub.add_parser("train", help="train or resume (runs/v2/last.pt)")
    t.add_argument("--run", default=DEFAULT_RUN)
    t.add_argument("--data", default=None, nargs="+",
                   help=f"pair cache(s) (default {DEFAULT_PAIRS}; a resumed run keeps its own unless given)")
    t.add_argument("--cpu-hours", type=float, default=None,
                   help="CPU budget of the whole run, all sessions (default 20; --resume: the run's own)")
    t.add_argument("--stop-at-cpu-hours", type=float, default=None,
                   help="stop at this CPU time of the whole run, before the budget (where the schedule still ends)")
    t.add_argument("--resume", action="store_true", help="require <run>/last.pt and continue it")
    t.add_argument("--steps", type=int, default=None, help="stop after this many steps in all")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch", type=int, default=None,
                   help="crops per step (default: train.BATCH, or a resumed run's own; given: its own from now on)")
    t.add_argument("--frames", type=int, default=None,
                   help="frames per crop (default: train.CROP_FRAMES, or a resumed run's own; given: as --batch)")
    t.add_argument("--restart-lr", type=float, default=None,
                   help="with --resume: a new cosine from this learning rate down to LR/20 at the budget")
    t.add_argument("--labels", choices=LABELS, default=None,
                   help="what the confidence learns is codec-made (loss.py; default changed, or a resumed run's own)")
    t.add_argument("--band-term", choices=BAND_TERMS, default=None,
                   help="the envelope's loss term (loss.py; default band, or a resumed run's own)")
    t.add_argument("--patch-weight", type=float, default=None,
                   help="weight of the ViSQOL-like patch term (loss.py; default 0, or a resumed run's own)")
    t.add_argument("--over-weight", type=float, default=None,
                   help="cost of a band level above the clean one against one below (loss.py; default 1, or a "
                        "resumed run's own)")
    t.add_argument("--hold-confidence", metavar="CHECKPOINT", default=None,
                   help="keep the confidence near this v2 checkpoint's (loss.py hold term; recorded, kept on resume)")
    t.add_argument("--hold-weight", type=float, default=1.0, help="weight of the hold term (default 1)")
    t.add_argument("--source-weight", metavar="SOURCE=WEIGHT", action="append", type=_source_weight, default=None,
                   help="draw training pairs of this manifest source WEIGHT times as often as their length says "
                        "(repeatable; recorded, kept on resume unless given)")
    t.add_argument("--adversarial-weight", type=float, default=None,
                   help="weight of the critic's adversarial term (critic.py; default 0, or a resumed run's own)")
    t.add_argument("--feature-weight", type=float, default=None,
                   help="weight of the critic's feature-matching term (critic.py; default 0, or a resumed run's own)")
    _config_args(t)
    al = sub.add_parser("all", help="model v2 from nothing: data, pair rounds, training, export (resumable)")
    al.add_argument("--run", default=DEFAULT_RUN)
    al.add_argument("--out", default="models/gapfill-v2.onnx", help="the exported model (default: the shipped one)")
    al.add_argument("--workers", type=int, default=1, help="processes building data (default 1)")
    w = sub.add_parser("widen", help="a checkpoint at more bands or hidden units, keeping what it learned "
                                     "(training/v2/widen.py)")
    w.add_argument("--bands", type=int, default=None)
    w.add_argument("--hidden", type=int, default=None)
    w.add_argument("--context", type=int, default=None, help="frames the GRU's input layer sees (model.py)")
    w.add_argument("--block", type=int, default=None, help="add residual blocks of this width (model.py)")
    w.add_argument("--lookahead", type=int, default=None, help="look ahead this many frames (model.py)")
    w.add_argument("--gru-stride", type=int, default=None, help="a new GRU stride (model.py)")
    w.add_argument("--bin-input", action="store_true", help="let the GRU see its frame's bin levels (model.py)")
    w.add_argument("--checkpoint", default=f"{DEFAULT_RUN}/last.pt")
    w.add_argument("--out", default=None, help="default: the checkpoint itself")
    fl = sub.add_parser("floor", help="validation LSD of oracles of each band count (training/v2/floor.py)")
    fl.add_argument("--data", default="data/v2pairs/r0", help="pair cache whose validation crops are scored")
    fl.add_argument("--bands", type=int, nargs="+", default=[32, 64, 128])
    fl.add_argument("--checkpoint", default=None, help="also this checkpoint's network")
    lv = sub.add_parser("levels", help="band level errors above the cutoff per kind (training/v2/levels.py)")
    lv.add_argument("--checkpoint", default=f"{DEFAULT_RUN}/last.pt")
    lv.add_argument("--data", nargs="+", default=["data/v2pairs/r0", "data/v2pairs/r1"],
                    help="pair caches (validation: the first)")
    lv.add_argument("--codec", default=None, help="the pairs' codec (default: the LAME 32 kbit/s mono reference)")
    cl = sub.add_parser("cliffs", help="confidence under a cliff, coded vs clean (training/v2/cliffs.py)")
    cl.add_argument("--checkpoint", default=f"{DEFAULT_RUN}/last.pt")
    cl.add_argument("--data", default="data/v2pairs/r0", help="pair cache whose validation crops are scored")
    cl.add_argument("--crops", type=int, default=200)
    dm = sub.add_parser("damage", help="codec damage under a band edge vs a model's confidence (training/v2/damage.py)")
    dm.add_argument("--model", required=True, help="an ONNX model file")
    dm.add_argument("--corpus", default="data/v2", help="data v2 (gate_noharm's clips)")
    dm.add_argument("--clips", type=int, default=2, help="clips per kind (speech, music, mix)")
    dm.add_argument("--seconds", type=float, default=4.0)
    e = sub.add_parser("export", help="checkpoint -> streaming ONNX (docs/CONTRACTS.md)")
    e.add_argument("--checkpoint", default=f"{DEFAULT_RUN}/last.pt")
    e.add_argument("--out", default=f"{DEFAULT_RUN}/gapfill-v2.onnx")
    e.add_argument("--detector", metavar="CHECKPOINT", default=None,
                   help="pair: the confidence from this checkpoint, the magnitude from --checkpoint (pair.py)")
    e.add_argument("--damage-share", type=float, default=None, help="gate calibration (default.yaml gate)")
    e.add_argument("--codec-share", type=float, default=None, help="gate calibration (default.yaml gate)")
    e.add_argument("--codec-share-top-hz", type=float, default=None, help="gate calibration (default.yaml gate)")
    e.add_argument("--shipped-gate", action="store_true",
                   help="the shipped model's gate calibration (export.py SHIPPED_GATE_CALIBRATION; flags above win)")
    tp = sub.add_parser("throughput", help="training throughput, today's U-Net and v2, one thread")
    tp.add_argument("--steps", type=int, default=6)
    tp.add_argument("--json", default=f"{DEFAULT_RUN}/throughput.json")
    tp.add_argument("--data", default=None, help="a pair cache: also time each model's batch preparation")
    tp.add_argument("--variants", action="store_true", help="also the v2 variants of the ablation")
    a = sub.add_parser("ablation", help="train one arm for a CPU budget on the pair cache, then score it")
    a.add_argument("--arm", required=True, help="today or a v2 arm of ablation.ARMS (--engine: shipped too)")
    a.add_argument("--engine", action="store_true", help="score the trained arm through the engine instead")
    a.add_argument("--data", default=DEFAULT_PAIRS)
    a.add_argument("--cpu-minutes", type=float, default=15.0)
    a.add_argument("--out", default="runs/v2/ablation")
    args = p.parse_args(argv)

    if args.step == "bootstrap":
        from training.v2.bootstrap import build_bootstrap
        print(json.dumps(build_bootstrap(args.out)["summary"]))
    elif args.step == "pairs":
        from training.v2.paircache import build_pair_cache
        m = build_pair_cache(args.clean, args.out, args.stride, args.round, args.workers, args.validation_from)
        print(f"pairs: {len(m['pairs'])} ({len(m['failed'])} refused by their encoder)")
    elif args.step == "train":
        from training.v2.train import train
        if args.resume and not (Path(args.run) / "last.pt").exists():
            raise SystemExit(f"gapfill: nothing to resume: no {Path(args.run) / 'last.pt'}")
        hours = args.cpu_hours if args.cpu_hours is not None else (0.0 if args.resume else 20.0)
        data = DEFAULT_PAIRS if args.data is None else args.data[0] if len(args.data) == 1 else args.data
        record = train(args.run, data, hours, _config(args), max_steps=args.steps,
                       seed=args.seed, threads=args.threads, batch=args.batch, frames=args.frames,
                       switch_data=args.resume and args.data is not None, labels=args.labels,
                       band_term=args.band_term, restart_lr=args.restart_lr, patch_weight=args.patch_weight,
                       over_weight=args.over_weight, stop_cpu_hours=args.stop_at_cpu_hours,
                       hold_confidence=args.hold_confidence, hold_weight=args.hold_weight,
                       source_weights=None if args.source_weight is None else dict(args.source_weight),
                       adversarial_weight=args.adversarial_weight, feature_weight=args.feature_weight)
        print(json.dumps(record))
    elif args.step == "all":
        from training.v2.rebuild import rebuild_all
        print(f"v2 all: {rebuild_all(args.run, args.out, args.workers)}")
    elif args.step == "widen":
        from training.v2.widen import widen_checkpoint
        state = widen_checkpoint(args.checkpoint, args.out or args.checkpoint, args.bands, args.hidden,
                                 args.gru_stride, args.context, args.block, args.lookahead, args.bin_input)
        print(f"widen: {state['widened'][-1]}")
    elif args.step == "floor":
        from training.v2.floor import floor_table, format_table
        print(format_table(floor_table(args.data, tuple(args.bands), args.checkpoint)))
        if args.checkpoint:
            from training.v2.floor import band_levels, format_levels
            print(format_levels(band_levels(args.data, args.checkpoint)))
    elif args.step == "levels":
        from training.pairs import REFERENCE
        from training.v2.export import load_checkpoint
        from training.v2.levels import format_rows, level_rows
        net = load_checkpoint(args.checkpoint)[0]
        print(format_rows(level_rows(net, args.data, args.codec or REFERENCE.name)))
    elif args.step == "cliffs":
        from training.v2.cliffs import cliff_rows, format_rows as format_cliffs
        from training.v2.export import load_checkpoint
        print(format_cliffs(cliff_rows(load_checkpoint(args.checkpoint)[0], args.data, args.crops)))
    elif args.step == "damage":
        from training.v2.damage import damage_rows, format_rows as format_damage
        print(format_damage(damage_rows(args.model, args.corpus, args.clips, args.seconds)))
    elif args.step == "export":
        from training.v2.export import SHIPPED_GATE_CALIBRATION, export_checkpoint, export_pair
        given = (("damage_share", args.damage_share), ("codec_share", args.codec_share),
                 ("codec_share_top_hz", args.codec_share_top_hz))
        gate = {**(SHIPPED_GATE_CALIBRATION if args.shipped_gate else {}), **{k: v for k, v in given if v is not None}}
        if args.detector:
            print(f"export: {export_pair(args.checkpoint, args.detector, args.out, gate)}")
        else:
            print(f"export: {export_checkpoint(args.checkpoint, args.out, gate)}")
    elif args.step == "throughput":
        from training.v2.ablation import ARMS
        from training.v2.throughput import run
        variants = tuple(c for c in ARMS.values() if c is not None and c != BandNetConfig()) if args.variants else ()
        run(args.steps, args.json, variants, args.data)
    elif args.step == "ablation":
        from training.v2.ablation import run_arm, score_through_engine
        if args.engine:
            print(json.dumps(score_through_engine(args.arm, args.data, args.out), indent=1))
        else:
            print(json.dumps(run_arm(args.arm, args.data, args.cpu_minutes * 60, args.out), indent=1))
    return 0


def _source_weight(text: str) -> tuple[str, float]:
    """SOURCE=WEIGHT as (source, weight)."""
    source, sep, weight = text.rpartition("=")
    try:
        if sep and source:
            return source, float(weight)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected SOURCE=WEIGHT, got {text!r}")


def _config_args(t: argparse.ArgumentParser) -> None:
    d = BandNetConfig()
    t.add_argument("--bands", type=int, default=d.bands)
    t.add_argument("--channels", type=int, default=d.channels, help="band convolution channels (0: none)")
    t.add_argument("--hidden", type=int, default=d.hidden)
    t.add_argument("--fill", choices=FILLS, default=d.fill)
    t.add_argument("--gru-stride", type=int, default=d.gru_stride,
                   help="frames per GRU update (model.py; 1: every frame)")
    t.add_argument("--context", type=int, default=d.context, help="frames the GRU's input layer sees (model.py)")
    t.add_argument("--block", type=int, default=d.block, help="residual block width (model.py; 0: none)")
    t.add_argument("--lookahead", type=int, default=d.lookahead, help="frames of look-ahead (model.py)")
    t.add_argument("--bin-input", action="store_true", help="the GRU also sees its frame's bin levels (model.py)")


def _config(args: argparse.Namespace) -> BandNetConfig:
    return BandNetConfig(bands=args.bands, channels=args.channels, hidden=args.hidden, fill=args.fill,
                         gru_stride=args.gru_stride, context=args.context, block=args.block, lookahead=args.lookahead,
                         bin_input=args.bin_input)


if __name__ == "__main__":
    sys.exit(main())
