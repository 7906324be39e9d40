"""The engine: the signal path at the model rate, one stage a module.

    analysis -> level -> model -> gate -> phase -> strength -> synthesis

run hop by hop by `chain.py` (the protocol in `stage.py`), wrapped by `resampled.py` at other host rates,
behind the `Restorer` of `restorer.py`. docs/CONTRACTS.md holds the contracts between the stages.
"""
