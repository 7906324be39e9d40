"""The one protocol every engine stage implements, the buffers a hop flows through, and the observer hook.

A hop of `hop` samples at the model rate runs through the stages in order (realtime/engine/chain.py):

    analysis -> level -> model -> gate -> phase -> strength -> synthesis -> bypass -> ceiling

Each stage reads and writes named buffers of one `HopBuffers`, allocated once by the chain's `prepare`,
so no stage allocates per hop. A stage reports the delay it adds (`latency_samples`, at the model rate);
the engine's latency is the sum over its stages plus the hop clock's hop - 1 samples.

`HopObserver` is the public, read-only way to see what each stage produced: the chain calls
`stage_started(name)` before and `stage_finished(name, buffers)` after every stage of every hop while an
observer is attached (`Restorer.observe`), and nothing at all while none is. Observers must not write to
the buffers; they run on the processing thread, so timing a stage and copying its output are theirs to do.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class HopBuffers:
    """Every buffer one hop flows through, for `channels` streams, F = fft_size // 2 + 1 bins.

    hop_in (C, hop) f32: this hop's input samples, as they came in (left and right for a pair restored as
        mid and side: the analysis stage converts into its own buffer).
    spectra (D, C, F) c64, magnitudes (D, C, F) f32: a ring of the last D analysed frames, D = the model's
        look-ahead + 1; `newest` is the slot of the frame analysed this hop, `aligned` the slot of the frame
        the model's output belongs to (the same slot for a causal model).
    model_in (C, F) f32: the magnitudes the model sees (after the level stage's gain).
    model_gain (1,) f64: that gain, linear (1 when the level stage is off).
    estimate (C, F) f32: the model's magnitude estimate at the decoded level; confidence (C, F) f32 in 0..1.
    gated (C, F) f32: the magnitudes the gate keeps or restores.
    band_above (C,) int64: per channel the first bin of the band above a codec cutoff that the gate restores
        this hop (F while it restores none: no band limit detected, the gate closed or off).
    phased (C, F) c64: the complex spectrum to synthesise (frame `aligned` minus the phase look-ahead).
    unmodified (1,) int64: 1 when the strength stage's output `phased` is the decoded spectrum of its frame
        within float rounding in every channel and bin (exactly 0 where that is 0), else 0.
    hop_out (C, hop) f32: the finalised output hop.
    hop_delayed (C, hop) f32: the input hop of the stages' latency ago, as it came (the bypass stage's).
    bypassed (1,) int64: 1 while hop_out is bit for bit the input of the stages' latency ago: after a reset
        (zeros, the silent past) and after a hop the bypass stage bypassed; the chain clears it before each
        hop.
    frame_index: hops processed since the last reset.
    """

    def __init__(self, channels: int, fft_size: int, hop: int, model_lookahead_frames: int) -> None:
        bins = fft_size // 2 + 1
        depth = model_lookahead_frames + 1
        self.channels, self.fft_size, self.hop, self.depth = channels, fft_size, hop, depth
        self.hop_in = np.zeros((channels, hop), np.float32)
        self.spectra = np.zeros((depth, channels, bins), np.complex64)
        self.magnitudes = np.zeros((depth, channels, bins), np.float32)
        self.model_in = np.zeros((channels, bins), np.float32)
        self.model_gain = np.ones(1, np.float64)
        self.estimate = np.zeros((channels, bins), np.float32)
        self.confidence = np.zeros((channels, bins), np.float32)
        self.gated = np.zeros((channels, bins), np.float32)
        self.band_above = np.full(channels, bins, np.int64)
        self.phased = np.zeros((channels, bins), np.complex64)
        self.unmodified = np.ones(1, np.int64)
        self.hop_out = np.zeros((channels, hop), np.float32)
        self.hop_delayed = np.zeros((channels, hop), np.float32)
        self.bypassed = np.ones(1, np.int64)
        self._spectra_slots = tuple(self.spectra[i] for i in range(depth))     # views made once
        self._magnitude_slots = tuple(self.magnitudes[i] for i in range(depth))
        self.frame_index = 0

    def reset(self) -> None:
        """Zero the signal buffers and the frame count (a silent past)."""
        for buffer in (self.hop_in, self.hop_out, self.hop_delayed, self.spectra, self.magnitudes):
            buffer[...] = 0
        self.model_gain[0] = 1.0
        self.band_above[:] = self.magnitudes.shape[2]
        self.unmodified[0] = self.bypassed[0] = 1
        self.frame_index = 0

    @property
    def newest_spectra(self) -> np.ndarray:
        """(C, F) c64: the frame analysed this hop."""
        return self._spectra_slots[self.frame_index % self.depth]

    @property
    def newest_magnitudes(self) -> np.ndarray:
        """(C, F) f32: the magnitudes of the frame analysed this hop."""
        return self._magnitude_slots[self.frame_index % self.depth]

    @property
    def aligned_spectra(self) -> np.ndarray:
        """(C, F) c64: the analysed frame the model's output belongs to."""
        return self._spectra_slots[(self.frame_index + 1) % self.depth]

    @property
    def aligned_magnitudes(self) -> np.ndarray:
        """(C, F) f32: the magnitudes of the frame the model's output belongs to."""
        return self._magnitude_slots[(self.frame_index + 1) % self.depth]


class Stage(Protocol):
    """One step of the hop chain: prepare, process a hop in place, reset, report its delay."""

    name: str
    """What the stage is called in taps, timings and latency parts ('analysis', 'model', ...)."""

    @property
    def latency_samples(self) -> int:
        """Delay this stage adds, in samples at the model rate."""
        ...

    def prepare(self, channels: int) -> None:
        """Allocate the stage's state for `channels` streams (the only place it allocates)."""
        ...

    def reset(self) -> None:
        """Forget the stream: the next hop is processed as if the stream just began."""
        ...

    def process_hop(self, buffers: HopBuffers) -> None:
        """Read this stage's inputs from `buffers` and write its outputs there; allocates nothing."""
        ...


@runtime_checkable
class LongTermStage(Protocol):
    """A stage whose long-term statistics a stream may start with, taken from the stream's head
    (`Restorer.decide_ahead`): the gate's detection and the input level's gain."""

    def statistics(self) -> Any:
        """A copy of the statistics (and the decisions made from them) so far."""
        ...

    def start_from(self, statistics: Any) -> None:
        """After a reset: continue from `statistics()` as if the stream began now."""
        ...


class HopObserver(Protocol):
    """Sees every stage of every hop, read-only (see the module docstring)."""

    def stage_started(self, stage: str) -> None:
        """Called just before stage `stage` processes a hop."""
        ...

    def stage_finished(self, stage: str, buffers: HopBuffers) -> None:
        """Called just after stage `stage` processed the hop; `buffers` hold what it wrote (read only)."""
        ...
