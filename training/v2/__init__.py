"""Model v2 (issue 23): band-resolution gains and fills at the engine's low-latency asymmetric framing.

Modules:
    features.py    the framing (48 kHz, N 1024, hop 128, asymmetric window), ERB bands, pooling/expansion
    model.py       BandNet (a small causal GRU at band resolution) and its streaming form
    loss.py        band-envelope, bin and confidence loss terms; codec-made band labels
    train.py       resumable training on a pair cache, budgeted in CPU seconds
    export.py      the engine's ONNX contract (docs/CONTRACTS.md), metadata gapfill.window = asymmetric
    bootstrap.py   a small clean corpus from the first corpus's sources, until data v2 exists
    throughput.py  training audio seconds per CPU second, today's U-Net and v2 side by side
    ablation.py    equal-CPU-budget comparison on held-out pairs

`python -m training.v2 --help` runs them. Nothing here is imported by the real-time engine.
"""
