"""Two v2 networks as one streaming graph: the envelope network's magnitude, the detector network's confidence.

The gate's calibration (`gapfill.gate.*`) is chosen for one network's confidence, and every continuation of
training moves that confidence (the campaign card, "The over term through the engine"): a network that fills
better can leave clips the calibrated one restored as decoded. Paired, the engine's magnitude estimate comes
from `envelope` and its confidence (the gate's evidence and per-bin weight) from `detector`, the network the
calibration was chosen for, bit for bit; so the envelope trains on while what the gate decides stays put.

Streaming: `StreamingPair.forward(mag (B, F), *envelope_states, *detector_states) -> (magnitude_out (B, F),
confidence (B, F), *envelope_states', *detector_states')`, each network's states as model.StreamingBandNet's,
named `envelope.<name>` and `detector.<name>` (`state_shapes`). Both networks must frame alike (the same
look-ahead); the detector's magnitude path is not in the exported graph.
"""

from __future__ import annotations

from torch import nn

from training.v2.model import BandNet, StreamingBandNet

ROLES = ("envelope", "detector")


class StreamingPair(nn.Module):
    """One frame in, the envelope's magnitude and the detector's confidence out (module doc)."""

    def __init__(self, envelope: BandNet, detector: BandNet):
        super().__init__()
        if envelope.config.lookahead != detector.config.lookahead:
            raise ValueError(f"paired networks must look ahead alike: envelope {envelope.config.lookahead} "
                             f"frames, detector {detector.config.lookahead}")
        self.envelope, self.detector = StreamingBandNet(envelope), StreamingBandNet(detector)
        self.envelope_states = len(envelope.state_shapes())

    def forward(self, mag, *states):
        k = self.envelope_states
        envelope = self.envelope(mag, *states[:k])
        detector = self.detector(mag, *states[k:])
        return (envelope[0], detector[1], *envelope[2:], *detector[2:])


def state_shapes(envelope: BandNet, detector: BandNet) -> dict[str, tuple[int, ...]]:
    """The pair's per-stream state tensors (without the batch dimension), in StreamingPair's argument order."""
    return {f"{role}.{name}": shape for role, net in zip(ROLES, (envelope, detector))
            for name, shape in net.state_shapes().items()}
