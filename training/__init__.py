"""Training pipeline for the gapfill magnitude U-Net (torch, offline only; not in the runtime wheel).

Modules, in the order a retrain runs them:
    corpus.py   clean 48 kHz speech/music segments from Debian/PyPI packages (split by source file, split.json)
    pairs.py    clean vs encoded-then-decoded pairs, aligned to the sample (codecs and chains: evaluation/chains.py)
    unet.py     the causal frequency U-Net, its streaming (one frame in, one out) form and its STFT framing
    train.py    resumable training loop (checkpoints in runs/)
    export.py   ONNX export of the streaming graph + metadata; per-hop timing
    evaluate.py the exported model through the engine on the validation split (metrics: evaluation/metrics.py)
    card.py     the model card from a run's artefacts
    atomic.py   write-then-rename, so every step resumes after an interruption

`python -m training --help` runs them; see __main__.py.
Nothing here is imported by the real-time engine.
"""
