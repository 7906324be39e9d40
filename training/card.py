"""Model card (models/gapfill-unet-mp3.md) from the artefacts of a training run."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from realtime.engine.config import MODEL_RATE_HZ
from training.evaluate import format_report
from training.train import CONFIDENCE_WEIGHT, GAIN_DB_RANGE, LABEL_DB, LABEL_FLOOR_DB
from training.unet import FFT_SIZE, HOP


def _hours(summary: dict, key: str) -> float:
    return float(summary.get(key, 0.0))


def _stages(ck: dict) -> list[dict]:
    """The checkpoint's training stages, oldest first (a run from before stages were recorded: one)."""
    return ck.get("stages") or [{"steps": ck["step"], "minutes": round(ck["elapsed_s"] / 60, 1), "mixes": "all",
                                 "init": None}]


def _gain_ranges(stages: list[dict]) -> str:
    """'-20..+6 dB' or '-20..+6 dB (stage 5: -35..+6 dB)': the training crops' gain range of each stage
    (stages that did not record one trained on GAIN_DB_RANGE, the only range before the key existed)."""
    ranges = [tuple(st.get("gain_db", GAIN_DB_RANGE)) for st in stages]
    common = collections.Counter(ranges).most_common(1)[0][0]

    def text(r: tuple) -> str:
        return f"{r[0]:+g}..{r[1]:+g} dB".lstrip("+")

    others = [f"stage {i + 1}: {text(r)}" for i, r in enumerate(ranges) if r != common]
    return text(common) + (f" ({'; '.join(others)})" if others else "")


def write_card(out: str | Path, onnx_path: str | Path, checkpoint: str | Path, clean_root: str | Path = "data/clean",
               pairs_root: str | Path = "data/pairs", compare_json: str | Path | None = "runs/compare.json",
               eval_json: str | Path = "runs/eval.json", timing: dict | None = None,
               extra_eval: dict[str, str] | None = None, notes: str | None = None) -> Path:
    import torch

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    summ = json.loads((Path(clean_root) / "manifest.json").read_text())["summary"]
    pairs = json.loads((Path(pairs_root) / "manifest.json").read_text())
    ev = json.loads(Path(eval_json).read_text())
    codecs = collections.Counter((r["split"], r["codec"]) for r in pairs["pairs"])
    onnx_path = Path(onnx_path)
    L = []
    L.append("# gapfill-unet-mp3: magnitude restoration of low-bitrate MP3\n")
    L.append(f"`{onnx_path.name}` ({onnx_path.stat().st_size / 1e6:.1f} MB, ONNX opset 17) and its PyTorch twin "
             f"`{onnx_path.with_suffix('.pt').name}` (weights, used by the parity test). Retrain from scratch: "
             "`python -m training all` (see `training/__main__.py`).\n")
    L.append("## What it does\n")
    L.append(f"One STFT magnitude frame of decoded audio in (48 kHz, periodic Hann N = {FFT_SIZE}, hop {HOP}, "
             f"{FFT_SIZE // 2 + 1} bins, linear |rfft| of audio in [-1, 1]), an estimate of the clean frame's "
             "magnitudes out. It estimates magnitudes directly (log-domain residual: "
             "`out = exp(log(x + 1e-4) + net) - 1e-4`), not a mask, so it can put energy back where the codec left "
             "zeros. Causal: no look-ahead (`gapfill.lookahead_frames = 0`); the engine's latency stays N - 1 samples "
             "plus the phase stage's.\n")
    L.append("## Architecture\n")
    args = ck["model_args"]
    L.append(f"- U-Net over frequency, four levels: input conv (2 frames x 5 bins) on 512 bins (Nyquist passed "
             f"through), four strided convs (2 frames x 4 bins, stride 2 in frequency) with channels "
             f"{args['channels']}, bottleneck 32 bins x {args['channels'][-1]} -> linear {args['hidden']} -> GRU "
             f"{args['hidden']} -> linear, four transposed convs (x2 in frequency) with skip connections, output conv"
             + (" with two channels: the log-domain correction and a per-bin logit that the decoded bin is "
                "codec-made (the confidence head)." if args.get("confidence") else "."))
    L.append(f"- Parameters: {ck['parameters']:,}; {ck['macs_per_frame'] / 1e6:.2f} M multiply-accumulates per frame "
             "and channel.")
    L.append("- Streaming graph: inputs `magnitude` [batch, 513] and `state_in.{inp,enc1..enc4,gru}`, outputs "
             "`magnitude_out`" + (", `confidence` [batch, 513] (sigmoid of the logit, 0 at Nyquist)"
                                   if args.get("confidence") else "")
             + " and `state_out.*` (previous input frame of each 2-frame conv, GRU hidden); "
             "batch = audio channels, zeros at stream start.")
    if timing:
        hop_ms = 1000 * HOP / MODEL_RATE_HZ
        L.append(f"- Cost per hop (onnxruntime {timing.get('ort_version', '')}, 1 intra-op thread, sequential, "
                 f"ORT_ENABLE_ALL, IOBinding, {timing['hops']} hops, shared 2-core machine): mono median "
                 f"{timing['mono']['median_ms']:.3f} ms, 99th percentile {timing['mono']['p99_ms']:.3f} ms, mean "
                 f"{timing['mono']['mean_ms']:.3f} ms, CPU time per call {timing['mono']['cpu_mean_ms']:.3f} ms; "
                 f"stereo median {timing['stereo']['median_ms']:.3f} ms, CPU {timing['stereo']['cpu_mean_ms']:.3f} ms. "
                 f"Budget: a quarter of the {hop_ms:.2f} ms hop = {hop_ms / 4:.2f} ms. (Wall-clock tails are preemption "
                 "by other jobs on the shared machine; the CPU time is the cost.)")
    L.append("")
    L.append("## Data\n")
    L.append("Built by `python -m training corpus` and `... pairs` from Debian/PyPI packages only "
             "(tuxpaint-stamps-default `*_desc_{be,bg,da,fr,ro,ru}`, hedgewars-data voices and music without "
             "EarthRise/olympics_sd, wesnoth-1.16-music, music21 Bach chorales rendered with fluidsynth "
             "through FluidR3_GM / MuseScore_General_Lite, hydrogen-drumkits one-shots sequenced into random "
             "patterns); 48 kHz (soxr VHQ), silence trimmed, 5-10 s segments, DATA.md filters applied. Split by "
             "source file (voice pack, drum kit, score) in `training/split.json`.\n")
    L.append("| | train h | validation h |")
    L.append("|---|---|---|")
    for kind in ("speech", "music"):
        L.append(f"| {kind} | {_hours(summ, kind + '/train'):.2f} | {_hours(summ, kind + '/val'):.2f} |")
    L.append("")
    srcs = ", ".join(f"{k.split('/', 2)[2]} {v:.2f} h ({k.split('/')[1]})" for k, v in summ.items() if k.count("/") == 2)
    L.append(f"By source: {srcs}.\n")
    L.append("Pairs (training/pairs.py, evaluation/chains.py), one of each mix per training segment: `lame`, LAME "
             "CBR through lameenc decoded by minimp3 at the MP3's own rate and soxr VHQ to 48 kHz (the first model's "
             "data); `chains`, a random codec setting from every family (lameenc; ffmpeg's libmp3lame CBR/VBR, "
             "libshine, aac, libvorbis, libopus, libtwolame) through a random decode chain (minimp3, libmpg123/"
             "libvorbis/libopus through soundfile, or ffmpeg; stored at the codec's rate, 44.1 or 48 kHz by soxr "
             "VHQ/HQ/MQ/LQ, ffmpeg swr or scipy; float, 16-bit with or without TPDF dither, or 24-bit; gapfill's "
             "resampler to 48 kHz). Training crops add a gain of "
             f"{_gain_ranges(_stages(ck))}, a white or pink noise floor of -95..-75 dBFS on 30 %, and 16-bit "
             "quantisation on 40 % of float pairs. Every pair is aligned by "
             f"cross-correlation; largest residual lag {pairs['max_abs_lag_samples']:.2f} samples. Validation: "
             "32 kbit/s mono (reference), 128 kbit/s mono (no harm) and one `chains` pair per segment.\n")
    families = collections.Counter((r["split"], r.get("mix", "lame"), r.get("encoder", "lameenc"))
                                   for r in pairs["pairs"])
    L.append("| split | mix | encoder | pairs |")
    L.append("|---|---|---|---|")
    for (split, mix, encoder), n in sorted(families.items()):
        L.append(f"| {split} | {mix} | {encoder} | {n} |")
    L.append("")
    L.append("Reference-chain pairs by configuration:\n")
    L.append("| split | codec | pairs |")
    L.append("|---|---|---|")
    for (split, codec), n in sorted(codecs.items()):
        if "__" not in codec:
            L.append(f"| {split} | {codec} | {n} |")
    L.append("")
    chains = collections.Counter(tuple(r["chain"].split("_")[:2]) + (r["chain"].split("_", 2)[2],)
                                 for r in pairs["pairs"] if r.get("mix") == "chains")
    decoders = collections.Counter(d for (d, _, _), n in chains.items() for _ in range(n))
    formats = collections.Counter(f for (_, _, f), n in chains.items() for _ in range(n))
    L.append("`chains` pairs by decoder: " + ", ".join(f"{k} {v}" for k, v in sorted(decoders.items()))
             + "; by stored sample format: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())) + ".\n")
    L.append("## Training\n")
    stages = _stages(ck)
    described = "; ".join(f"stage {i + 1}: {st['steps']} steps in {st['minutes']:.0f} min on "
                          f"{st['mixes']} pairs" + (" with the confidence head" if st.get("confidence") else "")
                          + (f", from {st['init']}" if st.get("init") else ", from scratch")
                          for i, st in enumerate(stages))
    L.append(f"Loss `{ck['loss']}`, Adam 1e-3 cosine to 5e-5 per stage, batches of random crops of 192 frames "
             f"(1.0 s), augmented as under Data, 6 % identity (clean in, clean out); {described} "
             "(CPU threads of a 2-core machine shared with other jobs; see Notes).\n")
    if args.get("confidence"):
        log = [json.loads(x) for x in (Path(checkpoint).parent / "log.jsonl").read_text().splitlines() if x.strip()]
        last = log[-1]
        L.append(f"Confidence head: binary cross-entropy (weight {CONFIDENCE_WEIGHT}) against the label "
                 f"\"codec-made\": the decoded bin differs from the clean bin by more than {LABEL_DB:g} dB "
                 f"(levels floored at {LABEL_FLOOR_DB:g} dB re a full-scale sine), where the clean side went "
                 "through the same gain, noise floor and quantisation as the decoded side, so a decode chain's "
                 "own floor is not codec damage; identity crops are labelled 0. At the end of the last stage "
                 "(fixed validation crops, p > 0.5 counted as codec-made):\n")
        L.append("| validation set | labelled codec-made | mean p | precision | recall |")
        L.append("|---|---|---|---|---|")
        for name, prefix in (("reference (LAME 32k, training chain)", "val"), ("chains (every codec and chain)",
                                                                             "val_chains"),
                             ("clean input (must stay 0)", "val_clean")):
            if f"{prefix}_p_mean" in last:
                L.append(f"| {name} | {last[f'{prefix}_labels_mean']:.3f} | {last[f'{prefix}_p_mean']:.3f} | "
                         f"{last[f'{prefix}_precision']:.3f} | {last[f'{prefix}_recall']:.3f} |")
        L.append("")
    if compare_json and Path(compare_json).exists():
        cmp = json.loads(Path(compare_json).read_text())
        L.append("Loss comparison (model only, no gate; 48 fixed 2 s validation crops, MP3 32 kbit/s mono; "
                 "equal steps, runs started from scratch with the same seed):\n")
        L.append("| model | steps | L1 (norm.) | LSD full dB | LSD below cutoff | LSD above cutoff | holes |")
        L.append("|---|---|---|---|---|---|---|")
        for k, v in cmp.items():
            if isinstance(v, dict):
                name = "MP3 input" if k == "mp3" else f"{v['loss']} ({k})"
                L.append(f"| {name} | {v.get('step', '')} | {v['l1']:.3f} | {v['lsd_full']:.2f} | {v['lsd_below']:.2f} | "
                         f"{v['lsd_above']:.2f} | {v['holes']:.3f} |")
        L.append("")
    L.append("## Validation (through the engine)\n")
    L.append(f"`python -m training evaluate`: `Restorer` with this model, gate on, default phase settings, "
             f"48 kHz mono, output aligned by `latency_samples`; LSD with a power floor of {ev['floor_db']:.0f} dB "
             f"re a full-scale sine over frames whose clean peak is above {ev['active_db']:.0f} dB; cutoff = "
             f"highest bin where the decoded long-term spectrum is within 30 dB of the clean one; holes = reference "
             f"bins below the cutoff (at least 20 dB above the floor) that are 20 dB or more too quiet. No-harm "
             f"columns: LSD(restored) - LSD(input) for clean input and for MP3 128 kbit/s.\n")
    L.append(format_report(ev))
    L.append("")
    for title, path in (extra_eval or {}).items():
        if Path(path).exists():
            L.append(f"### {title}\n")
            L.append(format_report(json.loads(Path(path).read_text())))
            L.append("")
    if notes:
        L.append("## Notes\n")
        L.append(notes.strip() + "\n")
    Path(out).write_text("\n".join(L) + "\n")
    return Path(out)
