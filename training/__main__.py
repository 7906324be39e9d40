"""`python -m training <step> ...`: rebuild the corpus, the MP3 pairs, train, export, evaluate.

From scratch on a fresh machine (Debian packages and PyPI only, see training/corpus.py):

    apt-get install -y tuxpaint-stamps-default hedgewars-data wesnoth-1.16-music fluidsynth \\
        fluid-soundfont-gm musescore-general-soundfont-small hydrogen-drumkits
    pip install -e '.[train]'
    python -m training all            # corpus -> pairs -> train -> export -> evaluate -> card

(`all` trains four stages, as the shipped model was: --minutes 75 from scratch and --finetune-minutes 16 from
those weights on the `lame` pairs, then --chains-minutes from those weights on both pair mixes, every codec
family through every decode chain, with gain, noise-floor and quantisation augmentation (training/pairs.py,
train.py), and --confidence-minutes adding the confidence head. The loss comparison in the card comes from
`train --loss l1 --run runs/cmp_l1 --steps 100` and `compare`.)

Every step shows progress and resumes after an interruption (finished files are skipped, training
continues from <run>/last.pt). Steps can be run one by one: corpus, pairs, train, export, evaluate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_ONNX = "models/gapfill-unet-mp3.onnx"
CHAINS_MINUTES = 55.0
CONFIDENCE_MINUTES = 60.0
TIMING_HOPS = 5000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    c = sub.add_parser("corpus", help="clean 48 kHz segments -> data/clean")
    c.add_argument("--out", default="data/clean")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--write-split", action="store_true", help="rewrite training/split.json")
    pr = sub.add_parser("pairs", help="LAME encode/decode + alignment -> data/pairs")
    pr.add_argument("--clean", default="data/clean")
    pr.add_argument("--out", default="data/pairs")
    pr.add_argument("--workers", type=int, default=2)
    t = sub.add_parser("train", help="train (resumes from <run>/last.pt)")
    _train_args(t)
    e = sub.add_parser("export", help="checkpoint -> streaming ONNX")
    e.add_argument("--checkpoint", default="runs/main/last.pt")
    e.add_argument("--out", default=DEFAULT_ONNX)
    ev = sub.add_parser("evaluate", help="validation metrics through the engine")
    ev.add_argument("--model", default=DEFAULT_ONNX)
    ev.add_argument("--pairs", default="data/pairs")
    ev.add_argument("--clips", type=int, default=16, help="clips per kind (speech, music)")
    ev.add_argument("--out", default="runs/eval.json")
    ev.add_argument("--phase", default=None, help="phase.method for the engine (default: the config's)")
    ev.add_argument("--no-gate", action="store_true", help="model output unchanged (gate off)")
    tm = sub.add_parser("timing", help="per-hop inference cost of an ONNX model (1 thread, IOBinding)")
    tm.add_argument("--model", default=DEFAULT_ONNX)
    tm.add_argument("--hops", type=int, default=TIMING_HOPS)
    tm.add_argument("--out", default="runs/timing.json")
    cd = sub.add_parser("card", help="write the model card from run artefacts")
    cd.add_argument("--model", default=DEFAULT_ONNX)
    cd.add_argument("--checkpoint", default="runs/main/last.pt")
    cd.add_argument("--compare", default="runs/compare.json")
    cd.add_argument("--eval", default="runs/eval.json")
    cd.add_argument("--timing", default="runs/timing.json")
    cd.add_argument("--extra-eval", nargs=2, action="append", metavar=("TITLE", "JSON"), default=[],
                    help="another evaluate result to include (e.g. gate off)")
    cd.add_argument("--notes", default=None, help="markdown file appended as 'Notes'")
    cp = sub.add_parser("compare", help="model-only validation metrics of checkpoints (loss comparison)")
    cp.add_argument("checkpoints", nargs="+")
    cp.add_argument("--pairs", default="data/pairs")
    cp.add_argument("--out", default="runs/compare.json")
    a = sub.add_parser("all", help="corpus, pairs, train, export, evaluate, timing, card")
    _train_args(a, minutes=75.0)
    a.add_argument("--finetune-minutes", type=float, default=16.0,
                   help="second stage: a warm restart of the schedule from the first stage's weights (0: none)")
    a.add_argument("--chains-minutes", type=float, default=CHAINS_MINUTES,
                   help="third stage: from the second stage's weights on every codec and decode chain (0: none)")
    a.add_argument("--confidence-minutes", type=float, default=CONFIDENCE_MINUTES,
                   help="fourth stage: the third stage's weights plus a confidence head, on every pair (0: none)")
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--out", default=DEFAULT_ONNX)
    args = p.parse_args(argv)

    if args.step == "timing":
        from training.export import timing_report
        res = timing_report(args.model, args.hops)
        _write_json(args.out, res)
        print(json.dumps(res, indent=1))
        return 0
    if args.step == "card":
        from training.card import write_card
        timing = json.loads(Path(args.timing).read_text()) if Path(args.timing).exists() else None
        out = write_card(Path(args.model).with_suffix(".md"), args.model, args.checkpoint,
                         compare_json=args.compare, eval_json=args.eval, timing=timing,
                         extra_eval=dict(args.extra_eval),
                         notes=Path(args.notes).read_text() if args.notes else None)
        print(f"card: {out}")
        return 0
    if args.step == "compare":
        from training.evaluate import compare_checkpoints
        res = compare_checkpoints(args.checkpoints, args.pairs)
        _write_json(args.out, res)
        print(json.dumps(res, indent=1))
        return 0
    if args.step in ("corpus", "all"):
        from training.corpus import build_corpus
        m = build_corpus(getattr(args, "out", "data/clean") if args.step == "corpus" else "data/clean",
                         workers=args.workers, write_split=getattr(args, "write_split", False))
        print(json.dumps(m["summary"], indent=1))
    if args.step in ("pairs", "all"):
        from training.pairs import build_pairs
        if args.step == "pairs":
            m = build_pairs(args.clean, args.out, workers=args.workers)
        else:
            m = build_pairs("data/clean", args.data, workers=args.workers)
        print(f"pairs: {len(m['pairs'])}, max |lag| after alignment {m['max_abs_lag_samples']:.2f} samples")
    if args.step in ("train", "all"):
        from training.train import GAIN_DB_RANGE, train
        mixes = ("lame",) if args.step == "all" else _mixes(args.mixes)
        rec = train(args.run, args.data, minutes=args.minutes, loss=args.loss, threads=args.threads,
                    init=args.init, synthetic=args.synthetic, max_steps=args.steps, seed=args.seed,
                    batch=args.batch, mixes=mixes, confidence=args.step == "train" and args.confidence,
                    gain_db=tuple(args.gain_db or GAIN_DB_RANGE))
        print(json.dumps(rec))
    if args.step == "all":
        for suffix, minutes, mixes, confidence in (("_ft", args.finetune_minutes, ("lame",), False),
                                                   ("_chains", args.chains_minutes, None, False),
                                                   ("_confidence", args.confidence_minutes, None, True)):
            if minutes <= 0:
                continue
            previous = Path(args.run) / "last.pt"
            args.run = str(Path(args.run).with_name(Path(args.run).name.split("_")[0] + suffix))
            rec = train(args.run, args.data, minutes=minutes, loss=args.loss, threads=args.threads,
                        init=str(previous), seed=args.seed, batch=args.batch, mixes=mixes, confidence=confidence,
                        gain_db=tuple(args.gain_db or GAIN_DB_RANGE))
            print(json.dumps(rec))
    if args.step in ("export", "all"):
        from training.export import export_onnx, load_checkpoint, save_weights
        ck = args.checkpoint if args.step == "export" else str(Path(args.run) / "last.pt")
        net, info = load_checkpoint(ck)
        out = export_onnx(net, args.out, {"gapfill.train_steps": info["step"],
                                          "gapfill.train_minutes": round(info["elapsed_s"] / 60, 1),
                                          "gapfill.loss": info["loss"]})
        weights = save_weights(net, Path(args.out).with_suffix(".pt"))
        print(f"export: {out} (+ PyTorch weights {weights})")
    if args.step in ("evaluate", "all"):
        from training.evaluate import evaluate, format_report
        model = args.model if args.step == "evaluate" else args.out
        res = evaluate(model, getattr(args, "pairs", "data/pairs"), clips_per_kind=getattr(args, "clips", 16),
                       gate=not getattr(args, "no_gate", False), phase=getattr(args, "phase", None))
        _write_json(args.out if args.step == "evaluate" else "runs/eval.json", res)
        print(format_report(res))
    if args.step == "all":
        from training.card import write_card
        from training.export import timing_report
        timing = timing_report(args.out, TIMING_HOPS)
        _write_json("runs/timing.json", timing)
        card = write_card(Path(args.out).with_suffix(".md"), args.out, Path(args.run) / "last.pt",
                          compare_json=None, eval_json="runs/eval.json", timing=timing)
        print(f"card: {card}")
    return 0


def _write_json(path: str | Path, data: dict) -> None:
    """`data` as indented JSON at `path` (its folder made if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _train_args(t: argparse.ArgumentParser, minutes: float = 50.0) -> None:
    t.add_argument("--run", default="runs/main", help="run folder (checkpoint, log.jsonl)")
    t.add_argument("--data", default="data/pairs")
    t.add_argument("--minutes", type=float, default=minutes, help="training time budget (wall clock)")
    t.add_argument("--loss", choices=("l1", "l1+log"), default="l1+log")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--init", default=None, help="start from this checkpoint's weights")
    t.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--synthetic", action="store_true", help="synthetic data (smoke test, no corpus)")
    t.add_argument("--mixes", default="all", help="pair mixes to train on: lame, chains or all")
    t.add_argument("--confidence", action="store_true",
                   help="add a per-bin codec-made confidence head (warm start: --init without one)")
    t.add_argument("--gain-db", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="gain range of the training crops in dB (default: train.GAIN_DB_RANGE, -20 6; "
                        "`all`: every stage's)")


def _mixes(text: str) -> tuple[str, ...] | None:
    """--mixes: None for all, else the named mixes of training/pairs.py."""
    from training.pairs import MIXES

    if text == "all":
        return None
    mixes = tuple(m.strip() for m in text.split(","))
    unknown = [m for m in mixes if m not in MIXES]
    if unknown:
        raise SystemExit(f"train: unknown pair mix {unknown[0]!r} (use {', '.join(MIXES)} or all)")
    return mixes


if __name__ == "__main__":
    sys.exit(main())
