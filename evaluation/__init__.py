"""What training, the benchmarks and the tests share to judge restored audio, without torch.

    chains.py   codecs and decode chains: clean audio -> what gapfill really gets (`degrade`)
    metrics.py  spectral metrics against the clean reference: LSD, holes, codec cutoff, level above it
"""
