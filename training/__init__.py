"""Training pipeline for the gapfill magnitude U-Net (torch, offline only).

Modules, in the order a retrain runs them:
    corpus.py   clean 48 kHz speech/music segments from Debian/PyPI packages (split by source file)
    pairs.py    clean vs LAME-encoded-then-decoded pairs, aligned to the sample
    unet.py     the causal frequency U-Net and its streaming (one frame in, one out) form
    train.py    resumable training loop (checkpoints in runs/)
    export.py   ONNX export of the streaming graph + metadata
    evaluate.py LSD / hole metrics on the validation split, per clip

`python -m training --help` runs them; see __main__.py.
Nothing here is imported by the real-time engine.
"""
